"""The offline baseline of the paper's 84.4 vs 86.0 mAP comparison.

Instead of feeding generations online, the generative module is trained first
(the "w/o feed" model: same networks and losses, no L_prim / L_fine), a
generated set is written to disk (appearance from each training image,
structure from a random other, ``dgnet.eval.generation.write_generated_set``),
and a fresh E_a is then trained here on real + generated images, with the
losses of the online model at their full weights:

    L = L_id^s(real) + lambda_prim KL(teacher || prim)(gen)
        + lambda_fine [CE(fine(gen), y_structure) + CE(fine(real), y)]

with lambda_prim = ``train.lambda_prim_max`` and lambda_fine = alpha lambda_prim.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from dgnet.progress import tqdm

from dgnet import checkpoint
from dgnet import losses as L
from dgnet.config import Config
from dgnet.data.dataset import scaled_pad
from dgnet.data.transforms import random_erasing
from dgnet.models import AppearanceEncoder
from dgnet.runlog import RunLog
from dgnet.train.batches import BatchSampler, augment, iteration_generator
from dgnet.train.dgnet_step import check_finite
from dgnet.train.schedules import lr_factor
from dgnet.train.teacher import set_lr, sgd_with_head_lr


def train_offline_reid(
    cfg: Config,
    real_images: Tensor,
    real_labels: Tensor,
    gen_images: Tensor,
    gen_labels: Tensor,
    gen_struct_labels: Tensor,
    num_classes: int,
    teacher: nn.Module,
    out_path: str | Path,
    run: RunLog,
    progress: bool = True,
) -> AppearanceEncoder:
    """Train E_a on uint8 real and generated images for ``train.iterations``; save a ``reid`` checkpoint."""
    t = cfg.train
    device = torch.device(cfg.runtime.device)
    torch.manual_seed(t.seed)
    model = AppearanceEncoder(cfg.model.backbone, cfg.model.head, num_classes).to(device).train()
    optimizer = sgd_with_head_lr(model, t.lr_appearance, t.head_lr_mult, 0.9, t.weight_decay)
    teacher = teacher.to(device).eval()
    real = BatchSampler(real_labels, t.batch_size, t.seed)
    fake = BatchSampler(gen_labels, t.batch_size, t.seed + 1)
    pad = scaled_pad(cfg.data.pad, cfg.data.height)
    sw = cfg.switches
    w_prim = t.lambda_prim_max
    w_fine = t.alpha * t.lambda_prim_max

    bar = tqdm(range(t.iterations), desc="offline re-id", disable=not progress, dynamic_ncols=True)
    for it in bar:
        set_lr(optimizer, lr_factor(it, t.lr_steps, t.lr_gamma))
        g = iteration_generator(t.seed, it, stream=3)
        torch.manual_seed(t.seed * 7919 + it)
        ri, fi = real.indices(it), fake.indices(it)
        x_real = random_erasing(augment(real_images[ri], pad, g, sw.pad_mode), cfg.data.random_erasing, g,
                                aspect_sampling=sw.erasing_aspect).to(device)
        x_fake = augment(gen_images[fi], pad, g, sw.pad_mode).to(device)
        y_real, y_fake, y_struct = real_labels[ri].to(device), gen_labels[fi].to(device), gen_struct_labels[fi].to(device)
        out_real, out_fake = model(x_real), model(x_fake)
        with torch.no_grad():
            soft = L.teacher_soft_labels(teacher(x_fake).logits, teacher(x_fake.flip(3)).logits)
        losses = {
            "id_real": L.id_loss(out_real.logits_prim, y_real),
            "prim": L.prim_kl(out_fake.logits_prim, soft),
            "fine": L.id_loss(out_fake.logits_fine, y_struct),
            "fine_real": L.id_loss(out_real.logits_fine, y_real),
        }
        check_finite(losses)
        total = losses["id_real"] + w_prim * losses["prim"] + w_fine * (losses["fine"] + losses["fine_real"])
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        if (it + 1) % t.log_every == 0 or it + 1 == t.iterations:
            values = {f"loss/{k}": v.item() for k, v in losses.items()}
            run.log_metrics({**values, "loss/total": total.item(), "lr/appearance": optimizer.param_groups[0]["lr"]},
                            step=it + 1)
            bar.set_postfix(total=f"{total.item():.3f}")
    model.eval()
    state = checkpoint.make_state("reid", cfg, num_classes, t.iterations, {"appearance": model}, {"sgd": optimizer})
    checkpoint.save(out_path, state)
    return model
