"""Every loss of the paper as a small pure function (equations 1-10; docs/fidelity.md for the official code).

    from dgnet import losses
    l_img1 = losses.recon_l1(decoder(s_i, a_i), x_i)                   # eq. 1
    l_id_s = losses.id_loss(out.logits_prim, y_i)                       # eq. 3
    d_loss = losses.lsgan_dis_loss(dis(x_real), dis(x_fake.detach()))  # eq. 7 (LSGAN form)
    q = losses.teacher_soft_labels(teacher(x).logits, teacher(x.flip(3)).logits)
    l_prim = losses.prim_kl(student_logits, q)                          # eq. 8
    l_fine = losses.id_loss(logits_fine_on_generated, y_j)              # eq. 9

Weights (lambda_img, lambda_id, lambda_prim, lambda_fine, the gradient-penalty
weight) are applied by the training step, never here. Where the paper is
silent, the constants follow the reference NVlabs/DG-Net (networks.py,
trainer.py); each docstring says which.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def recon_l1(x: Tensor, target: Tensor, *, detach_target: bool = True) -> Tensor:
    """Mean absolute error ``mean |x - target|``: eq. 1 and 2 (image), 4 and 5 (codes).

    ``x`` is the reconstruction, ``target`` what it should equal. As the
    reference's ``recon_criterion`` (trainer.py l. 322-324) the target is
    detached, so that e.g. L_code2 = |s_j - E_s(G(a_i, s_j))| moves the
    reconstruction towards the code and not the code towards it; pass
    ``detach_target=False`` for a symmetric loss.
    """
    if detach_target:
        target = target.detach()
    return (x - target).abs().mean()


def id_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy, batch mean: eq. 3 (L_id^s on real images), eq. 6 (L_id^c on G(a_i, s_j)
    with the appearance provider's label y_i) and eq. 9 (L_fine: the fine-grained head on
    G(a_i, s_j) with the structure provider's label y_j)."""
    return F.cross_entropy(logits, labels)


def lsgan_dis_loss(real_outputs: Sequence[Tensor], fake_outputs: Sequence[Tensor]) -> Tensor:
    """D's adversarial loss (eq. 7 in the least-squares form the reference trains with).

    Summed over scales: ``mean(D_k(fake)^2) + mean((D_k(real) - 1)^2)``
    (networks.py l. 117-119, ``gan_type: lsgan``), no other factor.
    """
    _check_scales(real_outputs, fake_outputs)
    loss = real_outputs[0].new_zeros(())
    for real, fake in zip(real_outputs, fake_outputs):
        loss = loss + fake.pow(2).mean() + (real - 1).pow(2).mean()
    return loss


def lsgan_gen_loss(fake_outputs: Sequence[Tensor], factor: float = 2.0) -> Tensor:
    """The generator's adversarial loss (eq. 7, LSGAN form): ``sum_k factor * mean((D_k(fake) - 1)^2)``.

    ``factor = 2`` per scale is the reference's (``torch.mean((out0 - 1)**2) * 2``,
    networks.py l. 147); the paper does not state it.
    """
    if not fake_outputs:
        raise ValueError("no discriminator outputs")
    loss = fake_outputs[0].new_zeros(())
    for fake in fake_outputs:
        loss = loss + factor * (fake - 1).pow(2).mean()
    return loss


def r1_penalty(real_outputs: Sequence[Tensor], real_images: Tensor) -> Tensor:
    """Gradient penalty on real images (the reference's regulariser on D; not in the paper).

    For each scale k: ``g = d(sum D_k(x)) / dx``, then the squared gradient
    summed over each image's pixels and averaged over the batch; the scales'
    values are summed (networks.py ``compute_grad2``, l. 155-164, called once
    per scale in ``calc_dis_loss``, l. 121). The reference weights it by
    ``LAMBDA = 0.01`` (``gp_weight``), applied by the caller.

    ``real_images`` must have ``requires_grad`` set *before* D's forward pass;
    the graph is kept (``create_graph=True``) so that the penalty trains D.
    """
    if not real_images.requires_grad:
        raise ValueError("r1_penalty: call real_images.requires_grad_() before running D on them")
    batch = real_images.shape[0]
    penalty = real_images.new_zeros(())
    for out in real_outputs:
        (grad,) = torch.autograd.grad(out.sum(), real_images, create_graph=True, retain_graph=True)
        penalty = penalty + grad.pow(2).reshape(batch, -1).sum(1).mean()
    return penalty


def teacher_soft_labels(logits: Tensor, logits_flipped: Tensor) -> Tensor:
    """The teacher's dynamic soft label q (Section 3.2, eq. 8): the softmax of the teacher on
    the image and on its horizontal flip, averaged (the reference's ``predict_label`` with
    ``teacher_style: 0`` and one teacher, trainer.py l. 88-101, 149-151). Detached: (B, K)."""
    probs = (F.softmax(logits.detach(), dim=1) + F.softmax(logits_flipped.detach(), dim=1)) / 2
    return probs / probs.sum(dim=1, keepdim=True)  # exact renormalisation, as the reference


def prim_kl(student_logits: Tensor, teacher_probs: Tensor) -> Tensor:
    """L_prim (eq. 8): ``KL(q || p) = sum_k q_k log(q_k / p_k)``, averaged over the batch.

    ``p = softmax(student_logits)`` (the primary head on a generated image),
    ``q = teacher_probs``; terms with ``q_k = 0`` count zero. The reference:
    ``KLDivLoss(size_average=False)(log_softmax(p), q) / batch`` (trainer.py
    l. 291, 421-424).
    """
    return F.kl_div(F.log_softmax(student_logits, dim=1), teacher_probs, reduction="batchmean")


def _check_scales(real: Sequence[Tensor], fake: Sequence[Tensor]) -> None:
    if not real or len(real) != len(fake):
        raise ValueError(f"expected the same non-zero number of scales, got {len(real)} real and {len(fake)} fake")


__all__ = [
    "id_loss", "lsgan_dis_loss", "lsgan_gen_loss", "prim_kl", "r1_penalty", "recon_l1",
    "teacher_soft_labels",
]
