"""Figures: rank lists (and, added by other parts of the project, swap grids,
interpolations, plots). Matplotlib's Agg canvas, no pyplot state; every file
is written atomically.

    rank_list_figure(query_paths, gallery_paths, ranked, matches, "reports/figures/rank_list.png")
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from dgnet.io import save_figure

CORRECT, WRONG = "#1a9850", "#d73027"


def _image(path: str | Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _show(ax, path, title: str = "", edge: str | None = None) -> None:
    ax.imshow(_image(path))
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(edge is not None)
        if edge is not None:
            spine.set_edgecolor(edge)
            spine.set_linewidth(4)
    if title:
        ax.set_title(title, fontsize=8)


def rank_list_figure(
    query_paths: Sequence[str | Path],
    gallery_paths: Sequence[str | Path],
    ranked_indices,
    matches,
    out_png: str | Path,
    k: int = 10,
    scores=None,
) -> Path:
    """One row per query: the query image, then its first ``k`` gallery images.

    ``ranked_indices`` (n, >= k): gallery indices in rank order (``-1``: none);
    ``matches`` (n, >= k): whether each is the query's identity (green border)
    or not (red), or None where identities are unknown (no border).
    ``scores`` (n, >= k), optional: printed beside each rank. Returns
    ``out_png``, written atomically (PNG).
    """
    ranked = np.asarray(ranked_indices)
    known = matches is not None
    correct = np.asarray(matches if known else np.zeros(ranked.shape), dtype=bool)
    n = len(query_paths)
    if ranked.shape[0] != n or correct.shape[0] != n:
        raise ValueError(f"{n} queries but {ranked.shape[0]} ranked rows and {correct.shape[0]} match rows")
    k = min(k, ranked.shape[1])
    fig = Figure(figsize=(1.1 * (k + 1), 2.3 * max(n, 1)), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(max(n, 1), k + 1, squeeze=False)
    for row in range(n):
        _show(axes[row, 0], query_paths[row], "query")
        for col in range(k):
            ax = axes[row, col + 1]
            g = int(ranked[row, col])
            if g < 0:
                ax.axis("off")
                continue
            title = str(col + 1) if scores is None else f"{col + 1}: {float(scores[row][col]):.3f}"
            edge = (CORRECT if correct[row, col] else WRONG) if known else None
            _show(ax, gallery_paths[g], title, edge)
    fig.tight_layout()
    return save_figure(fig, out_png)


__all__ = ["rank_list_figure"]
