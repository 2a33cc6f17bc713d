"""SSIM diversity: (1 - SSIM)/2 in Lab, the reference's pairs, rounds and midrange ± half-range."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dgnet.eval import ssim

H, W = 16, 8  # SSIM's 7x7 window fits


def _const(value: int) -> np.ndarray:
    return np.full((H, W, 3), value, dtype=np.uint8)


# Black (L=0) vs white (L=100), a = b = 0: SSIM is the mean over the L, a, b channels of
# (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1) * 1 (zero variances), C1 = (0.01 * 100)^2 = 1,
# so L gives 1 / (100^2 + 1) and a, b give 1: DSSIM = (1 - (1/10001 + 2) / 3) / 2.
# (skimage's white is a, b ~ 0.005 rather than 0: a 5e-6 difference, hence abs=1e-5.)
BLACK_WHITE = (1 - (1 / 10001 + 2) / 3) / 2


def test_dssim_by_hand():
    assert ssim.dssim_lab(_const(0), _const(0)) == 0.0
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    assert ssim.dssim_lab(noise, noise) == pytest.approx(0.0, abs=1e-12)
    assert ssim.dssim_lab(_const(0), _const(255)) == pytest.approx(BLACK_WHITE, abs=1e-5)
    assert BLACK_WHITE == pytest.approx(0.16665, abs=1e-5)
    # an image against its negative is far more different than against a slightly noisier copy
    noisier = np.clip(noise.astype(int) + rng.integers(-10, 11, noise.shape), 0, 255).astype(np.uint8)
    assert ssim.dssim_lab(noise, 255 - noise) > ssim.dssim_lab(noise, noisier)


def test_protocol_counts_rounds_pairs_and_skips_single_image_identities():
    groups = {
        1: [_const(30), _const(30), _const(30)],  # identical images: every pair 0
        2: [_const(0), _const(255)],  # every pair black vs white
        3: [_const(90)],  # one image: skipped (the reference would stop with an IndexError)
    }
    r = ssim.ssim_diversity(groups, seed=0)
    assert (r.groups, r.skipped, r.pairs_per_round) == (2, 1, 2 * ssim.REF_PAIRS)
    assert len(r.running_means) == len(r.round_means) == ssim.REF_ROUNDS == 5
    assert ssim.REF_PAIRS == 10
    assert r.value == pytest.approx(BLACK_WHITE / 2, abs=1e-5)
    assert r.half_range == pytest.approx(0.0, abs=1e-9)
    assert r.cell() == f"{BLACK_WHITE / 2:.3f} ± 0.000"


def test_midrange_of_running_means_as_the_reference_reports():
    rng = np.random.default_rng(1)
    groups = {k: [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(4)] for k in range(3)}
    r = ssim.ssim_diversity(groups, seed=3)
    # the reference never resets its sums: after round k it prints the mean over rounds 0..k
    cumulative = np.cumsum(r.round_means) / np.arange(1, len(r.round_means) + 1)
    np.testing.assert_allclose(r.running_means, cumulative, rtol=1e-12)
    assert r.value == pytest.approx((max(cumulative) + min(cumulative)) / 2)
    assert r.half_range == pytest.approx((max(cumulative) - min(cumulative)) / 2)
    assert r.half_range > 0  # random pairs differ between rounds
    again = ssim.ssim_diversity(groups, seed=3)
    assert again == r  # seeded
    assert ssim.ssim_diversity(groups, seed=4).running_means != r.running_means


def test_folder_tree_of_a_generated_set(tmp_path):
    root = tmp_path / "by_appearance"
    for pid, values in {"0001": (0, 255), "0002": (40, 40)}.items():
        (root / pid).mkdir(parents=True)
        for k, v in enumerate(values):
            Image.fromarray(_const(v)).save(root / pid / f"img{k}.png")
    (root / "0002" / "notes.txt").write_text("not an image")
    groups = ssim.groups_from_folder(root)
    assert sorted(groups) == ["0001", "0002"] and all(len(v) == 2 for v in groups.values())
    r = ssim.ssim_diversity(groups)
    assert r.value == pytest.approx(BLACK_WHITE / 2, abs=1e-5)
    # decoded at another size, constant images stay constant
    assert ssim.ssim_diversity(groups, size=(32, 16)).value == pytest.approx(BLACK_WHITE / 2, abs=1e-5)


def test_no_identity_with_two_images_is_not_a_number():
    r = ssim.ssim_diversity({1: [_const(0)]})
    assert np.isnan(r.value) and r.groups == 0 and r.cell().startswith("n/a")
