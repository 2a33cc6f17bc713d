"""One joint DG-Net iteration: ``generate`` once, then ``dis_step``, then ``gen_step``.

    gen = generate(nets, batch, erasing_p, generator)
    d_losses = dis_step(nets["discriminator"], opt_dis, batch.images, gen.cross, gp_weight)
    g_losses = gen_step(nets, teacher, opt_gen, opt_app, batch, gen, weights, generator)

Notation (paper Section 3): x_i = ``batch.images``, x_t = ``batch.positives``
(same identity, another image), j = ``batch.partner[i]`` (another identity in
the batch), a = appearance code (E_a), s = structure code (E_s on gray input).

Choices taken from the reference implementation (NVlabs/DG-Net) where the
paper is silent, each visible below:

- The appearance code enters G detached: generation losses never update E_a
  through G; E_a is trained only by identity losses (real and generated).
- Random erasing (p 0.5) is applied only to the inputs of the identity losses
  on real images. Rows that were erased are also encoded clean in the same
  forward pass, because G must decode the clean image's code.
- L_id^s also covers the same-identity images x_t (the reference's ``pid``
  loss), and the fine head is trained on real images with weight lambda_fine
  (the reference's ``weight_B`` term, ``fine_real`` below).
- L_code1 and L_id^c go through a frozen copy of E_a (detached weights, BN on
  batch statistics, dropout off): they train G and E_s only.
- L_code2: with probability 0.5 E_s re-encodes the detached generation
  (training E_s), otherwise a frozen E_s encodes the live generation
  (training G): the reference's ``use_encoder_again: 0.5``.
- L_prim and L_fine are computed on detached generations (the "online
  feeding"); the teacher's soft label is its softmax averaged over the image
  and its horizontal flip.
- Reconstruction targets are detached; D is updated on the same generations
  that the G step then uses (one decoder pass per iteration).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor, nn
from torch.func import functional_call

from dgnet import losses as L
from dgnet.data.transforms import random_erasing
from dgnet.models.structure import to_gray
from dgnet.train.distributed import average_gradients


class DivergenceError(RuntimeError):
    """A loss became NaN or infinite."""


@dataclass
class Batch:
    images: Tensor  # x_i (B, 3, H, W), normalised and augmented
    positives: Tensor  # x_t (B, 3, H, W), same identity as x_i, another image
    labels: Tensor  # y_i (B,)
    partner: Tensor  # (B,) index into the batch: j, the structure provider of the cross-id generation


@dataclass
class Generated:
    struct: Tensor  # s_i (B, C_s, H/4, W/4)
    code: Tensor  # a_i detached (B, C_a, h, 1)
    code_pos: Tensor  # a_t detached
    recon: Tensor  # G(a_i, s_i)
    recon_pos: Tensor  # G(a_t, s_i)
    cross: Tensor  # x_j^i = G(a_i, s_j)
    logits_prim_real: Tensor  # E_a on erased [x_i; x_t] (2B, K)
    logits_fine_real: Tensor


def requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


@contextlib.contextmanager
def dropout_off(module: nn.Module) -> Iterator[None]:
    dropouts = [m for m in module.modules() if isinstance(m, nn.Dropout) and m.training]
    for m in dropouts:
        m.eval()
    try:
        yield
    finally:
        for m in dropouts:
            m.train()


def frozen_forward(module: nn.Module, *inputs: Tensor):
    """Run ``module`` with detached weights: gradient reaches the inputs only.

    BatchNorm uses batch statistics but its running averages are not touched
    (they are updated on clones), matching the reference's deep copy.
    """
    params = {name: p.detach() for name, p in module.named_parameters()}
    buffers = {name: b.clone() for name, b in module.named_buffers()}
    with dropout_off(module):
        return functional_call(module, (params, buffers), inputs)


def generate(nets: dict[str, nn.Module], batch: Batch, erasing_p: float, generator: torch.Generator) -> Generated:
    """Encode real images once and decode self-, same-id and cross-id images in one G pass."""
    appearance, structure, decoder = nets["appearance"], nets["structure"], nets["decoder"]
    b = batch.images.shape[0]
    real = torch.cat([batch.images, batch.positives])  # (2B, 3, H, W)
    erased = random_erasing(real, erasing_p, generator)
    was_erased = (erased != real).flatten(1).any(dim=1)  # (2B,)
    out = appearance(torch.cat([erased, real[was_erased]]))
    codes = out.code[: 2 * b].detach().clone()
    codes[was_erased] = out.code[2 * b :].detach()  # clean codes for G
    code, code_pos = codes[:b], codes[b:]

    struct = structure(to_gray(batch.images))  # (B, C_s, H/4, W/4)
    decoded = decoder(
        torch.cat([struct, struct, struct[batch.partner]]),
        torch.cat([code, code_pos, code]),
    )  # (3B, 3, H, W)
    recon, recon_pos, cross = decoded.split(b)
    return Generated(
        struct=struct,
        code=code,
        code_pos=code_pos,
        recon=recon,
        recon_pos=recon_pos,
        cross=cross,
        logits_prim_real=out.logits_prim[: 2 * b],
        logits_fine_real=out.logits_fine[: 2 * b],
    )


def dis_step(
    discriminator: nn.Module, optimizer: torch.optim.Optimizer, real: Tensor, fake: Tensor, gp_weight: float
) -> dict[str, Tensor]:
    """Update D: LSGAN on real vs detached generated images, plus the R1-style penalty."""
    requires_grad(discriminator, True)
    optimizer.zero_grad(set_to_none=True)
    real = real.detach().requires_grad_(gp_weight > 0)
    out_real = discriminator(real)
    out_fake = discriminator(fake.detach())
    adv = L.lsgan_dis_loss(out_real, out_fake)
    gp = L.r1_penalty(out_real, real) if gp_weight > 0 else torch.zeros((), device=real.device)
    total = adv + gp_weight * gp
    check_finite({"d_adv": adv, "d_gp": gp})
    total.backward()
    average_gradients(discriminator)
    optimizer.step()
    return {"d_adv": adv.detach(), "d_gp": gp.detach(), "d_total": total.detach()}


LOSS_WEIGHT = {  # loss name -> the weight of equation 10 that scales it
    "img1": "lambda_img",
    "img2": "lambda_img",
    "code1": "lambda_code",
    "code2": "lambda_code",
    "id_real": "lambda_id_real",
    "id_gen": "lambda_id_gen",
    "adv": "lambda_adv",
    "prim": "lambda_prim",
    "fine": "lambda_fine",
    "fine_real": "lambda_fine",
}


def gen_losses(
    nets: dict[str, nn.Module],
    teacher: nn.Module,
    batch: Batch,
    gen: Generated,
    weights: dict[str, float],
    generator: torch.Generator,
) -> dict[str, Tensor]:
    """Every loss of equation 10 (those with a non-zero weight), still attached to the graph."""
    appearance, structure, discriminator = nets["appearance"], nets["structure"], nets["discriminator"]
    labels = batch.labels
    struct_labels = labels[batch.partner]  # y_j, the structure provider's identity
    losses: dict[str, Tensor] = {}

    # self- and same-identity reconstruction (eq. 1, 2)
    losses["img1"] = L.recon_l1(gen.recon, batch.images)
    losses["img2"] = L.recon_l1(gen.recon_pos, batch.images)

    # code reconstruction (eq. 4, 5) and identity of generated images (eq. 6)
    frozen = frozen_forward(appearance, gen.cross)
    losses["code1"] = L.recon_l1(frozen.code, gen.code)
    struct_target = gen.struct[batch.partner]
    if torch.rand((), generator=generator).item() < 0.5:
        struct_recon = structure(to_gray(gen.cross.detach()))  # trains E_s
    else:
        struct_recon = frozen_forward(structure, to_gray(gen.cross))  # trains G
    losses["code2"] = L.recon_l1(struct_recon, struct_target)
    if weights["lambda_id_gen"] > 0:
        losses["id_gen"] = L.id_loss(frozen.logits_prim, labels)

    # identification on real images (eq. 3), erased inputs
    real_labels = torch.cat([labels, labels])
    losses["id_real"] = L.id_loss(gen.logits_prim_real, real_labels)

    # adversarial (eq. 7), D frozen
    requires_grad(discriminator, False)
    losses["adv"] = L.lsgan_gen_loss(discriminator(gen.cross))
    requires_grad(discriminator, True)

    # online feeding: primary (eq. 8) and fine-grained (eq. 9) on detached generations
    if weights["lambda_prim"] > 0 or weights["lambda_fine"] > 0:
        fed_images = gen.cross.detach()
        fed = appearance(fed_images)
        with torch.no_grad():
            soft = L.teacher_soft_labels(teacher(fed_images).logits, teacher(fed_images.flip(3)).logits)
        losses["prim"] = L.prim_kl(fed.logits_prim, soft)
        losses["fine"] = L.id_loss(fed.logits_fine, struct_labels)
        losses["fine_real"] = L.id_loss(gen.logits_fine_real, real_labels)
    return losses


def gen_step(
    nets: dict[str, nn.Module],
    teacher: nn.Module,
    opt_gen: torch.optim.Optimizer,
    opt_app: torch.optim.Optimizer,
    batch: Batch,
    gen: Generated,
    weights: dict[str, float],
    generator: torch.Generator,
) -> dict[str, Tensor]:
    """Update E_a, E_s and G with the weighted sum of equation 10; return every named loss."""
    losses = gen_losses(nets, teacher, batch, gen, weights, generator)
    check_finite(losses)
    total = sum(weights[LOSS_WEIGHT[name]] * value for name, value in losses.items())
    opt_gen.zero_grad(set_to_none=True)
    opt_app.zero_grad(set_to_none=True)
    total.backward()
    for name in ("appearance", "structure", "decoder"):
        average_gradients(nets[name])
    opt_gen.step()
    opt_app.step()
    out = {name: value.detach() for name, value in losses.items()}
    out["total"] = total.detach()
    return out


def check_finite(losses: dict[str, Tensor]) -> None:
    for name, value in losses.items():
        number = float(value.detach())
        if not math.isfinite(number):
            raise DivergenceError(f"loss {name!r} is {number}")
