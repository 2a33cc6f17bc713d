"""CMC, mAP and mINP for person re-identification (paper Section 4.1: the Market-1501 protocol).

Protocol (Market-1501's official evaluation): for every query, gallery images
with the same pid *and* the same camera are removed, and so are gallery images
with pid ``-1`` (junk); pid ``0`` distractors stay, as negatives. The positives
of a query are the remaining gallery images with its pid. A query with no
positive left is skipped (counted, logged at INFO level, and left out of both
CMC and mAP).

Order: gallery images are ranked by increasing distance; **ties are broken by
gallery index** (the lower index ranks first), exactly what a stable
ascending sort of the distance row gives (``np.argsort(d, kind="stable")``).
The rule involves only ``<`` and ``==`` on the given numbers, so it does not
depend on the platform or the sort algorithm. (The reference code sorts with
numpy's unstable quicksort, so its tie order is unspecified.)

Average precision, with the hits of a query at 0-based positions
``r_1 < ... < r_n`` of its valid list (junk and same-camera images removed):

- ``ap="trapezoid"`` (the official Market-1501 code, Person_reID_baseline /
  DG-Net ``evaluate_gpu.py`` ``compute_mAP``): the mean over hits ``i`` of
  ``(old_precision + precision) / 2`` with ``precision = i / (r_i + 1)`` and
  ``old_precision = (i - 1) / r_i`` (``1.0`` when ``r_i = 0``);
- ``ap="standard"``: the mean over hits of ``i / (r_i + 1)``.

The inverse negative penalty of a query with ``n`` hits is ``n / (r_n + 1)``
(its last hit, the hardest match; Ye et al., "Deep Learning for Person
Re-identification: A Survey and Outlook", TPAMI 2021); mINP is its mean over
the evaluated queries, as fast-reid computes it.

How it is computed (no full sort and, for :func:`evaluate_features`, no full
distance matrix): queries go in chunks. Per chunk one matrix product gives the
similarities (``chunk x G``). Each query's positives are few: they are sorted
(similarity down, gallery index up). Only gallery entries that rank before the
query's last positive can change a hit's position, so one comparison with that
positive's score selects them; for each selected negative a binary search in
the query's sorted positives (ties by gallery index) counts the positives
ranked before it, and a histogram of those counts, summed cumulatively, is the
number of negatives before each hit. Hit ``i`` sits at position
``(i - 1) + #negatives before it``, which gives CMC (first hit), AP and INP
(last hit: ``n / (r_n + 1)``, the mINP of Ye et al. 2021, at no extra cost). Cost: the
matrix product plus work proportional to the entries that outrank a query's
last positive. Memory: one ``chunk x G`` block of scores and its selection
(:func:`auto_chunk`), never ``Q x G``.

    >>> cmc, mAP = evaluate_ranking(distmat, q_pids, g_pids, q_camids, g_camids)
    >>> cmc, mAP = evaluate_features(q_feat, g_feat, q_pids, g_pids, q_camids, g_camids)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import torch

log = logging.getLogger(__name__)

APMode = Literal["trapezoid", "standard"]
AP_MODES = ("trapezoid", "standard")

#: Default memory for one chunk's score block and its temporaries (bytes).
DEFAULT_CHUNK_BYTES = 64 * 2**20
#: Selected entries handled at a time. Below torch's parallel grain (32,768), so
#: the many small operations on them run on the calling thread: no thread
#: barrier per operation, which costs milliseconds each on a busy machine.
PIECE = 1 << 14


@dataclass(frozen=True)
class RankingResult:
    """Everything one evaluation measured.

    ``cmc[k]`` is the fraction of evaluated queries whose first hit is within
    rank ``k + 1``; ``mAP`` the mean AP over evaluated queries. Per query:
    ``ap_per_query`` (NaN where skipped) and ``first_hit`` (0-based position of
    the first positive in the query's valid list, ``-1`` where skipped).

    ``mINP`` is the mean inverse negative penalty (Ye et al., "Deep Learning
    for Person Re-identification: A Survey and Outlook", TPAMI 2021): a
    query's INP is ``num_positives / (position of its last positive + 1)``
    (1-based position in its valid list), i.e. how much of the list one must
    look at to find *every* match; ``inp_per_query`` holds it (NaN where skipped).
    """

    cmc: np.ndarray  # (max_rank,) float64
    mAP: float
    num_valid_queries: int
    num_skipped_queries: int
    ap_per_query: np.ndarray  # (Q,) float64
    first_hit: np.ndarray  # (Q,) int64
    mINP: float = float("nan")
    inp_per_query: np.ndarray | None = None  # (Q,) float64

    def rank(self, k: int) -> float:
        """Rank@k (fraction of evaluated queries with a hit in the top ``k``)."""
        return float(self.cmc[min(k, len(self.cmc)) - 1])


# ---------------------------------------------------------------- inputs


def _labels(values, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(values) if not torch.is_tensor(values) else values)
    if t.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {tuple(t.shape)}")
    if t.is_floating_point() or t.dtype == torch.bool:
        raise ValueError(f"{name}: expected integer labels, got {t.dtype}")
    return t.to(device="cpu", dtype=torch.int64)


def _matrix(values, name: str) -> torch.Tensor:
    t = values if torch.is_tensor(values) else torch.from_numpy(np.asarray(values))
    if t.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    return t


@dataclass(frozen=True)
class _Pairs:
    """Per-query positives (CSR over queries, gallery indices ascending)."""

    q_pids: torch.Tensor
    g_pids: torch.Tensor
    pos_ptr: torch.Tensor  # (Q + 1,)
    pos_query: torch.Tensor  # per positive: its query
    pos_slot: torch.Tensor  # per positive: its place among its query's positives
    pos_gallery: torch.Tensor  # per positive: its gallery index
    num_pos: torch.Tensor  # (Q,)


def _pairs(q_pids, g_pids, q_camids, g_camids) -> _Pairs:
    qp, gp = _labels(q_pids, "q_pids"), _labels(g_pids, "g_pids")
    qc, gc = _labels(q_camids, "q_camids"), _labels(g_camids, "g_camids")
    if len(qp) != len(qc):
        raise ValueError(f"q_pids has {len(qp)} entries but q_camids has {len(qc)}")
    if len(gp) != len(gc):
        raise ValueError(f"g_pids has {len(gp)} entries but g_camids has {len(gc)}")
    # gallery entries sharing the query's pid: a range of the pid-sorted gallery
    order = torch.sort(gp, stable=True).indices  # ascending index inside each pid
    sorted_pids = gp[order]
    lo = torch.searchsorted(sorted_pids, qp, right=False)
    hi = torch.searchsorted(sorted_pids, qp, right=True)
    counts = hi - lo
    q_of = torch.repeat_interleave(torch.arange(len(qp)), counts)
    start = torch.cumsum(counts, 0) - counts
    g_of = order[lo[q_of] + torch.arange(len(q_of)) - start[q_of]]
    positive = (gc[g_of] != qc[q_of]) & (gp[g_of] != -1)  # same camera, junk: removed
    q_of, g_of = q_of[positive], g_of[positive]
    num_pos = torch.bincount(q_of, minlength=len(qp))
    pos_ptr = torch.zeros(len(qp) + 1, dtype=torch.int64)
    pos_ptr[1:] = torch.cumsum(num_pos, 0)
    slot = torch.arange(len(q_of)) - pos_ptr[q_of]
    return _Pairs(qp, gp, pos_ptr, q_of, slot, g_of, num_pos)


def _all_finite(t: torch.Tensor) -> bool:
    # a non-finite element makes the sum non-finite; only then look closer (overflow)
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def _check_ap(ap: str) -> None:
    if ap not in AP_MODES:
        raise ValueError(f"ap: expected one of {', '.join(AP_MODES)}, got {ap!r}")


def auto_chunk(
    num_queries: int, num_gallery: int, itemsize: int = 4, budget_bytes: int | None = None
) -> int:
    """Queries per chunk so that a chunk's scores and selection fit ``budget_bytes``.

    ``itemsize + 1`` bytes per score: the score and a bool (default budget
    :data:`DEFAULT_CHUNK_BYTES`, 64 MiB: 680 queries against Market-1501's
    19,732 gallery images). The selected entries are then indexed in row
    blocks of at most a quarter of the budget, even should every entry be
    selected, and processed :data:`PIECE` at a time.
    """
    budget = DEFAULT_CHUNK_BYTES if budget_bytes is None else budget_bytes
    return int(max(1, min(num_queries, budget // max(1, (itemsize + 1) * num_gallery))))


# ---------------------------------------------------------------- core


def _positives_ahead(Pf, Cf, width, rows, vals, cols):
    """How many of its row's positives rank before each entry ``(row, score, col)``.

    ``Pf``/``Cf``: the rows' positive scores and gallery indices, flattened from
    ``(rows, width)``, each row in rank order (score down, index up) and padded
    with ``-inf`` to a power-of-two ``width`` larger than its count. A
    positive ranks before the entry if its score is higher, or equal with a
    lower gallery index. Branchless binary search: ``log2(width)`` gathers.
    """
    base = rows * width
    at = base.clone()  # base + number of positives found so far with a higher score
    step = width // 2
    while step:
        at.add_(Pf.index_select(0, at + (step - 1)) > vals, alpha=step)
        step //= 2
    ahead = at - base
    # equal scores: the positives of the tie group with a lower gallery index also rank before
    tied = torch.nonzero(Pf.index_select(0, at) == vals).squeeze(1)
    while len(tied):
        j = base.index_select(0, tied) + ahead.index_select(0, tied)
        before = (Pf.index_select(0, j) == vals.index_select(0, tied)) & (
            Cf.index_select(0, j) < cols.index_select(0, tied)
        )
        tied = torch.masked_select(tied, before)
        ahead.index_add_(0, tied, torch.ones_like(tied))
    return ahead


def _rank_core(
    scores_of: Callable[[int, int], torch.Tensor],
    pairs: _Pairs,
    max_rank: int,
    ap: str,
    chunk: int,
    device: torch.device,
) -> RankingResult:
    """Hit positions from chunks of scores (higher = better), then CMC and AP.

    ``scores_of(a, b)`` returns the ``(b - a, G)`` scores of queries ``a..b-1``.
    """
    num_q = len(pairs.q_pids)
    q_pids = pairs.q_pids.to(device)
    g_pids = pairs.g_pids.to(device)
    g_junk = g_pids == -1
    num_pos_all = pairs.num_pos.to(device)
    ap_all = torch.full((num_q,), float("nan"), dtype=torch.float64)
    inp_all = torch.full((num_q,), float("nan"), dtype=torch.float64)
    first_all = torch.full((num_q,), -1, dtype=torch.int64)
    piece = min(PIECE, max(1, DEFAULT_CHUNK_BYTES // 64))  # selected entries at a time
    for a in range(0, num_q, chunk):
        b = min(num_q, a + chunk)
        c = b - a
        n_r = num_pos_all[a:b]  # positives per query in this chunk
        n_pad = int(pairs.num_pos[a:b].max())
        if n_pad == 0:
            continue
        width = 1 << n_pad.bit_length()  # a power of two > n_pad: at least one pad per row
        S = scores_of(a, b).contiguous()  # (c, G) scores, higher ranks first
        if not S.is_floating_point():
            S = S.to(torch.float64)
        G = S.shape[1]
        # the chunk's positives, padded to (c, width); within a row gallery index ascends
        p0, p1 = int(pairs.pos_ptr[a]), int(pairs.pos_ptr[b])
        pos_row = pairs.pos_query[p0:p1].to(device) - a
        pos_col = pairs.pos_gallery[p0:p1].to(device)
        at = pos_row * width + pairs.pos_slot[p0:p1].to(device)
        P = torch.full((c * width,), float("-inf"), dtype=S.dtype, device=device)
        C = torch.full((c * width,), G, dtype=torch.int64, device=device)
        P.index_copy_(0, at, S.view(-1).index_select(0, pos_row * G + pos_col))
        C.index_copy_(0, at, pos_col)
        P, C = P.view(c, width), C.view(c, width)
        # rank order of the positives: score down, gallery index up (stable sort); pads last
        P, perm = torch.sort(P, dim=1, descending=True, stable=True)
        C = C.gather(1, perm)
        Pf, Cf = P.reshape(-1), C.reshape(-1)
        last = P.gather(1, (n_r - 1).clamp(min=0)[:, None]).squeeze(1)
        last = torch.where(n_r > 0, last, torch.full_like(last, float("inf")))
        # only entries scoring at least the query's last positive can precede one of its hits
        selected = S >= last[:, None]  # (c, G) bool
        S_flat = S.view(-1)
        hist = torch.zeros(c * (width + 1), dtype=torch.int64, device=device)
        block = max(1, DEFAULT_CHUNK_BYTES // (32 * G))  # rows: their indices fit budget / 4
        for r0 in range(0, c, block):
            flat = selected[r0 : r0 + block].reshape(-1).nonzero().squeeze(1) + r0 * G  # row-major
            for e in range(0, len(flat), piece):
                f = flat[e : e + piece]
                vals = S_flat.index_select(0, f)
                rows, cols = f // G, f % G
                # junk, or the query's pid (a hit or a removed entry): not a negative
                negative = (g_pids.index_select(0, cols) != q_pids.index_select(0, a + rows)) & ~(
                    g_junk.index_select(0, cols)
                )
                ahead = _positives_ahead(Pf, Cf, width, rows, vals, cols)
                # bin `width` collects what is not a negative
                hist += torch.bincount(
                    rows * (width + 1) + torch.where(negative, ahead, width), minlength=c * (width + 1)
                )
        del S, selected, flat
        neg_before = torch.cumsum(hist.view(c, width + 1), 1)[:, :n_pad]  # negatives before hit k+1
        k = torch.arange(n_pad, device=device)
        pos = (k + neg_before).to(torch.float64)  # 0-based position of hit k + 1
        valid = (k[None, :] < n_r[:, None]).to(torch.float64)
        hit = (k + 1).to(torch.float64)
        precision = hit / (pos + 1)
        if ap == "trapezoid":
            old = torch.where(pos == 0, torch.ones_like(pos), (hit - 1) / pos.clamp(min=1))
            per_hit = (old + precision) / 2
        else:
            per_hit = precision
        has = n_r > 0
        ap_chunk = (per_hit * valid).sum(1) / n_r.clamp(min=1)
        ap_all[a:b] = torch.where(has, ap_chunk, torch.nan).cpu()
        last_pos = pos.gather(1, (n_r - 1).clamp(min=0)[:, None]).squeeze(1)  # hardest positive
        inp_all[a:b] = torch.where(has, n_r / (last_pos + 1), torch.nan).cpu()
        first_all[a:b] = torch.where(has, neg_before[:, 0], -1).cpu()
    evaluated = first_all >= 0
    num_valid = int(evaluated.sum())
    num_skipped = num_q - num_valid
    if num_skipped:
        log.info("%d of %d queries have no valid gallery match and are skipped", num_skipped, num_q)
    if num_valid == 0:
        raise ValueError(f"none of the {num_q} queries has a valid match in the gallery")
    first = first_all[evaluated].clamp(max=max_rank)
    cmc = torch.cumsum(torch.bincount(first, minlength=max_rank + 1)[:max_rank], 0)
    cmc = cmc.to(torch.float64) / num_valid
    mAP = float(ap_all[evaluated].mean())
    mINP = float(inp_all[evaluated].mean())
    return RankingResult(
        cmc=cmc.numpy(), mAP=mAP, num_valid_queries=num_valid, num_skipped_queries=num_skipped,
        ap_per_query=ap_all.numpy(), first_hit=first_all.numpy(), mINP=mINP,
        inp_per_query=inp_all.numpy(),
    )


# ---------------------------------------------------------------- public


def evaluate_ranking_detailed(
    distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50, ap: APMode = "trapezoid",
    chunk: int | None = None,
) -> RankingResult:
    """CMC, mAP and per-query results from a full ``(Q, G)`` distance matrix.

    ``distmat``: numpy array or tensor (any device), smaller = more similar;
    NaN is an error. Labels: 1-D integer arrays or tensors. ``chunk``: queries
    per block (default: see :func:`auto_chunk`). Raises ``ValueError`` when no
    query has a valid match.
    """
    _check_ap(ap)
    if max_rank < 1:
        raise ValueError(f"max_rank: expected >= 1, got {max_rank}")
    D = _matrix(distmat, "distmat")
    pairs = _pairs(q_pids, g_pids, q_camids, g_camids)
    if D.shape != (len(pairs.q_pids), len(g_pids)):
        raise ValueError(
            f"distmat: shape {tuple(D.shape)} does not match {len(pairs.q_pids)} queries "
            f"x {len(g_pids)} gallery labels"
        )
    device = D.device

    def scores_of(a: int, b: int) -> torch.Tensor:
        block = D[a:b]
        if torch.isnan(block).any():
            raise ValueError("distmat: contains NaN")
        return -block  # negation is exact: the order and the ties are those of the distances

    chunk = chunk or auto_chunk(D.shape[0], D.shape[1], D.element_size())
    return _rank_core(scores_of, pairs, max_rank, ap, chunk, device)


def evaluate_ranking(
    distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50, ap: APMode = "trapezoid",
) -> tuple[np.ndarray, float]:
    """``(cmc, mAP)`` from a full distance matrix; see :func:`evaluate_ranking_detailed`."""
    r = evaluate_ranking_detailed(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, ap)
    return r.cmc, r.mAP


def evaluate_features_detailed(
    q_feat, g_feat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50,
    ap: APMode = "trapezoid", chunk: int | None = None,
) -> RankingResult:
    """CMC, mAP and per-query results from features, chunk by chunk.

    The distance is ``d = -q . g`` (the cosine distance ``1 - q . g`` for
    L2-normalised features, up to the constant, but without its rounding): the
    ranking and its ties are those of the inner products, so the result equals
    :func:`evaluate_ranking_detailed` on ``-(q_feat @ g_feat.T)``. The full
    distance matrix is never built: one ``chunk x G`` block at a time (default
    from :func:`auto_chunk`, about 64 MiB). Runs where the features are (CPU
    or GPU).
    """
    _check_ap(ap)
    if max_rank < 1:
        raise ValueError(f"max_rank: expected >= 1, got {max_rank}")
    q, g = _matrix(q_feat, "q_feat"), _matrix(g_feat, "g_feat")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"q_feat has {q.shape[1]} dimensions but g_feat has {g.shape[1]}")
    if q.dtype != g.dtype:
        dtype = torch.promote_types(q.dtype, g.dtype)
        q, g = q.to(dtype), g.to(dtype)
    g = g.to(q.device)
    if not (_all_finite(q) and _all_finite(g)):
        raise ValueError("features contain NaN or infinite values")
    pairs = _pairs(q_pids, g_pids, q_camids, g_camids)
    if len(pairs.q_pids) != q.shape[0] or len(g_pids) != g.shape[0]:
        raise ValueError(
            f"features ({q.shape[0]} queries, {g.shape[0]} gallery) do not match the labels "
            f"({len(pairs.q_pids)}, {len(g_pids)})"
        )
    device = q.device
    gT = g.T

    def scores_of(a: int, b: int) -> torch.Tensor:
        return q[a:b] @ gT  # (b - a, G) similarities

    chunk = chunk or auto_chunk(q.shape[0], g.shape[0], q.element_size())
    return _rank_core(scores_of, pairs, max_rank, ap, chunk, device)


def evaluate_features(
    q_feat, g_feat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50,
    ap: APMode = "trapezoid", chunk: int | None = None,
) -> tuple[np.ndarray, float]:
    """``(cmc, mAP)`` from features; see :func:`evaluate_features_detailed`."""
    r = evaluate_features_detailed(
        q_feat, g_feat, q_pids, g_pids, q_camids, g_camids, max_rank, ap, chunk
    )
    return r.cmc, r.mAP


def top_k_matches(
    dist_rows, q_pids, g_pids, q_camids, g_camids, k: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` valid gallery entries of a few queries (for a rank-list figure).

    ``dist_rows``: ``(n, G)`` distances of ``n`` queries (labels ``q_*`` of
    those ``n``). Junk and same-pid-same-camera entries are left out, ties by
    gallery index. Returns gallery indices ``(n, k)`` (``-1`` past the end of a
    short list) and whether each is a correct match ``(n, k)``.
    """
    D = _matrix(dist_rows, "dist_rows").detach().cpu().to(torch.float64)
    qp, gp = _labels(q_pids, "q_pids"), _labels(g_pids, "g_pids")
    qc, gc = _labels(q_camids, "q_camids"), _labels(g_camids, "g_camids")
    same = gp[None, :] == qp[:, None]
    removed = (gp[None, :] == -1) | (same & (gc[None, :] == qc[:, None]))
    D = torch.where(removed, torch.inf, D)
    order = torch.sort(D, dim=1, stable=True).indices[:, :k]
    ok = ~removed.gather(1, order)
    ranked = torch.where(ok, order, -1)
    matches = same.gather(1, order) & ok
    return ranked.numpy(), matches.numpy()


__all__ = [
    "AP_MODES", "RankingResult", "auto_chunk", "evaluate_features", "evaluate_features_detailed",
    "evaluate_ranking", "evaluate_ranking_detailed", "top_k_matches",
]
