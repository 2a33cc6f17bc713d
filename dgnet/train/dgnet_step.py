"""One joint DG-Net iteration: ``generate`` once, then ``dis_step``, then ``gen_step``.

    sw = cfg.switches
    gen = generate(nets, batch, erasing_p, generator, sw)
    d_losses = dis_step(nets["discriminator"], opt_dis, batch.images, gen.cross, gp_weight, sw.groups)
    g_losses = gen_step(nets, teacher, opt_gen, opt_app, batch, gen, weights, generator, sw)

Notation (paper Section 3): x_i = ``batch.images``, x_t = ``batch.positives``
(same identity, another image), j = ``batch.partner[i]`` (another identity in
the batch), a = appearance code (E_a), s = structure code (E_s on gray input).

Where the paper and the official code differ, ``Switches`` (``train.fidelity``
and its per-point keys, docs/fidelity.md) choose; the points both share:

- The appearance code enters G detached: generation losses never update E_a
  through G; E_a is trained only by identity losses (real and generated).
- Random erasing (p 0.5) is applied only to the inputs of the identity losses
  on real images; G decodes the codes of the clean images.
- L_id^s also covers the same-identity images x_t (the official ``pid``
  loss), and the fine head is trained on real images with weight lambda_fine.
- L_code1 and L_id^c go through a frozen copy of E_a (detached weights, BN on
  batch statistics, dropout off): they train G and E_s only.
- L_code2: with probability 0.5 E_s re-encodes the detached generation
  (training E_s), otherwise a frozen E_s encodes the live generation
  (training G): the official ``use_encoder_again: 0.5``.
- L_prim and L_fine are computed on detached generations (the "online
  feeding"); the teacher's soft label is its softmax averaged over the image
  and its horizontal flip.
- Reconstruction targets are detached; D is updated on the same generations
  that the G step then uses (one decoder pass per iteration).
- Every trained parameter gets a gradient, zero where its losses are off, so
  weight decay and momentum act the same in one process and in several.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import Tensor, nn
from torch.func import functional_call

from dgnet import losses as L
from dgnet.data import transforms as T
from dgnet.errors import DivergenceError
from dgnet.models.structure import to_gray
from dgnet.train.distributed import average_gradients
from dgnet.fidelity import Switches


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
    (they are updated on clones), as the official code's deep copy in train-BN mode.
    """
    params = {name: p.detach() for name, p in module.named_parameters()}
    buffers = {name: b.clone() for name, b in module.named_buffers()}
    with dropout_off(module):
        return functional_call(module, (params, buffers), inputs)


def in_groups(forward: Callable, x: Tensor, groups: int):
    """``forward`` on each of ``groups`` equal chunks of ``x`` apart (own BN statistics), outputs concatenated."""
    if groups == 1:
        return forward(x)
    outs = [forward(chunk) for chunk in x.chunk(groups)]
    if isinstance(outs[0], Tensor):
        return torch.cat(outs)
    return type(outs[0])(*(torch.cat(field) for field in zip(*outs)))


def summed_over(groups: int, loss: Callable[..., Tensor], *tensors: Tensor) -> Tensor:
    """``loss`` on each of ``groups`` equal chunks of the tensors, summed: the official code adds the
    means of its two loaders' half-batches (``groups=2``); ``groups=1`` is one mean over the batch."""
    if groups == 1:
        return loss(*tensors)
    parts = zip(*(t.chunk(groups) for t in tensors))
    return sum(loss(*chunk) for chunk in parts)


def generate(
    nets: dict[str, nn.Module], batch: Batch, erasing_p: float, generator: torch.Generator, sw: Switches
) -> Generated:
    """Encode real images, decode self-, same-id and cross-id images in one G pass."""
    appearance, structure, decoder = nets["appearance"], nets["structure"], nets["decoder"]
    b = batch.images.shape[0]
    real = torch.cat([batch.images, batch.positives])  # (2B, 3, H, W)
    aspect = "uniform" if sw.erasing_aspect == "uniform" else "log_uniform"
    n, _, h, w = real.shape
    boxes = T.erasing_boxes(n, h, w, erasing_p, generator, aspect_sampling=aspect)  # drawn on the host
    erased = T.erase(real, boxes)
    if sw.appearance_bn == "half_batches":
        codes, logits_prim, logits_fine = _encode_real_in_halves(appearance, real, erased, erasing_p, sw.bn_groups)
    else:
        was_erased = [i for i, (top, bottom, _, _) in enumerate(boxes.tolist()) if bottom > top]
        codes, logits_prim, logits_fine = _encode_real_whole(appearance, real, erased, was_erased)
    code, code_pos = codes[:b], codes[b:]

    struct = structure(to_gray(batch.images))  # (B, C_s, H/4, W/4)
    decoded = decoder(
        torch.cat([struct, struct, struct[batch.partner]]),
        torch.cat([code, code_pos, code]),
    )  # (3B, 3, H, W)
    recon, recon_pos, cross = decoded.split(b)
    return Generated(struct=struct, code=code, code_pos=code_pos, recon=recon, recon_pos=recon_pos, cross=cross,
                     logits_prim_real=logits_prim, logits_fine_real=logits_fine)


def _encode_real_whole(appearance: nn.Module, real: Tensor, erased: Tensor,
                       was_erased: list[int]) -> tuple[Tensor, Tensor, Tensor]:
    """One E_a pass over the erased images plus the clean copies of the erased rows (``was_erased``,
    known on the host, so the batch's size never waits on the device)."""
    n = real.shape[0]
    rows = T.to_device(torch.tensor(was_erased, dtype=torch.long), real.device)
    out = appearance(torch.cat([erased, real.index_select(0, rows)]))
    codes = out.code[:n].detach().index_copy(0, rows, out.code[n:].detach())  # clean codes for G
    return codes, out.logits_prim[:n], out.logits_fine[:n]


def _encode_real_in_halves(
    appearance: nn.Module, real: Tensor, erased: Tensor, erasing_p: float, groups: int
) -> tuple[Tensor, Tensor, Tensor]:
    """E_a on each half-batch apart, in the official order: clean x_a, x_b, x_t of a, of b,
    then (with erasing on) the erased copies of all four, whose logits the id losses use."""
    clean = in_groups(appearance, real, 2 * groups)
    codes = clean.code.detach()
    if erasing_p == 0:
        return codes, clean.logits_prim, clean.logits_fine
    out = in_groups(appearance, erased, 2 * groups)
    return codes, out.logits_prim, out.logits_fine


def dis_step(
    discriminator: nn.Module, optimizer: torch.optim.Optimizer, real: Tensor, fake: Tensor, gp_weight: float,
    groups: int = 1,
) -> dict[str, Tensor]:
    """Update D: LSGAN on real vs detached generated images, plus the R1-style penalty.
    The losses are not checked here: the caller watches them (:class:`dgnet.train.guards.FinitenessWatch`).

    ``groups=2`` sums the two half-batches' losses (the official code's D on loader a, then b).
    """
    requires_grad(discriminator, True)
    optimizer.zero_grad(set_to_none=True)
    adv = gp = torch.zeros((), device=real.device)
    for real_part, fake_part in zip(real.chunk(groups), fake.chunk(groups)):
        real_part = real_part.detach().requires_grad_(gp_weight > 0)
        out_real = discriminator(real_part)
        adv = adv + L.lsgan_dis_loss(out_real, discriminator(fake_part.detach()))
        if gp_weight > 0:
            gp = gp + L.r1_penalty(out_real, real_part)
    total = adv + gp_weight * gp
    total.backward()
    average_gradients(discriminator)
    optimizer.step()
    return {"d_adv": adv.detach(), "d_gp": gp.detach(), "d_total": total.detach()}


LOSS_WEIGHT = {  # loss name -> the weight of equation 10 that scales it
    "img1": "lambda_img",
    "img2": "lambda_img",
    "code1": "lambda_code",
    "code2": "lambda_code",
    "cycle": "lambda_cycle",
    "id_real": "lambda_id_real",
    "id_gen": "lambda_id_gen",
    "adv": "lambda_adv",
    "prim": "lambda_prim",
    "fine": "lambda_fine",
    "fine_real": "lambda_fine_real",
}


def gen_losses(
    nets: dict[str, nn.Module],
    teacher: nn.Module,
    batch: Batch,
    gen: Generated,
    weights: dict[str, float],
    generator: torch.Generator,
    sw: Switches,
) -> dict[str, Tensor]:
    """Every loss of equation 10 (and the official cycle loss) with a non-zero weight, still attached."""
    appearance, structure, decoder, discriminator = (nets[k] for k in ("appearance", "structure", "decoder",
                                                                        "discriminator"))
    g, labels = sw.groups, batch.labels
    struct_labels = labels[batch.partner]  # y_j, the structure provider's identity
    losses: dict[str, Tensor] = {}

    # self- and same-identity reconstruction (eq. 1, 2)
    losses["img1"] = summed_over(g, L.recon_l1, gen.recon, batch.images)
    losses["img2"] = summed_over(g, L.recon_l1, gen.recon_pos, batch.images)

    # code reconstruction (eq. 4, 5) and identity of generated images (eq. 6)
    frozen = in_groups(lambda x: frozen_forward(appearance, x), gen.cross, sw.bn_groups)
    code_recon = frozen.code.detach() if sw.code1_gradient == "detached" else frozen.code
    losses["code1"] = summed_over(g, L.recon_l1, code_recon, gen.code)
    if torch.rand((), generator=generator).tolist() < 0.5:  # a host draw: nothing is read back
        struct_recon = structure(to_gray(gen.cross.detach()))  # trains E_s
    else:
        struct_recon = frozen_forward(structure, to_gray(gen.cross))  # trains G
    losses["code2"] = summed_over(g, L.recon_l1, struct_recon, gen.struct[batch.partner])
    if weights["lambda_cycle"] > 0:
        # x_j's structure came back in generation k where partner[k] = j; x_j's appearance in generation j
        back = torch.argsort(batch.partner)
        cycle = decoder(struct_recon[back], frozen.code.detach())
        losses["cycle"] = summed_over(g, L.recon_l1, cycle, batch.images)
    if weights["lambda_id_gen"] > 0:
        losses["id_gen"] = summed_over(g, L.id_loss, frozen.logits_prim, labels)

    # identification on real images (eq. 3), erased inputs: [x_i; x_t], each half-batch a mean of its own
    real_labels = torch.cat([labels, labels])
    losses["id_real"] = summed_over(2 * g if g > 1 else 1, L.id_loss, gen.logits_prim_real, real_labels)

    # adversarial (eq. 7), D frozen; D has no batch statistics, so its outputs split by half-batch
    requires_grad(discriminator, False)
    fake_outputs = discriminator(gen.cross)
    requires_grad(discriminator, True)
    losses["adv"] = sum(L.lsgan_gen_loss([o.chunk(g)[k] for o in fake_outputs]) for k in range(g))

    # online feeding: primary (eq. 8) and fine-grained (eq. 9) on detached generations
    if weights["lambda_prim"] > 0 or weights["lambda_fine"] > 0:
        fed_images = gen.cross.detach()
        fed = in_groups(appearance, fed_images, sw.bn_groups)
        with torch.no_grad():
            soft = in_groups(lambda x: teacher_soft_labels(teacher, x, sw.teacher_bn), fed_images, sw.bn_groups)
        losses["prim"] = summed_over(g, L.prim_kl, fed.logits_prim, soft)
        losses["fine"] = summed_over(g, L.id_loss, fed.logits_fine, struct_labels)
    if weights["lambda_fine_real"] > 0:
        if sw.fine_real_on == "anchors":
            b = labels.shape[0]
            losses["fine_real"] = summed_over(g, L.id_loss, gen.logits_fine_real[:b], labels)
        else:
            losses["fine_real"] = summed_over(2 * g if g > 1 else 1, L.id_loss, gen.logits_fine_real, real_labels)
    return losses


def teacher_soft_labels(teacher: nn.Module, images: Tensor, bn: str) -> Tensor:
    """The teacher's soft label on ``images`` and their flips; BN on running (``running``) or
    batch statistics (``batch``, the official ``train_bn``; the teacher's stored averages stay put)."""
    if bn == "running":
        return L.teacher_soft_labels(teacher(images).logits, teacher(images.flip(3)).logits)
    with batchnorm_training(teacher):
        buffers = {name: b.clone() for name, b in teacher.named_buffers()}
        params = dict(teacher.named_parameters())
        logits = functional_call(teacher, (params, buffers), (images,)).logits
        logits_flip = functional_call(teacher, (params, buffers), (images.flip(3),)).logits
    return L.teacher_soft_labels(logits, logits_flip)


@contextlib.contextmanager
def batchnorm_training(module: nn.Module) -> Iterator[None]:
    """Put the BatchNorm layers of ``module`` in training mode for the block (dropout untouched)."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    modes = [m.training for m in norms]
    for m in norms:
        m.train()
    try:
        yield
    finally:
        for m, mode in zip(norms, modes):
            m.train(mode)


def gen_step(
    nets: dict[str, nn.Module],
    teacher: nn.Module,
    opt_gen: torch.optim.Optimizer,
    opt_app: torch.optim.Optimizer,
    batch: Batch,
    gen: Generated,
    weights: dict[str, float],
    generator: torch.Generator,
    sw: Switches,
) -> dict[str, Tensor]:
    """Update E_a, E_s and G with the weighted sum of equation 10; return every named loss."""
    losses = gen_losses(nets, teacher, batch, gen, weights, generator, sw)
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
