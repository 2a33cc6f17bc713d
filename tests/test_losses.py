"""Losses on hand-made tensors whose values are computed by hand."""

import math

import pytest
import torch

from dgnet import losses


def test_recon_l1_is_the_mean_absolute_error():
    x = torch.tensor([[1.0, -2.0], [3.0, 4.0]])
    target = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    assert losses.recon_l1(x, target).item() == pytest.approx((1 + 2 + 2 + 3) / 4)


def test_recon_l1_detaches_the_target_unless_asked_not_to():
    x = torch.zeros(3, requires_grad=True)
    target = torch.ones(3, requires_grad=True)
    losses.recon_l1(x, target).backward()
    assert target.grad is None
    assert torch.allclose(x.grad, torch.full((3,), -1 / 3))
    x.grad = None
    losses.recon_l1(x, target, detach_target=False).backward()
    assert torch.allclose(target.grad, torch.full((3,), 1 / 3))


def test_id_loss_of_uniform_logits_is_log_k():
    logits = torch.zeros(5, 4)
    labels = torch.tensor([0, 1, 2, 3, 0])
    assert losses.id_loss(logits, labels).item() == pytest.approx(math.log(4))


def test_id_loss_of_a_confident_right_answer_is_small_and_wrong_is_large():
    logits = torch.tensor([[10.0, 0.0]])
    assert losses.id_loss(logits, torch.tensor([0])).item() < 1e-3
    assert losses.id_loss(logits, torch.tensor([1])).item() == pytest.approx(10.0, abs=1e-3)


def _const(value, shapes):
    return [torch.full(s, float(value)) for s in shapes]


SHAPES = [(2, 1, 8, 4), (2, 1, 4, 2), (2, 1, 2, 1)]


def test_lsgan_dis_loss_on_constant_outputs():
    # a perfect D: real -> 1, fake -> 0
    assert losses.lsgan_dis_loss(_const(1, SHAPES), _const(0, SHAPES)).item() == 0.0
    # the worst D: real -> 0, fake -> 1: (1 + 1) per scale
    assert losses.lsgan_dis_loss(_const(0, SHAPES), _const(1, SHAPES)).item() == pytest.approx(6.0)
    # undecided: 0.25 + 0.25 per scale
    assert losses.lsgan_dis_loss(_const(0.5, SHAPES), _const(0.5, SHAPES)).item() == pytest.approx(1.5)


def test_lsgan_dis_loss_needs_matching_scales():
    with pytest.raises(ValueError):
        losses.lsgan_dis_loss(_const(1, SHAPES), _const(0, SHAPES[:2]))


def test_lsgan_gen_loss_has_the_reference_factor_two_per_scale():
    assert losses.lsgan_gen_loss(_const(1, SHAPES)).item() == 0.0
    assert losses.lsgan_gen_loss(_const(0, SHAPES[:2])).item() == pytest.approx(2 * 2 * 1.0)
    assert losses.lsgan_gen_loss(_const(0, SHAPES[:2]), factor=1.0).item() == pytest.approx(2.0)
    assert losses.lsgan_gen_loss(_const(0.5, SHAPES)).item() == pytest.approx(3 * 2 * 0.25)


def test_r1_penalty_of_a_linear_discriminator():
    torch.manual_seed(0)
    b, c, h, w = 3, 3, 4, 2
    weight = torch.randn(1, c, h, w, requires_grad=True)
    x = torch.randn(b, c, h, w).requires_grad_()

    def dis(images):
        # scale 0: <w, x> per image -> d/dx = w; scale 1: 2 x pooled -> d sum / dx = 2 everywhere
        s0 = (images * weight).sum(dim=(1, 2, 3)).view(b, 1, 1, 1)
        s1 = 2 * images.mean(dim=1, keepdim=True) * c
        return [s0, s1]

    penalty = losses.r1_penalty(dis(x), x)
    expected = weight.pow(2).sum() + 4.0 * c * h * w  # per image, averaged over the batch
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-5)
    # create_graph: the penalty trains D (d/dw sum(w^2) = 2w)
    penalty.backward()
    assert torch.allclose(weight.grad, 2 * weight.detach())


def test_r1_penalty_needs_requires_grad_before_d():
    x = torch.randn(2, 3, 4, 2)
    with pytest.raises(ValueError, match="requires_grad"):
        losses.r1_penalty([x.sum(dim=1, keepdim=True)], x)


def test_teacher_soft_labels_average_image_and_flip():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax [1/4, 3/4]
    flipped = torch.tensor([[math.log(3.0), 0.0]])  # softmax [3/4, 1/4]
    q = losses.teacher_soft_labels(logits, flipped)
    assert torch.allclose(q, torch.tensor([[0.5, 0.5]]))


def test_teacher_soft_labels_of_a_flip_symmetric_case_is_the_softmax():
    torch.manual_seed(1)
    logits = torch.randn(4, 7, requires_grad=True)
    q = losses.teacher_soft_labels(logits, logits.clone())
    assert torch.allclose(q, torch.softmax(logits, 1))
    assert torch.allclose(q.sum(1), torch.ones(4))
    assert not q.requires_grad  # the teacher is never trained by L_prim


def test_prim_kl_is_zero_when_student_equals_teacher():
    torch.manual_seed(2)
    logits = torch.randn(5, 6)
    assert losses.prim_kl(logits, torch.softmax(logits, 1)).item() == pytest.approx(0.0, abs=1e-6)


def test_prim_kl_known_value_and_batch_mean():
    student = torch.zeros(2, 2)  # p = [1/2, 1/2]
    teacher = torch.tensor([[1.0, 0.0], [0.5, 0.5]])  # KL = log 2 and 0
    assert losses.prim_kl(student, teacher).item() == pytest.approx(math.log(2) / 2)


def test_prim_kl_gradient_is_p_minus_q_over_batch():
    student = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, -1.0]], requires_grad=True)
    teacher = torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    losses.prim_kl(student, teacher).backward()
    expected = (torch.softmax(student.detach(), 1) - teacher) / 2
    assert torch.allclose(student.grad, expected, atol=1e-6)
