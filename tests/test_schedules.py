"""Schedules are pure functions of the iteration."""

import pytest

from dgnet.config import TrainConfig
from dgnet.train.schedules import lambda_fine, lambda_prim, loss_weights, lr_factor


def test_lambda_prim_is_off_then_ramps_linearly_then_flat():
    warm, ramp, top = 100, 40, 2.0
    assert lambda_prim(0, warm, ramp, top) == 0.0
    assert lambda_prim(99, warm, ramp, top) == 0.0
    assert lambda_prim(100, warm, ramp, top) == pytest.approx(top / ramp)
    assert lambda_prim(119, warm, ramp, top) == pytest.approx(top * 20 / ramp)
    assert lambda_prim(139, warm, ramp, top) == pytest.approx(top)
    assert lambda_prim(10_000, warm, ramp, top) == top
    values = [lambda_prim(i, warm, ramp, top) for i in range(200)]
    assert values == sorted(values)


def test_paper_ramp_matches_the_reference_increment():
    # the reference adds 0.0005 per iteration after 30K: 2.0 reached 4,000 iterations later
    assert lambda_prim(30_000 + 1999, 30_000, 4_000, 2.0) == pytest.approx(2000 * 0.0005)
    assert lambda_prim(34_000, 30_000, 4_000, 2.0) == 2.0


def test_zero_ramp_jumps_to_the_maximum():
    assert lambda_prim(5, 5, 0, 1.5) == 1.5
    assert lambda_prim(4, 5, 0, 1.5) == 0.0


def test_lambda_fine_is_alpha_times_lambda_prim():
    for it in (0, 120, 500):
        assert lambda_fine(it, 100, 40, 2.0, 0.2) == pytest.approx(0.2 * lambda_prim(it, 100, 40, 2.0))


def test_lr_factor_steps():
    assert lr_factor(0, (60, 90), 0.1) == 1.0
    assert lr_factor(59, (60, 90), 0.1) == 1.0
    assert lr_factor(60, (60, 90), 0.1) == pytest.approx(0.1)
    assert lr_factor(95, (60, 90), 0.1) == pytest.approx(0.01)
    assert lr_factor(5, (), 0.1) == 1.0


def test_loss_weights_apply_the_ablations_without_mutating_the_config():
    cfg = TrainConfig(warm_iter=0, ramp_iters=0, lambda_prim_max=2.0, alpha=0.2)
    full = loss_weights(10, cfg)
    assert full["lambda_prim"] == 2.0 and full["lambda_fine"] == pytest.approx(0.4)
    assert full["lambda_id_gen"] == cfg.lambda_id and full["lambda_img"] == cfg.lambda_img
    no_feed = loss_weights(10, TrainConfig(warm_iter=0, ramp_iters=0, feed_generated=False))
    assert no_feed["lambda_prim"] == 0 and no_feed["lambda_fine"] == 0
    assert no_feed["lambda_id_gen"] == cfg.lambda_id
    no_id = loss_weights(10, TrainConfig(warm_iter=0, ramp_iters=0, id_supervision=False))
    assert no_id["lambda_prim"] == 0 and no_id["lambda_fine"] == 0 and no_id["lambda_id_gen"] == 0
    assert cfg == TrainConfig(warm_iter=0, ramp_iters=0, lambda_prim_max=2.0, alpha=0.2)
