"""Teacher / baseline training: a ResNet with a 512-d bottleneck and cross-entropy.

This is both the paper's Table 3 "Baseline" and the teacher whose soft labels
train f_prim. ``pipelines/teacher.py`` runs it for the DVC stage; the command
line is ``dgnet train-teacher``.

Augmentation: horizontal flip, pad-and-crop, random erasing. Optimiser: SGD
with momentum and Nesterov, heads at ``head_lr_mult`` x the backbone rate,
multi-step decay at ``lr_step_epochs``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from dgnet.progress import tqdm

from dgnet import checkpoint, io
from dgnet import losses as L
from dgnet.config import Config
from dgnet.data.dataset import scaled_pad
from dgnet.data.transforms import random_erasing
from dgnet.errors import DivergenceError, Interrupted
from dgnet.models import build_teacher
from dgnet.models.teacher import Teacher
from dgnet.runlog import RunLog
from dgnet.train import guards
from dgnet.train.batches import BatchSampler, augment, iteration_generator
from dgnet.train.dgnet_step import check_finite
from dgnet.train.schedules import lr_factor


def sgd_with_head_lr(model, lr: float, head_mult: float, momentum: float, weight_decay: float,
                     fused: bool = False):
    """SGD (Nesterov) with the heads at ``head_mult`` x the backbone learning rate (``fused``: one
    fused update, its learning rates 0-d tensors, see :func:`tensor_lrs`)."""
    groups = [
        {"params": list(model.backbone_parameters()), "base_lr": lr},
        {"params": list(model.head_parameters()), "base_lr": lr * head_mult},
    ]
    for group in groups:
        group["lr"] = group["base_lr"]
    opt = torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0,
                          fused=fused or None)
    return tensor_lrs(opt) if fused else opt


def tensor_lrs(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """Give each group of a fused optimizer a 0-d learning-rate tensor on its parameters' device, which
    :func:`set_lr` then changes in place (a schedule never hands the update a new Python float)."""
    for group in optimizer.param_groups:
        group["lr"] = torch.tensor(float(group["lr"]), device=group["params"][0].device)
    return optimizer


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        if isinstance(group["lr"], Tensor):
            group["lr"].fill_(group["base_lr"] * factor)
        else:
            group["lr"] = group["base_lr"] * factor


def train_teacher(
    cfg: Config,
    images: Tensor,
    labels: Tensor,
    num_classes: int,
    out_path: str | Path,
    run: RunLog,
    progress: bool = True,
) -> Teacher:
    """Train the teacher on uint8 ``images`` (N, 3, H, W) with ``labels`` in [0, K); save a checkpoint.

    A NaN/inf loss or weight stops with DivergenceError and Ctrl-C with
    :class:`Interrupted`; either way nothing is written (the teacher is saved
    only at the end).
    """
    io.require_writable(out_path)
    io.remove_stale_tmp(out_path)
    try:
        model, optimizer, iterations = _train(cfg, images, labels, num_classes, run, progress)
    except KeyboardInterrupt:
        raise Interrupted(f"teacher training stopped; this run wrote nothing to {out_path} "
                          f"(the teacher is saved at the end of its training)") from None
    model.eval()
    state = checkpoint.make_state("teacher", cfg, num_classes, iterations, {"teacher": model}, {"sgd": optimizer})
    checkpoint.save(out_path, state)
    return model


def _train(cfg: Config, images: Tensor, labels: Tensor, num_classes: int, run: RunLog,
           progress: bool) -> tuple[Teacher, torch.optim.Optimizer, int]:
    """The training iterations; returns the model, its optimizer and the number of iterations."""
    tcfg = cfg.teacher
    device = torch.device(cfg.runtime.device)
    torch.manual_seed(tcfg.seed)
    model = build_teacher(cfg.model, num_classes).to(device)
    optimizer = sgd_with_head_lr(model, tcfg.lr, tcfg.head_lr_mult, tcfg.momentum, tcfg.weight_decay)
    sampler = BatchSampler(labels, tcfg.batch_size, tcfg.seed)
    per_epoch = sampler.iterations_per_epoch()
    pad = scaled_pad(cfg.data.pad, cfg.data.height)
    sw = cfg.switches
    total = per_epoch * tcfg.epochs

    model.train()
    bar = tqdm(range(total), desc="teacher", disable=not progress, dynamic_ncols=True)
    epoch_loss, epoch_correct, epoch_seen = 0.0, 0, 0
    for it in bar:
        epoch = it // per_epoch
        set_lr(optimizer, lr_factor(epoch, tcfg.lr_step_epochs, tcfg.lr_gamma))
        g = iteration_generator(tcfg.seed, it)
        torch.manual_seed(tcfg.seed * 7919 + it)  # dropout, deterministic per iteration
        idx = sampler.indices(it)
        x = random_erasing(augment(images[idx], pad, g, sw.pad_mode), cfg.data.random_erasing, g,
                           aspect_sampling=sw.erasing_aspect).to(device)
        y = labels[idx].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.runtime.autocast_bf16):
            logits = model(x).logits
        loss = L.id_loss(logits.float(), y)
        try:
            check_finite({"teacher_ce": loss})
        except DivergenceError as err:
            raise DivergenceError(f"teacher iteration {it}: {err}; training stopped, no checkpoint was written") from None
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        bad = guards.nonfinite_tensors({"teacher": model})
        if bad:
            raise DivergenceError(f"teacher iteration {it}: the update made {io.describe(bad)}; "
                                  f"training stopped, no checkpoint was written")

        epoch_loss += loss.item() * len(y)
        epoch_correct += int((logits.argmax(1) == y).sum())
        epoch_seen += len(y)
        if (it + 1) % per_epoch == 0:
            metrics = {
                "teacher/loss": epoch_loss / epoch_seen,
                "teacher/train_acc": epoch_correct / epoch_seen,
                "teacher/lr": optimizer.param_groups[0]["lr"],
            }
            run.log_metrics(metrics, step=epoch + 1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{metrics['teacher/loss']:.3f}",
                            acc=f"{metrics['teacher/train_acc']:.2f}")
            epoch_loss, epoch_correct, epoch_seen = 0.0, 0, 0

    return model, optimizer, total
