"""Re-id evaluation (paper Section 4.1: the Market-1501 protocol): features, CMC / mAP / mINP, re-ranking.

    from dgnet.eval import evaluate_model
    out = evaluate_model(embed, query_set, gallery_set, cfg.eval, "cuda")
    out["metrics"]["f_prim+f_fine"]   # rank1, rank5, rank10, mAP, mINP, counts, beta, ap, ...

``dgnet evaluate --checkpoint models/dgnet/last.pt --data-root DATA`` runs it
on a checkpoint and writes the metrics JSON and a rank-list figure.
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import Tensor

from dgnet.config import EvalConfig
from dgnet.eval.features import (
    combine_features,
    dgnet_feature,
    extract_features,
    multi_query_features,
)
from dgnet.eval.ranking import (
    AP_MODES,
    RankingResult,
    evaluate_features,
    evaluate_features_detailed,
    evaluate_ranking,
    evaluate_ranking_detailed,
    top_k_matches,
)
from dgnet.eval.rerank import re_rank

FeatureSet = Callable[[Mapping[str, Tensor]], Tensor]


def default_feature_sets(names, beta: float) -> dict[str, FeatureSet]:
    """Each named feature alone, plus ``f_prim+f_fine`` (:func:`dgnet_feature`) when both exist."""
    sets: dict[str, FeatureSet] = {name: (lambda f, n=name: f[n]) for name in names}
    if "f_prim" in sets and "f_fine" in sets:
        sets["f_prim+f_fine"] = dgnet_feature(beta)
    return sets


def metrics_entry(result: RankingResult, cfg: EvalConfig, beta: float | None) -> dict:
    """The flat metrics dict of one feature set (fractions in [0, 1]); ``beta``: the
    weight of f_fine when the set combines it (:func:`dgnet_feature`), else None."""
    return {
        "rank1": result.rank(1),
        "rank5": result.rank(5),
        "rank10": result.rank(10),
        "mAP": result.mAP,
        "mINP": result.mINP,
        "num_queries": result.num_valid_queries + result.num_skipped_queries,
        "num_evaluated": result.num_valid_queries,
        "num_skipped": result.num_skipped_queries,
        "beta": beta,
        "ap": cfg.ap,
        "rerank": cfg.rerank,
        "multi_query": cfg.multi_query,
    }


def evaluate_model(
    embed: Callable[[Tensor], Mapping[str, Tensor]],
    query_dataset,
    gallery_dataset,
    cfg: EvalConfig,
    device: str | torch.device,
    feature_sets: Mapping[str, FeatureSet] | None = None,
    multi_query_dataset=None,
    progress: bool = True,
) -> dict:
    """Extract features once, then CMC / mAP for each feature set.

    ``feature_sets`` maps a name to a function of the extracted features
    (``{"f_prim": (N, D), ...}``) that returns the vectors to compare, applied
    alike to queries and gallery; default :func:`default_feature_sets` (for a
    DG-Net embedder: ``f_prim``, ``f_fine`` and ``f_prim+f_fine`` with
    ``cfg.beta``, scored as the reference does, ``s_prim + beta * s_fine``).
    ``cfg.multi_query`` needs ``multi_query_dataset`` (Market-1501 gt_bbox).
    With ``cfg.rerank`` the distances ``2 - 2 q.g`` are k-reciprocal re-ranked.

    Returns ``{"metrics": {name: {...}}, "features": {name: {"query": Tensor,
    "gallery": Tensor[, "distmat": re-ranked (Q, G) array]}}, "query":
    {"pids", "camids"}, "gallery": {"pids", "camids"}}``.
    """
    q_raw, q_pids, q_cams = extract_features(
        embed, query_dataset, cfg.batch_size, device, "query features", progress=progress)
    g_raw, g_pids, g_cams = extract_features(
        embed, gallery_dataset, cfg.batch_size, device, "gallery features", progress=progress)
    mq_raw = None
    if cfg.multi_query:
        if multi_query_dataset is None or len(multi_query_dataset) == 0:
            raise ValueError("eval.multi_query needs the multi-query images (Market-1501 gt_bbox)")
        mq_raw, mq_pids, mq_cams = extract_features(
            embed, multi_query_dataset, cfg.batch_size, device, "multi-query features",
            progress=progress)
    if feature_sets is None:
        feature_sets = default_feature_sets(q_raw, cfg.beta)
    out: dict = {
        "metrics": {}, "features": {},
        "query": {"pids": q_pids, "camids": q_cams}, "gallery": {"pids": g_pids, "camids": g_cams},
    }
    for name, make in feature_sets.items():
        q, g = make(q_raw), make(g_raw)
        if mq_raw is not None:
            q = multi_query_features(q, q_pids, q_cams, make(mq_raw), mq_pids, mq_cams)
        entry = {"query": q, "gallery": g}
        if cfg.rerank:
            final = re_rank(2 - 2 * (q @ g.T), 2 - 2 * (q @ q.T), 2 - 2 * (g @ g.T))
            result = evaluate_ranking_detailed(
                final, q_pids, g_pids, q_cams, g_cams, cfg.max_rank, cfg.ap)
            entry["distmat"] = final.numpy()
        else:
            result = evaluate_features_detailed(
                q, g, q_pids, g_pids, q_cams, g_cams, cfg.max_rank, cfg.ap)
        out["metrics"][name] = metrics_entry(result, cfg, getattr(make, "beta", None))
        out["features"][name] = entry
    return out


__all__ = [
    "AP_MODES", "RankingResult", "combine_features", "default_feature_sets", "dgnet_feature",
    "evaluate_features", "evaluate_features_detailed", "evaluate_model", "evaluate_ranking",
    "evaluate_ranking_detailed", "extract_features", "metrics_entry", "multi_query_features",
    "re_rank", "top_k_matches",
]
