"""Validation mAP of a DG-Net appearance encoder on held-out identities, for a grid of beta.

Used by the tuning studies (``experiments/objective.py``) and the benchmarks alike::

    query, gallery, _ = test_sets(cfg.data, validation=True, resize=cfg.switches.resize)
    scorer = ValidationScorer(query, gallery, cfg.eval, device, betas=(0.0, 0.5, 1.0))
    scorer.score(nets["appearance"])   # {"mAP", "rank1", "beta", "mAP_by_beta"} at the best beta
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dgnet.config import EvalConfig


def beta_name(beta: float) -> str:
    """The feature set's name for one beta: ``beta_0.5``."""
    return f"beta_{beta:g}"


@dataclass
class ValidationScorer:
    """Validation mAP of an appearance encoder for each beta of a grid (features extracted once)."""

    query: Any  # ReidTestDataset of the held-out ids
    gallery: Any
    eval_cfg: EvalConfig
    device: Any
    betas: tuple[float, ...]

    def score(self, appearance) -> dict[str, Any]:
        """``{"mAP", "rank1", "beta", "mAP_by_beta"}`` at the best beta (first of ties)."""
        from dgnet.eval import dgnet_feature, evaluate_model
        from dgnet.models import appearance_embedder

        was_training = appearance.training
        appearance.eval()
        try:
            sets = {beta_name(b): dgnet_feature(b) for b in self.betas}
            out = evaluate_model(appearance_embedder(appearance, self.device), self.query, self.gallery,
                                 self.eval_cfg, self.device, feature_sets=sets, progress=False)
        finally:
            appearance.train(was_training)
        by_beta = {b: float(out["metrics"][beta_name(b)]["mAP"]) for b in self.betas}
        best = max(self.betas, key=lambda b: by_beta[b])
        m = out["metrics"][beta_name(best)]
        return {"mAP": float(m["mAP"]), "rank1": float(m["rank1"]), "beta": best, "mAP_by_beta": by_beta}


__all__ = ["ValidationScorer", "beta_name"]
