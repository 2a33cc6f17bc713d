"""Loss-weight and learning-rate schedules: pure functions of the iteration.

Nothing here mutates the config, so what is logged is what ran::

    weights = loss_weights(it, cfg.train)   # {"lambda_prim": ..., "lambda_fine": ..., ...}
    factor = lr_factor(it, cfg.train.lr_steps, cfg.train.lr_gamma)
"""

from __future__ import annotations

from typing import Sequence

from dgnet.config import TrainConfig


def lambda_prim(iteration: int, warm_iter: int, ramp_iters: int, maximum: float) -> float:
    """0 until ``warm_iter``, then a linear ramp to ``maximum`` over ``ramp_iters`` iterations.

    The reference adds ``warm_scale`` per iteration after ``warm_teacher_iter``
    (0.0005 x 4,000 = 2.0): the same ramp written as a closed form.
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


def loss_weights(iteration: int, cfg: TrainConfig) -> dict[str, float]:
    """Every loss weight of equation 10 in force at ``iteration`` (ablations applied)."""
    prim = lambda_prim(iteration, cfg.warm_iter, cfg.ramp_iters, cfg.lambda_prim_max)
    fine = cfg.alpha * prim
    if not (cfg.feed_generated and cfg.id_supervision):
        # "w/o feed" drops L_prim and L_fine; "w/o id" drops every identity
        # loss on generated images (L_prim, L_fine and L_id^c)
        prim = fine = 0.0
    return {
        "lambda_img": cfg.lambda_img,
        "lambda_code": 1.0,
        "lambda_id_real": 1.0,
        "lambda_id_gen": cfg.lambda_id if cfg.id_supervision else 0.0,
        "lambda_adv": 1.0,
        "lambda_prim": prim,
        "lambda_fine": fine,
    }
