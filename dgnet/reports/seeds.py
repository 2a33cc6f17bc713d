"""Every measured table over seeds: mean ± std of the main seed and the replicates.

    seed_metrics = claims.load_seed_metrics(0, "reports/metrics", {1: ..., 2: ...})
    reid_over_seeds(seed_metrics, claims.SEED_ROWS)    # DataFrame, one row per model
    write_seeds_page("reports/seeds.md", title_header, seed_metrics, claims.SEED_ROWS, main_alpha=0.2)

A value measured for one seed only is shown as ``x (1 seed)``; one measured
for none is ``not measured``. The per-seed tables (``table3.md`` and the
others written by the evaluation stages) hold the main seed alone.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from dgnet import io

REID_COLUMNS = ("rank1", "rank5", "rank10", "mAP", "mINP")
REID_NAMES = {"rank1": "Rank@1", "rank5": "Rank@5", "rank10": "Rank@10", "mAP": "mAP", "mINP": "mINP"}


def mean_std(values: Sequence[float], digits: int = 1) -> str:
    if not values:
        return "not measured"
    if len(values) == 1:
        return f"{values[0]:.{digits}f} (1 seed)"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def lookup(m, *keys):
    """``m[k1][k2]...``, or None where a key (or a level) is missing."""
    for key in keys:
        if not isinstance(m, dict) or key not in m:
            return None
        m = m[key]
    return m


def reid_over_seeds(seed_metrics: dict[int, dict], rows: Iterable[tuple[str, str, tuple[str, ...]]]) -> pd.DataFrame:
    """Rank@k / mAP / mINP in percent, mean ± std over the seeds that measured each row.

    ``rows``: ``(label, metrics file, path inside it)``, e.g. ``("f_prim", "table3", ("f_prim",))``.
    """
    out = []
    for label, file, path in rows:
        entries = [e for e in (lookup(m, file, *path) for m in seed_metrics.values()) if e]
        row = {"Method": label, "seeds": len(entries)}
        for key in REID_COLUMNS:
            row[REID_NAMES[key]] = mean_std([100 * float(e[key]) for e in entries if e.get(key) is not None])
        out.append(row)
    return pd.DataFrame(out)


def generation_over_seeds(seed_metrics: dict[int, dict]) -> pd.DataFrame:
    """Table 2's measured columns (teacher-feature Fréchet distance, SSIM) over seeds."""
    models: list[str] = []
    for m in seed_metrics.values():
        models += [k for k in (lookup(m, "generation", "table2") or {}) if k not in models]
    out = []
    for model in models:
        rows = [r for r in (lookup(m, "generation", "table2", model) for m in seed_metrics.values()) if r]
        out.append({"Method": model, "seeds": len(rows),
                    "Fréchet distance (teacher features)": mean_std(
                        [r["frechet_teacher"] for r in rows if r.get("frechet_teacher") is not None], 2),
                    "SSIM": mean_std([r["ssim"] for r in rows if r.get("ssim") is not None], 3)})
    return pd.DataFrame(out)


def beta_over_seeds(seed_metrics: dict[int, dict]) -> pd.DataFrame:
    """Figure 8 (right): mAP of f_prim + beta f_fine for each beta, over seeds."""
    by_beta: dict[float, list[float]] = {}
    for m in seed_metrics.values():
        for point in lookup(m, "beta_sweep", "points") or []:
            by_beta.setdefault(float(point["beta"]), []).append(100 * float(point["mAP"]))
    return pd.DataFrame([{"beta": b, "seeds": len(v), "mAP": mean_std(v)} for b, v in sorted(by_beta.items())])


def alpha_over_seeds(seed_metrics: dict[int, dict], main_alpha: float) -> pd.DataFrame:
    """Figure 8 (left): mAP for each alpha (the swept ones and the main model's), over seeds."""
    by_alpha: dict[float, list[float]] = {}
    for m in seed_metrics.values():
        main = lookup(m, "table3", "f_prim+f_fine")
        swept = lookup(m, "alpha_sweep", "points") or []
        for point in swept + ([{"alpha": main_alpha, "mAP": main["mAP"]}] if main else []):
            by_alpha.setdefault(float(point["alpha"]), []).append(100 * float(point["mAP"]))
    return pd.DataFrame([{"alpha": a, "seeds": len(v), "mAP": mean_std(v)} for a, v in sorted(by_alpha.items())])


def write_seeds_page(path: str | Path, head: str, seed_metrics: dict[int, dict],
                     reid_rows: Iterable[tuple[str, str, tuple[str, ...]]], main_alpha: float) -> None:
    """``reports/seeds.md``: the re-id, generation and Figure 8 tables as mean ± std over seeds."""
    seeds = ", ".join(str(s) for s, m in seed_metrics.items() if m) or "none"
    parts = [head, f"Seeds: {seeds}. Each cell is mean ± std over the seeds that measured it (the `seeds` "
             "column); `(1 seed)` marks a value measured once.", ""]
    for title, frame in (("Re-id (Table 3, ablations, offline vs end-to-end), percent", reid_over_seeds(seed_metrics, reid_rows)),
                         ("Generation quality (Table 2)", generation_over_seeds(seed_metrics)),
                         ("Figure 8 (right): beta at test time, mAP percent", beta_over_seeds(seed_metrics)),
                         ("Figure 8 (left): alpha, mAP percent", alpha_over_seeds(seed_metrics, main_alpha))):
        body = frame.to_markdown(index=False) if len(frame) else "not measured by this run"
        parts += [f"## {title}", "", body, ""]
    io.write_text(path, "\n".join(parts))


__all__ = ["alpha_over_seeds", "beta_over_seeds", "generation_over_seeds", "lookup", "mean_std", "reid_over_seeds",
           "write_seeds_page"]
