"""Flat, named numbers for DVC: the ``summary`` stage.

The stages' metrics files are nested and hold lists (Figure 8's points,
Table 9's rows), which ``dvc metrics show`` cannot show. This module writes one
small file per measured row under ``reports/metrics/summary/``, each with the
same two columns, so ``dvc metrics show`` prints a readable table (one row per
number the paper reports) and ``dvc metrics diff`` / ``dvc exp show`` compare
them by name::

    reports/metrics/summary/table3.f_prim_f_fine.json     {"mAP": ..., "rank1": ...}
    reports/metrics/summary/figure8.alpha_0.2.json
    reports/metrics/summary/table9.A_to_B.dgnet.json

Timings go to a separate flat file (``reports/metrics/timings.json``), so
``metrics diff`` is not dominated by seconds that change on every run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dgnet import io, stage_seconds

COLUMNS = ("mAP", "rank1")
TABLE3_ROWS = {"baseline": "baseline", "f_prim": "f_prim", "f_fine": "f_fine", "f_prim+f_fine": "f_prim_f_fine"}
METHODS = {"Baseline (teacher)": "baseline", "DG-Net": "dgnet"}
MAIN = "f_prim+f_fine"


def slug(name: str) -> str:
    """``"w/o feed"`` -> ``"w_o_feed"``, ``"f_prim+f_fine"`` -> ``"f_prim_f_fine"``."""
    return re.sub(r"[^0-9A-Za-z.]+", "_", name).strip("_")


def _row(metrics: dict) -> dict[str, float]:
    return {k: float(metrics[k]) for k in COLUMNS if k in metrics}


def accuracy_rows(metrics: dict[str, Any], alpha: float) -> dict[str, dict[str, float]]:
    """``{"table3.f_prim": {"mAP": .., "rank1": ..}, ...}`` from the stages' metrics (a missing file is skipped)."""
    rows: dict[str, dict[str, float]] = {}
    table3 = metrics.get("table3") or {}
    for key, name in TABLE3_ROWS.items():
        if key in table3:
            rows[f"table3.{name}"] = _row(table3[key])
    for variant, m in (metrics.get("ablations") or {}).items():
        rows[f"ablations.{slug(variant)}"] = _row(m[MAIN])
    if metrics.get("offline") and MAIN in metrics["offline"]:
        rows["offline.f_prim_f_fine"] = _row(metrics["offline"][MAIN])
    points = list((metrics.get("alpha_sweep") or {}).get("points", []))
    if MAIN in table3:
        points.append({"alpha": alpha, **table3[MAIN]})
    for p in sorted(points, key=lambda p: p["alpha"]):
        rows[f"figure8.alpha_{p['alpha']:g}"] = _row(p)
    for p in (metrics.get("beta_sweep") or {}).get("points", []):
        rows[f"figure8.beta_{p['beta']:g}"] = _row(p)
    for r in (metrics.get("transfer") or {}).get("rows", []):
        method = METHODS.get(r["method"], slug(r["method"]))
        rows[f"table9.{r['train']}_to_{r['test']}.{method}"] = _row(r)
    return rows


def timings(files: dict[str, Any]) -> dict[str, float]:
    """Every ``*seconds*`` number of the metrics files, as ``{"FILE.KEY": seconds}`` (nested keys dotted)."""
    out: dict[str, float] = {}

    def walk(prefix: str, value: Any, timed: bool) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v, timed or "seconds" in k)
        elif timed and isinstance(value, (int, float)) and not isinstance(value, bool):
            out[prefix] = round(float(value), 3)

    for name, data in sorted(files.items()):
        walk(name, data, False)
    return out


def load_metrics(folder: str | Path) -> dict[str, Any]:
    """Every ``*.json`` of ``folder`` by file name (without ``.json``)."""
    return {p.stem: stage_seconds.read_metrics(p) for p in sorted(Path(folder).glob("*.json"))}


def write_timings(metrics_dir: str | Path, timings_path: str | Path, graph: dict[str, Any] | None = None
                  ) -> dict[str, float]:
    """Every stage's seconds into one flat file; ``graph`` (:func:`dgnet.stage_seconds.graph_cost`) adds
    each stage's wall seconds and the graph's cost in default-step equivalents."""
    files = load_metrics(metrics_dir)
    files.pop("timings", None)
    out = timings(files)
    if graph is not None:
        out.update({f"stage.{name}.wall_seconds": s for name, s in sorted(graph["stage_wall_seconds"].items())})
        out["graph.wall_seconds"] = graph["graph_wall_seconds"]
        out["graph.default_step_seconds"] = graph["default_step_seconds"]
        out["graph.default_step_equivalents"] = graph["default_step_equivalents"]
        out["graph.stages_without_a_record"] = len(graph["stages_without_a_record"])
    io.write_json(timings_path, out)
    return out


def write_summary(metrics_dir: str | Path, summary_dir: str | Path, alpha: float) -> dict[str, dict[str, float]]:
    """Write one file per accuracy row into ``summary_dir`` (replacing what was there)."""
    rows = accuracy_rows(load_metrics(metrics_dir), alpha)
    summary_dir = Path(summary_dir)
    summary_dir.mkdir(parents=True, exist_ok=True)
    for old in summary_dir.glob("*.json"):
        if old.stem not in rows:
            old.unlink()
    for name, row in rows.items():
        io.write_json(summary_dir / f"{name}.json", row)
    return rows
