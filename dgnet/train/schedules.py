"""Loss-weight and learning-rate schedules: pure functions of the iteration.

Nothing here mutates the config, so what is logged is what ran::

    weights = loss_weights(it, cfg.train)   # {"lambda_prim": ..., "lambda_fine": ..., ...}
    factor = lr_factor(it, cfg.train.lr_steps, cfg.train.lr_gamma)
"""

from __future__ import annotations

from typing import Sequence

from dgnet.config import TrainConfig
from dgnet.fidelity import Switches, resolve_parts


def lambda_prim(iteration: int, warm_iter: int, ramp_iters: int, maximum: float) -> float:
    """0 until ``warm_iter``, then a linear ramp to ``maximum`` over ``ramp_iters`` iterations.

    The official code adds ``warm_scale`` per iteration after ``warm_teacher_iter``
    (0.0005 x 4,000 = 2.0); this closed form starts two iterations earlier than the
    official bookkeeping (:func:`official_ramp`, ``train.prim_ramp``).
    """
    if iteration < warm_iter:
        return 0.0
    if ramp_iters == 0:
        return maximum
    return maximum * min(1.0, (iteration - warm_iter + 1) / ramp_iters)


def lambda_fine(iteration: int, warm_iter: int, ramp_iters: int, maximum: float, alpha: float) -> float:
    """``alpha * lambda_prim``: the fine-grained loss follows the primary one."""
    return alpha * lambda_prim(iteration, warm_iter, ramp_iters, maximum)


def lr_factor(iteration: int, steps: Sequence[int], gamma: float) -> float:
    """Multi-step decay: ``gamma ** (number of steps already passed)``."""
    return gamma ** sum(iteration >= step for step in steps)


def joint_lr_factor(iteration: int, cfg: TrainConfig, sw: Switches) -> float:
    """The joint training's decay; the official code steps its schedulers at the top of each
    iteration, so its rates drop at ``step - 1`` (``lr_decay: official``), ours at ``step``."""
    shift = 1 if sw.lr_decay == "official" else 0
    return lr_factor(iteration + shift, cfg.lr_steps, cfg.lr_gamma)


def official_ramp(iteration: int, warm_iter: int, rate: float, maximum: float) -> float:
    """A weight as the official code ramps it: from 0, ``+rate`` per iteration after ``warm_iter``
    (capped at ``maximum``). Its loss is computed only where the weight was already positive before
    that iteration's increment, so the weight in force at ``warm_iter + k`` is ``k * rate`` for
    ``k >= 2`` and 0 up to ``warm_iter + 1``."""
    k = iteration - warm_iter
    return 0.0 if k < 2 else min(maximum, k * rate)


def loss_weights(iteration: int, cfg: TrainConfig, sw: Switches | None = None) -> dict[str, float]:
    """Every loss weight of equation 10 in force at ``iteration`` (ablations applied).

    ``sw`` (the resolved fidelity switches, default: those of ``cfg.fidelity``)
    chooses between the paper's schedule and the official code's ramps.
    """
    sw = sw or resolve_parts(cfg)
    rate = cfg.lambda_prim_max / max(cfg.ramp_iters, 1)  # the official warm_scale: one rate for every ramp
    if sw.prim_ramp == "official":
        prim = official_ramp(iteration, cfg.warm_iter, rate, cfg.lambda_prim_max)
        # the fine head's real-image term reads the teacher weight before this iteration's increment
        k = iteration - cfg.warm_iter
        prim_before = 0.0 if k < 2 else min(cfg.lambda_prim_max, (k - 1) * rate)
    else:
        prim = prim_before = lambda_prim(iteration, cfg.warm_iter, cfg.ramp_iters, cfg.lambda_prim_max)
    code = official_ramp(iteration, cfg.warm_iter, rate, cfg.lambda_code_max) if sw.code_recon == "ramp" else 1.0
    cycle = official_ramp(iteration, cfg.warm_iter, rate, cfg.lambda_cycle_max) if sw.cycle_recon == "ramp" else 0.0
    fine, fine_real = cfg.alpha * prim, cfg.alpha * prim_before
    if not (cfg.feed_generated and cfg.id_supervision):
        # "w/o feed" drops L_prim and L_fine; "w/o id" drops every identity
        # loss on generated images (L_prim, L_fine and L_id^c)
        prim = fine = fine_real = 0.0
    return {
        "lambda_img": cfg.lambda_img,
        "lambda_code": code,
        "lambda_cycle": cycle,
        "lambda_id_real": 1.0,
        "lambda_id_gen": cfg.lambda_id if cfg.id_supervision else 0.0,
        "lambda_adv": 1.0,
        "lambda_prim": prim,
        "lambda_fine": fine,
        "lambda_fine_real": fine_real,
    }
