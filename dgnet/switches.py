"""Stages a configuration switches off: their outputs as small markers that say why, nothing trained.

    data.transfer_layout: none   teacher_b, the domain-B DG-Net (dgnet_b) and Table 9 (transfer)
    sweep.alphas: []             alpha_sweep and evaluate_alpha_sweep (Figure 8, left)

(The pretrain, pretrain_generator and probe stages switch themselves off the
same way: pipelines/pretrain.py, pipelines/probe.py.) DVC's graph stays the
same: each switched-off stage still writes every output it declares, as a
marker. A training's marker metrics are ``{"trained": false, "reason": ...,
"train_seconds": 0}``; an evaluation's are ``{"run": false, "reason": ...}``,
which the reports print as "not run" and ``dgnet rehearse`` as "skipped
(switched off)".
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from dgnet import io

OFF = "none"  # data.transfer_layout / the --set data.layout value of a switched-off second domain
TRANSFER_OFF = "data.transfer_layout is none (no second domain: Table 9 switched off)"
ALPHAS_OFF = "sweep.alphas is empty (Figure 8's alpha sweep switched off)"


def transfer_off(cfg) -> str | None:
    """Why Table 9 is switched off (``data.transfer_layout: none``), or None when it is on."""
    if cfg.data.transfer_layout == OFF:
        return TRANSFER_OFF
    return None


def alpha_sweep_off(cfg) -> str | None:
    """Why the alpha sweep is switched off (``sweep.alphas: []``), or None when it is on."""
    if not cfg.sweep.alphas:
        return ALPHAS_OFF
    return None


def layout_off(assignments: list[str]) -> bool:
    """Whether ``--set`` assignments put a training on ``data.layout=none`` (the switched-off second domain)."""
    return any(a.replace(" ", "") == f"data.layout={OFF}" for a in assignments)


def is_marker(doc: Any) -> bool:
    """Whether a metrics document is a switched-off stage's marker (not trained, or not run)."""
    return isinstance(doc, dict) and (doc.get("trained") is False or doc.get("run") is False)


def not_run(doc: Any) -> str | None:
    """The reason of an evaluation's "not run" marker, or None."""
    if isinstance(doc, dict) and doc.get("run") is False:
        return str(doc.get("reason") or "not run")
    return None


def blank_figure(path: str | Path) -> None:
    """A 1x1 white PNG: a figure output that exists and says nothing."""
    from PIL import Image

    with io.atomic_path(path) as tmp:
        Image.new("RGB", (1, 1), "white").save(tmp, format="PNG")


def write_not_trained(cause: str, metrics: str | Path, checkpoint: str | Path | None = None,
                      folder: str | Path | None = None, figure: str | Path | None = None,
                      curve: str | Path | None = None) -> None:
    """A switched-off training's outputs: a ``not_trained`` checkpoint, a folder holding README.txt, a blank
    figure and a header-only curve, each where given, and the metrics marker; ``cause``: why (e.g.
    :data:`TRANSFER_OFF`)."""
    reason = f"not trained: {cause}"
    paths = [p for p in (metrics, checkpoint, figure, curve) if p is not None]
    if folder is not None:
        paths.append(Path(folder) / "README.txt")
    io.require_writable(*paths)
    if checkpoint is not None:
        io.save_checkpoint(checkpoint, {"kind": "not_trained", "reason": reason})
    if folder is not None:  # what an earlier run left there goes
        shutil.rmtree(folder, ignore_errors=True)
        io.write_text(Path(folder) / "README.txt", reason + "\n")
    if figure is not None:
        blank_figure(figure)
    if curve is not None:
        io.write_text(curve, "step\n")
    io.write_json(metrics, {"trained": False, "reason": reason, "train_seconds": 0.0})
    print(f"{checkpoint or folder or metrics}: {reason}")


def write_not_run(path: str | Path, cause: str, **empty: Any) -> None:
    """A switched-off evaluation's result: ``{"run": false, "reason": ..., **empty}`` (e.g. ``rows=[]``)."""
    reason = f"not run: {cause}"
    io.write_json(path, {"run": False, "reason": reason, **empty})
    print(f"{path}: {reason}")


__all__ = ["ALPHAS_OFF", "OFF", "TRANSFER_OFF", "alpha_sweep_off", "blank_figure", "is_marker", "layout_off",
           "not_run", "transfer_off", "write_not_run", "write_not_trained"]
