"""k-reciprocal re-ranking (Zhong, Zheng, Cao, Li, "Re-ranking Person
Re-identification with k-reciprocal Encoding", CVPR 2017).

    final = re_rank(q_g_dist, q_q_dist, g_g_dist, k1=20, k2=6, lambda_value=0.3)

The algorithm of the authors' Python code (as used by Person_reID_baseline and
DG-Net), vectorised with torch: the k-reciprocal neighbour sets are found for
all images at once, the encodings ``V`` are kept sparse (a few hundred
non-zeros per row instead of ``N x N``), and the Jaccard distance is a sparse
join over shared neighbours. Steps, with ``N = Q + G`` images:

1. ``D`` = the ``N x N`` distance matrix, each row divided by its maximum
   (inputs should be squared-Euclidean-like, e.g. ``2 - 2 cos`` or ``1 - cos``:
   the row scaling makes the two the same);
2. ``R(i, k)`` = the ``k`` nearest neighbours of ``i`` (itself included);
   the k-reciprocal set of ``i`` = those ``j`` in ``R(i, k1 + 1)`` that have
   ``i`` in ``R(j, k1 + 1)``; it is expanded by the ``round(k1 / 2)``-reciprocal
   set of each member when more than 2/3 of that set is already in it;
3. ``V(i, j) = exp(-D(i, j))`` over the expanded set, rows summing to one,
   then averaged over the ``k2`` nearest neighbours of ``i`` (query expansion);
4. Jaccard distance ``1 - s / (2 - s)`` with ``s = sum_k min(V(q, k), V(g, k))``;
   final distance ``(1 - lambda) * Jaccard + lambda * D``.

Neighbour order: ``torch.topk`` (exact ties may be ordered differently from
numpy's ``argsort``; with continuous distances the result is the reference's).
Memory: the ``N x N`` distances (float32) plus ``O(N k1^2)``; the Jaccard join
runs in pieces.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

_PIECE = 1 << 22  # sparse-join pairs handled at a time


def _tensor(x) -> Tensor:
    t = x if torch.is_tensor(x) else torch.from_numpy(np.asarray(x))
    return t.detach().to(device="cpu", dtype=torch.float32)


def _reciprocal(ranks: Tensor, width: int) -> tuple[Tensor, Tensor]:
    """The first ``width`` neighbours of every row and which of them are reciprocal
    (have the row among their own first ``width``)."""
    forward = ranks[:, :width]  # (N, width)
    mask = torch.empty_like(forward, dtype=torch.bool)
    me = torch.arange(len(ranks))
    step = max(1, (1 << 24) // width**2)
    for a in range(0, len(ranks), step):
        back = forward[forward[a : a + step]]  # (n, width, width): neighbours of the neighbours
        mask[a : a + step] = (back == me[a : a + step, None, None]).any(-1)
    return forward, mask


def _expanded_sets(ranks: Tensor, k1: int) -> tuple[Tensor, Tensor]:
    """Per row: candidate members (N, M) and a mask of the unique members of the expanded set."""
    n = len(ranks)
    width, h_width = min(n, k1 + 1), min(n, int(np.around(k1 / 2.0)) + 1)
    forward, recip = _reciprocal(ranks, width)  # (N, width)
    h_forward, h_recip = _reciprocal(ranks, h_width)  # (N, h_width)
    members = [torch.where(recip, forward, -1)]
    step = max(1, (1 << 24) // (width**2 * h_width))
    added = torch.empty(n, width, h_width, dtype=torch.long)
    for a in range(0, n, step):
        cand = forward[a : a + step]  # (n, width): each candidate c of row i
        c_set = torch.where(h_recip[cand], h_forward[cand], -1)  # (n, width, h_width)
        mine = torch.where(recip[a : a + step], forward[a : a + step], -2)  # (n, width)
        inside = (c_set[..., None] == mine[:, None, None, :]).any(-1)  # (n, width, h_width)
        size = (c_set >= 0).sum(-1)
        # the candidate's set joins when more than 2/3 of it is already in i's set
        accept = (inside.sum(-1) > 2.0 / 3.0 * size) & recip[a : a + step]  # (n, width)
        added[a : a + step] = torch.where(accept[..., None], c_set, -1)
    members.append(added.view(n, -1))
    members = torch.cat(members, 1)  # (N, M), -1 = empty
    members, _ = torch.sort(members, dim=1)
    unique = members >= 0
    unique[:, 1:] &= members[:, 1:] != members[:, :-1]
    return members.clamp(min=0), unique


def _coalesce(rows: Tensor, cols: Tensor, vals: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor]:
    """Sparse ``(n, n)`` entries sorted by (row, col), duplicates summed."""
    keys, inverse = torch.unique(rows * n + cols, sorted=True, return_inverse=True)
    sums = torch.zeros(len(keys), dtype=vals.dtype).index_add_(0, inverse, vals)
    return keys // n, keys % n, sums


def re_rank(q_g_dist, q_q_dist, g_g_dist, k1: int = 20, k2: int = 6, lambda_value: float = 0.3):
    """Re-ranked ``(Q, G)`` distances from query-gallery, query-query and gallery-gallery ones.

    Inputs: numpy arrays or tensors (computed on the CPU, float32). Returns the
    same kind as ``q_g_dist`` (numpy array or CPU tensor). Deterministic.
    """
    as_numpy = not torch.is_tensor(q_g_dist)
    qg, qq, gg = _tensor(q_g_dist), _tensor(q_q_dist), _tensor(g_g_dist)
    nq, ng = qg.shape
    if qq.shape != (nq, nq) or gg.shape != (ng, ng):
        raise ValueError(
            f"re_rank: shapes {tuple(qg.shape)}, {tuple(qq.shape)}, {tuple(gg.shape)} do not fit "
            f"(Q, G), (Q, Q), (G, G)"
        )
    if k1 < 1 or k2 < 1 or not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"re_rank: need k1 >= 1, k2 >= 1, 0 <= lambda <= 1 (got {k1}, {k2}, {lambda_value})")
    n = nq + ng
    # the reference: D = [[qq, qg], [qg.T, gg]], then (D / D.max(axis=0)).T; built transposed
    # in one buffer, that is each row of D.T divided by its maximum
    dist = torch.empty(n, n)  # (N, N)
    dist[:nq, :nq], dist[:nq, nq:], dist[nq:, :nq], dist[nq:, nq:] = qq.T, qg, qg.T, gg.T
    dist /= dist.max(dim=1, keepdim=True).values
    k = min(n, max(k1 + 1, k2))  # fewer images than neighbours asked for: all of them
    ranks = torch.topk(dist, k, dim=1, largest=False, sorted=True).indices  # (N, k)

    # step 2-3: expanded k-reciprocal sets, Gaussian weights, rows summing to one
    members, unique = _expanded_sets(ranks, k1)
    weight = torch.exp(-dist.gather(1, members)) * unique
    weight = weight / weight.sum(1, keepdim=True)
    rows = torch.arange(n)[:, None].expand_as(members)
    vr, vc, vv = _coalesce(rows[unique], members[unique], weight[unique], n)  # V, sparse
    if k2 != 1:  # query expansion: V(i) = mean of the rows of V of the k2 nearest neighbours of i
        near = ranks[:, :k2].reshape(-1)  # (N * k2,)
        kk = len(near) // n
        count = torch.bincount(vr, minlength=n)
        start = torch.cumsum(count, 0) - count
        reps = count[near]
        owner = torch.arange(n).repeat_interleave(kk).repeat_interleave(reps)
        entry = start[near].repeat_interleave(reps) + torch.arange(int(reps.sum())) - (
            torch.cumsum(reps, 0) - reps
        ).repeat_interleave(reps)
        vr, vc, vv = _coalesce(owner, vc[entry], vv[entry] / kk, n)

    # step 4: s(q, g) = sum over shared neighbours k of min(V(q, k), V(g, k))
    is_q = vr < nq
    qr, qc, qv = vr[is_q], vc[is_q], vv[is_q]
    gr, gc, gv = vr[~is_q] - nq, vc[~is_q], vv[~is_q]
    by_col = torch.argsort(gc, stable=True)  # gallery entries grouped by neighbour
    gr, gc, gv = gr[by_col], gc[by_col], gv[by_col]
    count = torch.bincount(gc, minlength=n)
    start = torch.cumsum(count, 0) - count
    per_entry = count[qc]  # gallery entries sharing each query entry's neighbour
    ends = torch.cumsum(per_entry, 0)
    shared = torch.zeros(nq * ng, dtype=torch.float64)
    e0 = 0
    while e0 < len(qc):
        done = int(ends[e0 - 1]) if e0 else 0
        e1 = max(e0 + 1, int(torch.searchsorted(ends, done + _PIECE, right=True)))
        reps = per_entry[e0:e1]
        owner = torch.arange(e0, e1).repeat_interleave(reps)
        offset = torch.arange(int(reps.sum())) - (torch.cumsum(reps, 0) - reps).repeat_interleave(reps)
        g_entry = start[qc[owner]] + offset
        contrib = torch.minimum(qv[owner], gv[g_entry]).double()
        shared.index_add_(0, qr[owner] * ng + gr[g_entry], contrib)
        e0 = e1
    shared = shared.view(nq, ng)
    jaccard = (1.0 - shared / (2.0 - shared)).float()
    final = jaccard * (1 - lambda_value) + dist[:nq, nq:] * lambda_value
    return final.numpy() if as_numpy else final


__all__ = ["re_rank"]
