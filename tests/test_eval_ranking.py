"""CMC / mAP: hand-computed cases, and agreement with a per-query brute force."""

import logging

import numpy as np
import pytest
import torch

from dgnet.eval import ranking
from dgnet.eval.ranking import (
    auto_chunk,
    evaluate_features,
    evaluate_features_detailed,
    evaluate_ranking,
    evaluate_ranking_detailed,
    top_k_matches,
)


def brute_force(dist, qp, gp, qc, gc, max_rank, ap):
    """Independent per-query reference: stable argsort, remove junk and same camera."""
    dist, qp, gp, qc, gc = map(np.asarray, (dist, qp, gp, qc, gc))
    cmc = np.zeros(max_rank)
    aps = []
    for i in range(len(qp)):
        order = np.argsort(dist[i], kind="stable")
        removed = (gp[order] == -1) | ((gp[order] == qp[i]) & (gc[order] == qc[i]))
        good = (gp[order] == qp[i])[~removed]
        hits = np.flatnonzero(good)
        if len(hits) == 0:
            continue
        cmc[hits[0]:] += 1
        total = 0.0
        for n, r in enumerate(hits, start=1):
            precision = n / (r + 1)
            if ap == "standard":
                total += precision
            else:
                old = (n - 1) / r if r != 0 else 1.0
                total += (old + precision) / 2
        aps.append(total / len(hits))
    return cmc / len(aps), float(np.mean(aps)), len(qp) - len(aps)


# ---------------------------------------------------------------- hand-computed

# query 0: pid 1, camera 1. Gallery (index: pid, camera, distance):
#   0: 1, 1, 0.1  same pid and camera -> removed
#   1: -1, 2, 0.2 junk -> removed
#   2: 0, 2, 0.3  distractor -> a negative
#   3: 1, 2, 0.4  hit
#   4: 2, 3, 0.5  negative
#   5: 1, 3, 0.6  hit
# valid list [2, 3, 4, 5]: hits at 0-based positions 1 and 3.
#   trapezoid: hit 1: prec 1/2, old 0/1 -> 1/4; hit 2: prec 2/4, old 1/3 -> 5/12;
#              AP = (1/4 + 5/12) / 2 = 1/3
#   standard:  (1/2 + 2/4) / 2 = 1/2
#   CMC: first hit at position 1 -> rank1 0, rank2.. 1
# query 1: pid 3, camera 1; its only gallery image (index 6) is in camera 1 -> skipped.
G_PIDS = [1, -1, 0, 1, 2, 1, 3]
G_CAMS = [1, 2, 2, 2, 3, 3, 1]
DIST = [
    [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.9],
    [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.0],
]


@pytest.mark.parametrize("ap, expected", [("trapezoid", 1 / 3), ("standard", 1 / 2)])
def test_hand_computed_junk_distractor_same_camera(ap, expected):
    r = evaluate_ranking_detailed(DIST, [1, 3], G_PIDS, [1, 1], G_CAMS, max_rank=4, ap=ap)
    assert r.mAP == pytest.approx(expected)
    np.testing.assert_allclose(r.cmc, [0, 1, 1, 1])
    assert (r.num_valid_queries, r.num_skipped_queries) == (1, 1)
    assert r.first_hit.tolist() == [1, -1]
    assert np.isnan(r.ap_per_query[1])


def test_skipped_query_is_logged(caplog):
    with caplog.at_level(logging.INFO, logger="dgnet.eval.ranking"):
        evaluate_ranking(DIST, [1, 3], G_PIDS, [1, 1], G_CAMS, max_rank=4)
    assert "1 of 2 queries have no valid gallery match" in caplog.text


# Ties: query pid 1, camera 1. Gallery (index: pid, camera, distance):
#   0: 2, 2, 0.5   1: 1, 2, 0.5   2: 1, 3, 0.2   3: 5, 2, 0.2
# ties by gallery index -> order [2, 3, 0, 1]: hits at positions 0 and 3.
#   trapezoid: hit 1: 1; hit 2: prec 2/4, old 1/3 -> 5/12; AP = (1 + 5/12) / 2 = 17/24
#   standard:  (1 + 2/4) / 2 = 3/4
# (the opposite tie order [3, 2, 1, 0] would put the hits at 1 and 2.)
@pytest.mark.parametrize("ap, expected", [("trapezoid", 17 / 24), ("standard", 3 / 4)])
def test_ties_are_broken_by_gallery_index(ap, expected):
    dist = np.array([[0.5, 0.5, 0.2, 0.2]], dtype=np.float32)
    cmc, mAP = evaluate_ranking(dist, [1], [2, 1, 1, 5], [1], [2, 2, 3, 2], max_rank=3, ap=ap)
    assert mAP == pytest.approx(expected)
    np.testing.assert_allclose(cmc, [1, 1, 1])


def test_signed_zero_distances_tie():
    # -0.0 == 0.0: a tie, so gallery index decides (hit at index 0 ranks first)
    dist = np.array([[0.0, -0.0]])
    cmc, mAP = evaluate_ranking(dist, [1], [1, 2], [1], [2, 2], max_rank=1)
    assert cmc[0] == 1 and mAP == 1.0


def test_cmc_longer_than_gallery_and_torch_inputs():
    dist = torch.tensor([[0.3, 0.1, 0.2]])
    r = evaluate_ranking_detailed(
        dist, torch.tensor([1]), torch.tensor([2, 3, 1]), torch.tensor([1]), torch.tensor([2, 2, 2]),
        max_rank=5,
    )
    # order [1, 2, 0]: the hit (index 2) is second
    np.testing.assert_allclose(r.cmc, [0, 1, 1, 1, 1])
    assert r.rank(1) == 0 and r.rank(10) == 1


def test_errors():
    with pytest.raises(ValueError, match="none of the 1 queries"):
        evaluate_ranking([[0.1, 0.2]], [1], [2, -1], [1], [1, 1])
    with pytest.raises(ValueError, match="NaN"):
        evaluate_ranking([[np.nan, 0.2]], [1], [1, 2], [1], [2, 1])
    with pytest.raises(ValueError, match="ap"):
        evaluate_ranking([[0.1]], [1], [1], [1], [2], ap="interpolated")
    with pytest.raises(ValueError, match="shape"):
        evaluate_ranking([[0.1, 0.2]], [1], [1], [1], [2])


# ---------------------------------------------------------------- against brute force


def random_case(seed, num_q=25, num_g=70, levels=5, dtype=np.float32):
    rng = np.random.default_rng(seed)
    qp = rng.integers(0, 8, num_q)
    gp = rng.integers(-1, 8, num_g)  # includes junk (-1) and distractors (0)
    qc = rng.integers(1, 4, num_q)
    gc = rng.integers(1, 4, num_g)
    dist = (rng.integers(0, levels, (num_q, num_g)) / levels).astype(dtype)  # many ties
    return dist, qp, gp, qc, gc


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ap", ["trapezoid", "standard"])
def test_matches_brute_force_with_ties(seed, ap):
    dist, qp, gp, qc, gc = random_case(seed, dtype=np.float64 if seed % 2 else np.float32)
    want_cmc, want_map, want_skipped = brute_force(dist, qp, gp, qc, gc, 20, ap)
    for chunk in (1, 4, None):
        r = evaluate_ranking_detailed(dist, qp, gp, qc, gc, max_rank=20, ap=ap, chunk=chunk)
        np.testing.assert_allclose(r.cmc, want_cmc, rtol=0, atol=1e-12)
        assert r.mAP == pytest.approx(want_map, abs=1e-12)
        assert r.num_skipped_queries == want_skipped


def test_matches_brute_force_continuous():
    dist, qp, gp, qc, gc = random_case(11, num_q=40, num_g=300)
    dist = dist + np.random.default_rng(0).random(dist.shape).astype(np.float32)
    for ap in ("trapezoid", "standard"):
        want_cmc, want_map, _ = brute_force(dist, qp, gp, qc, gc, 50, ap)
        cmc, mAP = evaluate_ranking(dist, qp, gp, qc, gc, max_rank=50, ap=ap)
        np.testing.assert_allclose(cmc, want_cmc, atol=1e-12)
        assert mAP == pytest.approx(want_map, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_features_equal_distmat_and_brute_force(seed):
    # small integer features: exact inner products, hence many exact ties
    rng = np.random.default_rng(100 + seed)
    _, qp, gp, qc, gc = random_case(seed, num_q=30, num_g=90)
    q = torch.from_numpy(rng.integers(-1, 2, (30, 4)).astype(np.float32))
    g = torch.from_numpy(rng.integers(-1, 2, (90, 4)).astype(np.float32))
    dist = -(q @ g.T)
    for ap in ("trapezoid", "standard"):
        want_cmc, want_map, _ = brute_force(dist.numpy(), qp, gp, qc, gc, 10, ap)
        full = evaluate_ranking_detailed(dist, qp, gp, qc, gc, max_rank=10, ap=ap)
        for chunk in (1, 7, None):
            r = evaluate_features_detailed(q, g, qp, gp, qc, gc, max_rank=10, ap=ap, chunk=chunk)
            np.testing.assert_allclose(r.cmc, full.cmc, atol=1e-12)
            np.testing.assert_allclose(r.ap_per_query, full.ap_per_query, atol=1e-12)
            assert np.array_equal(r.first_hit, full.first_hit)
        np.testing.assert_allclose(full.cmc, want_cmc, atol=1e-12)
        assert full.mAP == pytest.approx(want_map, abs=1e-12)


def test_features_numpy_inputs_and_errors():
    rng = np.random.default_rng(3)
    q = rng.normal(size=(5, 8))
    g = rng.normal(size=(12, 8))
    qp, gp = np.arange(5), np.arange(12) % 5
    qc, gc = np.zeros(5, int), np.ones(12, int)
    cmc, mAP = evaluate_features(q, g, qp, gp, qc, gc, max_rank=5)
    want_cmc, want_map, _ = brute_force(-(q @ g.T), qp, gp, qc, gc, 5, "trapezoid")
    np.testing.assert_allclose(cmc, want_cmc)
    assert mAP == pytest.approx(want_map)
    with pytest.raises(ValueError, match="dimensions"):
        evaluate_features(q, g[:, :4], qp, gp, qc, gc)
    with pytest.raises(ValueError, match="do not match"):
        evaluate_features(q, g, qp[:4], gp, qc[:4], gc)
    q[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        evaluate_features(q, g, qp, gp, qc, gc)


def test_auto_chunk_bounds_memory():
    assert auto_chunk(3368, 15913, budget_bytes=64 * 2**20) * 15913 * 5 <= 64 * 2**20
    assert auto_chunk(3368, 15913, 8) < auto_chunk(3368, 15913, 4)
    assert auto_chunk(10, 10) == 10
    assert auto_chunk(5, 10**9) == 1


def test_selected_entries_processed_in_pieces(monkeypatch):
    # a tiny budget: one chunk's selected entries are indexed row by row, processed one at a time
    dist, qp, gp, qc, gc = random_case(5, num_q=30, num_g=80)
    want_cmc, want_map, _ = brute_force(dist, qp, gp, qc, gc, 10, "trapezoid")
    monkeypatch.setattr(ranking, "DEFAULT_CHUNK_BYTES", 1)
    r = evaluate_ranking_detailed(dist, qp, gp, qc, gc, max_rank=10, chunk=30)
    np.testing.assert_allclose(r.cmc, want_cmc, atol=1e-12)
    assert r.mAP == pytest.approx(want_map, abs=1e-12)


def test_top_k_matches_skips_removed_entries():
    dist = np.array([DIST[0]])
    ranked, matches = top_k_matches(dist, [1], G_PIDS, [1], G_CAMS, k=5)
    # valid list [2, 3, 4, 5, 6]: index 6 (pid 3) is a valid negative
    assert ranked.tolist() == [[2, 3, 4, 5, 6]]
    assert matches.tolist() == [[False, True, False, True, False]]
    ranked, matches = top_k_matches(dist, [1], G_PIDS, [1], G_CAMS, k=7)
    assert ranked.tolist() == [[2, 3, 4, 5, 6, -1, -1]]
    assert not matches[0, 5:].any()
