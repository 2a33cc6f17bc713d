"""mINP (Ye et al. 2021) in the evaluator, against an independent per-query implementation."""

import numpy as np
import pytest

from dgnet.eval.ranking import evaluate_features_detailed, evaluate_ranking_detailed


def per_query_inp(dist, qp, gp, qc, gc):
    """Straightforward reference: per query a stable argsort, junk and same-camera
    matches removed, INP = number of matches / (1-based rank of the last match)."""
    dist, qp, gp, qc, gc = map(np.asarray, (dist, qp, gp, qc, gc))
    inps = np.full(len(qp), np.nan)
    for i in range(len(qp)):
        order = np.argsort(dist[i], kind="stable")
        removed = (gp[order] == -1) | ((gp[order] == qp[i]) & (gc[order] == qc[i]))
        good = (gp[order] == qp[i])[~removed]
        if good.any():
            last_rank = np.flatnonzero(good)[-1] + 1
            inps[i] = good.sum() / last_rank
    return inps


def test_hand_computed_inp():
    # query 0: valid list [negative, hit, negative, hit] -> INP = 2 / 4; query 1: no match, skipped
    dist = [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.9], [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.0]]
    r = evaluate_ranking_detailed(dist, [1, 3], [1, -1, 0, 1, 2, 1, 3], [1, 1], [1, 2, 2, 2, 3, 3, 1])
    assert r.mINP == pytest.approx(0.5)
    assert r.inp_per_query[0] == pytest.approx(0.5) and np.isnan(r.inp_per_query[1])


@pytest.mark.parametrize("seed", range(4))
def test_minp_matches_per_query_reference_with_ties(seed):
    rng = np.random.default_rng(seed)
    qp, gp = rng.integers(0, 8, 30), rng.integers(-1, 8, 90)
    qc, gc = rng.integers(1, 4, 30), rng.integers(1, 4, 90)
    dist = rng.integers(0, 4, (30, 90)) / 4  # many ties: broken by gallery index
    want = per_query_inp(dist, qp, gp, qc, gc)
    for chunk in (1, 7, None):
        r = evaluate_ranking_detailed(dist, qp, gp, qc, gc, max_rank=20, chunk=chunk)
        np.testing.assert_allclose(r.inp_per_query, want, rtol=0, atol=1e-12)
        assert r.mINP == pytest.approx(np.nanmean(want), abs=1e-12)


def test_minp_from_features_equals_distance_matrix():
    rng = np.random.default_rng(7)
    q, g = rng.normal(size=(40, 16)), rng.normal(size=(200, 16))
    qp, gp = rng.integers(1, 10, 40), rng.integers(-1, 10, 200)
    qc, gc = rng.integers(1, 5, 40), rng.integers(1, 5, 200)
    r = evaluate_features_detailed(q, g, qp, gp, qc, gc)
    want = per_query_inp(-(q @ g.T), qp, gp, qc, gc)
    np.testing.assert_allclose(r.inp_per_query, want, rtol=0, atol=1e-12)
    assert 0 < r.mINP <= 1
