"""Evaluations beyond Table 3: ablations, the beta sweep and direct transfer."""

from __future__ import annotations

from pathlib import Path

import torch

from dgnet.config import Config, replace
from dgnet.eval import dgnet_feature, evaluate_model
from dgnet.models import load_embedder
from dgnet.data.loading import test_sets

MAIN_FEATURE = "f_prim+f_fine"


def evaluate_on(cfg: Config, checkpoint_path: str | Path, progress: bool = True, feature_sets=None) -> dict:
    """Metrics of a checkpoint (teacher, dgnet or reid) on the test split of ``cfg.data``."""
    device = torch.device(cfg.runtime.device)
    embed, _ = load_embedder(checkpoint_path, device)
    query, gallery, _ = test_sets(cfg.data, resize=cfg.switches.resize, progress=progress)
    return evaluate_model(embed, query, gallery, cfg.eval, device, feature_sets=feature_sets,
                          progress=progress)["metrics"]


def evaluate_variants(cfg: Config, checkpoints: dict[str, str | Path], progress: bool = True) -> dict:
    """``{name: metrics of f_prim, f_fine, f_prim+f_fine}`` for each existing checkpoint."""
    return {name: evaluate_on(cfg, path, progress) for name, path in checkpoints.items() if Path(path).exists()}


def beta_sweep(cfg: Config, checkpoint_path: str | Path, betas, progress: bool = True) -> list[dict]:
    """Rank@1 and mAP of ``[f_prim, sqrt(beta) f_fine]`` for each beta, from one feature extraction."""
    sets = {f"beta={b:g}": dgnet_feature(float(b)) for b in betas}
    metrics = evaluate_on(cfg, checkpoint_path, progress, feature_sets=sets)
    return [{"beta": float(b), "rank1": metrics[f"beta={b:g}"]["rank1"], "mAP": metrics[f"beta={b:g}"]["mAP"]}
            for b in betas]


def transfer_domains(cfg: Config) -> dict[str, tuple[str, str]]:
    """The two domains of Table 9: ``{"A": (layout, root) trained on, "B": the transfer domain}``."""
    return {"A": (cfg.data.layout, cfg.data.root), "B": (cfg.data.transfer_layout, cfg.data.transfer_root)}


def direct_transfer(cfg: Config, domains: dict[str, tuple[str, str]], models: dict[str, dict[str, str]],
                    progress: bool = True) -> list[dict]:
    """Every (trained on, tested on) pair: ``models[train_domain][method] -> checkpoint``.

    ``domains`` maps a domain name to its ``(layout, root)``.
    """
    rows = []
    for source, by_method in models.items():
        for target, (layout, root) in domains.items():
            target_cfg = replace(cfg, **{"data.layout": layout, "data.root": root})
            for method, path in by_method.items():
                metrics = evaluate_on(target_cfg, path, progress)
                key = "baseline" if "baseline" in metrics else MAIN_FEATURE
                rows.append({"train": source, "test": target, "method": method,
                             "rank1": metrics[key]["rank1"], "mAP": metrics[key]["mAP"],
                             "mINP": metrics[key]["mINP"]})
    return rows
