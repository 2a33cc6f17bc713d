"""The joint DG-Net training loop: ``dgnet train`` and the ``train_dgnet`` DVC stage.

    dgnet train --params params.yaml --teacher models/teacher.pt --out models/dgnet
    dgnet train ... --resume          # continue from models/dgnet/last.pt
    torchrun --nproc-per-node 2 -m dgnet.cli train ...   # data parallel

Every ``checkpoint_every`` iterations (and at the end) the whole state is
written atomically to ``last.pt``; batches and dropout are seeded by the
iteration, so a resumed run continues exactly where the killed one stood.

Guards (never keep a broken model): every iteration's losses and the
networks' max-norms after its update are recorded on the device and read once
per logging interval and before every sample grid, checkpoint or
``iteration_hook`` (:class:`dgnet.train.guards.FinitenessWatch`), so a
steady-state iteration reads nothing back from the device; a divergence stops
the run naming the first iteration that went wrong and the checkpoint that
really is good (one this run wrote or resumed from), and a save refuses
non-finite state. ``--resume`` refuses a checkpoint whose config differs in keys that
change the run. Ctrl-C stops with one line saying which checkpoint is kept.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from dgnet.progress import tqdm

from dgnet import checkpoint, io
from dgnet.config import Config, replace
from dgnet.errors import DivergenceError, Interrupted, UserError
from dgnet.data.dataset import scaled_pad
from dgnet.data.loading import on_device
from dgnet.models import build_dgnet
from dgnet.runlog import RunLog
from dgnet.train import distributed, guards
from dgnet.train.batches import BatchSampler, dgnet_batch, iteration_generator
from dgnet.train.dgnet_step import dis_step, gen_step, generate
from dgnet.train.schedules import joint_lr_factor, loss_weights
from dgnet.train.teacher import set_lr, sgd_with_head_lr, tensor_lrs

log = logging.getLogger(__name__)
NETWORKS = ("appearance", "structure", "decoder", "discriminator")


@dataclass
class TrainResult:
    checkpoint: Path
    iterations: int  # the run's length (train.iterations)
    seconds: float
    last_losses: dict[str, float]
    trained: int = 0  # iterations this call ran: fewer than ``iterations`` after a warm start or a resume
    step_seconds_median: float | None = None  # one update alone (no logging, sample grids or checkpoints)


def fused_optimizers(cfg: Config) -> bool:
    """``runtime.fused_optimizers``; ``auto`` fuses unless ``train.fidelity`` is ``reference``, whose
    updates stay those of the official code's unfused optimizers (docs/fidelity.md)."""
    choice = cfg.runtime.fused_optimizers
    return choice == "on" or (choice == "auto" and cfg.train.fidelity != "reference")


def build_optimizers(cfg: Config, nets: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
    """E_a: SGD (heads 10x); E_s + G: Adam; D: Adam (betas 0, 0.999), as the reference; each one fused
    update with 0-d tensor learning rates where :func:`fused_optimizers` says so."""
    t = cfg.train
    fused = fused_optimizers(cfg)
    adam = dict(betas=(0.0, 0.999), weight_decay=t.weight_decay, fused=fused or None)
    gen_params = list(nets["structure"].parameters()) + list(nets["decoder"].parameters())
    opts = {
        "appearance": sgd_with_head_lr(nets["appearance"], t.lr_appearance, t.head_lr_mult, 0.9, t.weight_decay,
                                       fused),
        "generator": torch.optim.Adam([{"params": gen_params, "base_lr": t.lr_generator}], lr=t.lr_generator, **adam),
        "discriminator": torch.optim.Adam(
            [{"params": nets["discriminator"].parameters(), "base_lr": t.lr_discriminator}],
            lr=t.lr_discriminator, **adam,
        ),
    }
    if fused:
        for name in ("generator", "discriminator"):
            tensor_lrs(opts[name])
    return opts


COMPILED = ("appearance", "structure", "decoder")  # D stays eager: the R1 penalty's double backward


def compile_networks(cfg: Config, nets: dict[str, nn.Module]) -> None:
    """``runtime.compile``: ``torch.compile`` the forward passes of E_a, E_s and G in place (their
    state-dict keys unchanged). D is left eager: the gradient penalty differentiates through its
    backward, which compiled graphs (AOTAutograd) do not support."""
    if cfg.runtime.compile:
        for name in COMPILED:
            nets[name].compile()


# Keys that only act from warm_iter on: variants differing only in these share
# their first warm_iter iterations exactly (batches and dropout are seeded by
# the iteration), so they may start from one warm-up checkpoint.
POST_WARM_KEYS = ("alpha", "lambda_prim_max", "feed_generated", "iterations")


class WarmStartError(UserError, ValueError):
    """A warm-up checkpoint that this run cannot start from."""


def check_warm_start(cfg: Config, state: dict, path: str | Path) -> None:
    """Refuse a warm-up checkpoint that a from-scratch run of ``cfg`` would not have produced."""
    if state["iteration"] > cfg.train.warm_iter:
        raise WarmStartError(f"{path}: iteration {state['iteration']} is past train.warm_iter "
                         f"({cfg.train.warm_iter}); it cannot be shared")
    ours, theirs = checkpoint.stored_config("dgnet", cfg), checkpoint.stored_config("dgnet", dict(state["config"]))
    for conf in (ours, theirs):
        conf.pop("name", None)
        conf["train"] = {k: v for k, v in conf["train"].items() if k not in POST_WARM_KEYS}
        conf.pop("sweep", None)
        conf.pop("eval", None)
        conf.pop("tracking", None)
    if ours != theirs:
        diff = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
        raise WarmStartError(f"{path}: the warm-up run's config differs in {diff}; it cannot be shared")


def warm_up_config(cfg: Config) -> Config:
    """``cfg`` cut to its first ``train.warm_iter`` iterations: the shared warm-up run whose last
    checkpoint the variants differing only in ``POST_WARM_KEYS`` continue from."""
    return replace(cfg, **{"train.iterations": max(1, cfg.train.warm_iter)})


def kept_checkpoint(last_path: Path, good_at: int | None) -> str:
    """Which checkpoint the user can trust after a stop (``good_at``: its iteration, None if none)."""
    if good_at is not None:
        return f"the last good checkpoint is {last_path} (iteration {good_at}; --resume continues from it)"
    if last_path.exists():
        return f"this run wrote no checkpoint ({last_path} is from an earlier run)"
    return "no checkpoint was written"


GENERATOR_PARTS = ("structure", "decoder", "discriminator")


def load_pretrained_generator(nets: dict[str, nn.Module], path: str | Path, device: torch.device) -> None:
    """Start E_s, G and D from the pretrain_generator stage's file (``train.generator_init``)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"train.generator_init: {path} not found; run `dvc repro pretrain_generator` "
                        f"(it writes it), or set train.generator_init: scratch")
    state = io.load_checkpoint(path, map_location=device)
    if not isinstance(state, dict) or state.get("kind") != "pretrained_generator":
        reason = state.get("reason", "") if isinstance(state, dict) else ""
        raise UserError(f"train.generator_init: {path} is not a pre-trained generator ({reason or 'wrong file'}); "
                        f"run `dvc repro pretrain_generator` with train.generator_init pointing at it, "
                        f"or set train.generator_init: scratch")
    try:
        for name in GENERATOR_PARTS:
            nets[name].load_state_dict(state["models"][name])
    except (KeyError, RuntimeError) as err:
        reason = " ".join(str(err).split())[:300]
        raise UserError(f"train.generator_init: {path} does not fit the networks of the current params "
                        f"({reason}); rerun `dvc repro pretrain_generator`") from None


class _Diverged(DivergenceError):
    def __init__(self, iteration: int, what: str):
        super().__init__(what)
        self.iteration = iteration


def _raise_first_failure(watch: guards.FinitenessWatch) -> None:
    failure = watch.first_failure()
    if failure is not None:
        raise _Diverged(*failure)


def set_dropout(module: nn.Module, on: bool) -> None:
    """Switch the dropout layers of ``module`` on or off, leaving BatchNorm as it is.

    The official code's teacher runs in eval mode (BN in train mode, ``train_bn``) until its
    first ``sample()`` call (iteration ``image_save_iter``), which leaves the whole trainer, teacher
    included, in train mode: from then on the teacher's dropout is on (``teacher_dropout``).
    """
    for m in module.modules():
        if isinstance(m, nn.Dropout):
            m.train(on)


def train_dgnet(
    cfg: Config,
    images: Tensor,
    labels: Tensor,
    num_classes: int,
    teacher: nn.Module | None,
    out_dir: str | Path,
    run: RunLog,
    resume: bool = False,
    progress: bool = True,
    sample_hook=None,
    iteration_hook=None,
    init_from: str | Path | None = None,
    desc: str = "dgnet",
    freeze_appearance: bool = False,
) -> TrainResult:
    """Train E_a, E_s, G and D jointly on uint8 ``images`` (N, 3, H, W) with ``labels``.

    ``sample_hook(nets, iteration)`` is called every ``sample_every`` iterations
    (on rank 0) to draw and log a generation grid; ``iteration_hook(nets,
    iteration)`` after every iteration (e.g. Optuna's intermediate validation,
    which may raise ``optuna.TrialPruned`` to stop the run). ``init_from``
    starts from a shared warm-up checkpoint (see :func:`check_warm_start`).
    ``desc`` names the progress bar (trainings may run side by side).
    E_s, G and D start from ``train.generator_init`` unless it is ``scratch``
    (:func:`load_pretrained_generator`). ``freeze_appearance`` keeps E_a at
    its starting weights (the generator's pre-training, where ``teacher`` may be None).
    """
    t = cfg.train
    device = distributed.local_device(torch.device(cfg.runtime.device))
    rank, world = distributed.init_from_env(device)
    out_dir = Path(out_dir)
    last_path = out_dir / "last.pt"

    torch.manual_seed(t.seed)
    nets = {name: net.to(device) for name, net in build_dgnet(cfg.model, num_classes).items()}
    if t.generator_init != "scratch":
        load_pretrained_generator(nets, t.generator_init, device)
    if freeze_appearance:
        for p in nets["appearance"].parameters():
            p.requires_grad_(False)
    if cfg.runtime.channels_last:
        nets = {name: net.to(memory_format=torch.channels_last) for name, net in nets.items()}
    opts = build_optimizers(cfg, nets)
    if teacher is None:  # allowed only where no loss reads it (the generator's pre-training)
        if t.lambda_prim_max > 0 and t.feed_generated and t.id_supervision:
            raise ValueError("train_dgnet: a teacher is needed when L_prim is on")
        teacher = nn.Identity()
    teacher = teacher.to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)

    io.require_writable(last_path)
    if distributed.is_main():
        io.remove_stale_tmp(last_path)
    start, good_at = 0, None
    if resume and last_path.exists():
        state = checkpoint.load(last_path, "dgnet", device)
        warm = isinstance(state.get("iteration"), int) and state["iteration"] <= t.warm_iter
        post_warm = tuple(f"train.{k}" for k in POST_WARM_KEYS) if warm else ()  # they have not acted yet
        for note in guards.check_resume_config(state.get("config"), cfg, last_path, post_warm):
            log.warning("resuming %s with a changed setting: %s", last_path, note)
        start = good_at = checkpoint.restore(state, nets, opts, source=last_path)
        log.info("resumed from %s at iteration %d", last_path, start)
    elif init_from is not None:
        state = checkpoint.load(init_from, "dgnet", device)
        check_warm_start(cfg, state, init_from)
        start = checkpoint.restore(state, nets, opts, source=init_from)
    for net in nets.values():
        distributed.broadcast_module(net)
        net.train()
    compile_networks(cfg, nets)

    images = on_device(images, device)
    log.info("training set: %.0f MB of uint8 images on %s", images.numel() / 2**20, images.device)
    sampler = BatchSampler(labels, t.batch_size, t.seed, rank, world)
    pad = scaled_pad(cfg.data.pad, cfg.data.height)
    sw = cfg.switches
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.runtime.autocast_bf16)
    main = distributed.is_main()
    bar = tqdm(range(start, t.iterations), desc=desc, initial=start, total=t.iterations,
               disable=not (progress and main), dynamic_ncols=True)
    began = time.perf_counter()
    last_losses: dict[str, float] = {}
    step_seconds: list[float] = []
    watch = guards.FinitenessWatch()  # read once per logging interval and before anything is saved or shown
    lr_factor_now = None
    it = start
    try:
        for it in bar:
            step_began = time.perf_counter()
            factor = joint_lr_factor(it, t, sw)
            if factor != lr_factor_now:
                for opt in opts.values():
                    set_lr(opt, factor)
                lr_factor_now = factor
            weights = loss_weights(it, t, sw)
            set_dropout(teacher, sw.teacher_dropout == "after_first_sample" and it >= t.sample_every)
            torch.manual_seed(t.seed * 7919 + it * 64 + rank)  # dropout, deterministic per iteration
            batch = dgnet_batch(images, sampler, it, pad, device, sw.pad_mode)
            g = iteration_generator(t.seed, it, rank, stream=2)
            with autocast:
                gen = generate(nets, batch, cfg.data.random_erasing, g, sw)
                d_losses = dis_step(nets["discriminator"], opts["discriminator"], batch.images, gen.cross,
                                    t.gp_weight, sw.groups)
                g_losses = gen_step(nets, teacher, opts["generator"], opts["appearance"], batch, gen, weights, g,
                                    sw)
            for net in nets.values():
                distributed.broadcast_buffers(net)
            watch.record(it, {**d_losses, **g_losses}, nets)
            step_seconds.append(time.perf_counter() - step_began)

            done = it + 1
            logs = done % t.log_every == 0 or done == t.iterations
            samples = main and sample_hook is not None and (done % t.sample_every == 0 or done == t.iterations)
            saves = main and (done % t.checkpoint_every == 0 or done == t.iterations)
            if logs or samples or saves or iteration_hook is not None:
                _raise_first_failure(watch)
            if logs:
                last_losses = {f"loss/{k}": float(v) for k, v in {**d_losses, **g_losses}.items()}
                metrics = {**last_losses, **{f"weight/{k}": v for k, v in weights.items()},
                           "lr/appearance": float(opts["appearance"].param_groups[0]["lr"]),
                           "lr/generator": float(opts["generator"].param_groups[0]["lr"]),
                           "lr/discriminator": float(opts["discriminator"].param_groups[0]["lr"])}
                if main:
                    run.log_metrics(metrics, step=done)
                bar.set_postfix(total=f"{last_losses['loss/total']:.3f}", img=f"{last_losses['loss/img1']:.3f}",
                                id=f"{last_losses['loss/id_real']:.3f}", d=f"{last_losses['loss/d_adv']:.3f}")
            if samples:
                sample_hook(nets, done)
            if saves:
                state = checkpoint.make_state("dgnet", cfg, num_classes, done, nets, opts)
                checkpoint.save(last_path, state)
                good_at = done
            if iteration_hook is not None:
                iteration_hook(nets, done)
            distributed.barrier()
    except DivergenceError as err:
        raise DivergenceError(f"iteration {getattr(err, 'iteration', it)}: {err}; training stopped, "
                              f"{kept_checkpoint(last_path, good_at)}") from None
    except KeyboardInterrupt:
        raise Interrupted(f"training stopped at iteration {it}; {kept_checkpoint(last_path, good_at)}") from None
    return TrainResult(last_path, t.iterations, time.perf_counter() - began, last_losses, t.iterations - start,
                       statistics.median(step_seconds) if step_seconds else None)
