"""Table 3 of the paper from one jointly trained model: Baseline, f_prim, f_fine, f_prim + f_fine.

The Baseline row is the teacher stage's measurement (its metrics JSON); the
other three rows come from one DG-Net checkpoint evaluated here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dgnet import io, tracking
from dgnet.config import Config, config_to_dict
from dgnet.data.layouts import load_layout
from dgnet.data.loading import test_sets
from dgnet.eval import evaluate_model, top_k_matches
from dgnet.models import load_embedder
from dgnet.reports.paper import TABLE3 as PAPER_TABLE3
from dgnet.reports.rank_list import rank_list_figure
from dgnet.reports.tables import percent, percent_of, write_table

ROWS = {"f_prim": "f_prim", "f_fine": "f_fine", "f_prim+f_fine": "f_prim + f_fine"}


def evaluate_checkpoint(cfg: Config, checkpoint_path: str | Path, validation: bool = False,
                        progress: bool = True) -> dict:
    """``evaluate_model`` on a DG-Net checkpoint over the test (or validation) split."""
    device = torch.device(cfg.runtime.device)
    embed, _ = load_embedder(checkpoint_path, device)
    query, gallery, _ = test_sets(cfg.data, validation, resize=cfg.switches.resize)
    return evaluate_model(embed, query, gallery, cfg.eval, device, progress=progress)


def table3_frame(baseline: dict, metrics: dict[str, dict]) -> pd.DataFrame:
    rows = [("Baseline (teacher)", baseline)] + [(label, metrics[key]) for key, label in ROWS.items()]
    return pd.DataFrame(
        [(label, percent(m["rank1"]), percent(m["rank5"]), percent(m["rank10"]), percent(m["mAP"]),
          percent_of(m, "mINP")) for label, m in rows],
        columns=["Method", "Rank@1", "Rank@5", "Rank@10", "mAP", "mINP"],
    )


def save_rank_list(cfg: Config, result: dict, feature: str, out_png: str | Path, queries: int = 6) -> None:
    """Query + top-10 for a few evenly spaced queries (green: same identity, red: not).

    Only the paths come from the layout (the same query and gallery order the
    evaluation used); the figure decodes just the images it draws.
    """
    splits = load_layout(cfg.data.layout, cfg.data.root, cfg.data.cuhk03_subset)
    q = result["features"][feature]["query"]
    g = result["features"][feature]["gallery"]
    pick = np.linspace(0, len(q) - 1, num=min(queries, len(q))).round().astype(int)
    ranked, matches = top_k_matches(
        -(q[pick] @ g.T), result["query"]["pids"][pick], result["gallery"]["pids"],
        result["query"]["camids"][pick], result["gallery"]["camids"], k=10)
    rank_list_figure([splits.query[i].path for i in pick], [s.path for s in splits.gallery],
                     ranked, matches, out_png, k=10)


def run_table3(cfg: Config, checkpoint_path, teacher_metrics_path, metrics_path, md_path, csv_path,
               figure_path, progress: bool = True, registered_name: str | None = None) -> dict:
    """Table 3 from a DG-Net checkpoint; its metrics also go to the run that trained it, and with
    ``registered_name`` its re-id network is logged as an MLflow model and registered under that name."""

    baseline = json.loads(Path(teacher_metrics_path).read_text())
    with tracking.start_run(cfg.tracking, "evaluate_dgnet", params=config_to_dict(cfg),
                            tags={"config": cfg.name}) as run:
        result = evaluate_checkpoint(cfg, checkpoint_path, progress=progress)
        metrics = {"baseline": baseline, **result["metrics"]}
        for name, m in metrics.items():
            run.log_metrics({f"{name}/{key}": m[key] for key in ("rank1", "mAP", "mINP") if key in m})
        run.log_to_model_run(checkpoint_path, tracking.test_metrics(result["metrics"]))
        if registered_name:
            run.log_reid_model(checkpoint_path, cfg.eval.beta, registered_name)
        frame = table3_frame(baseline, result["metrics"])
        write_table(md_path, csv_path, "Table 3: the primary and fine-grained features", cfg, frame,
                    quoted=PAPER_TABLE3,
                    note=f"Percent; {cfg.eval.ap} AP; test feature [f_prim, sqrt(beta) f_fine] "
                         f"(scores s_prim + beta s_fine) with beta = "
                         f"{cfg.eval.beta}; re-ranking {'on' if cfg.eval.rerank else 'off'}.")
        save_rank_list(cfg, result, "f_prim+f_fine", figure_path)
        run.log_artifact(md_path)
        run.log_image(figure_path)
    io.write_json(metrics_path, metrics)
    return metrics
