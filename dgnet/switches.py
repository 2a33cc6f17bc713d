"""Stages a configuration switches off: their outputs as small markers that say why, nothing trained.

    data.transfer_layout: none      teacher_b, the domain-B DG-Net (dgnet_b) and Table 9 (transfer)
    sweep.transfer_b_to_a: false    teacher_b and dgnet_b only: Table 9 keeps its A -> B rows
    sweep.without_id: false         the w/o id ablation (dgnet_noid): its Table 3, Table 2 and Figure 4 entries
    sweep.alphas: []                alpha_sweep and evaluate_alpha_sweep (Figure 8, left)

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
from dgnet.errors import UserError

OFF = "none"  # data.transfer_layout / the --set data.layout value of a switched-off second domain
TRANSFER_OFF = "data.transfer_layout is none (no second domain: Table 9 switched off)"
ALPHAS_OFF = "sweep.alphas is empty (Figure 8's alpha sweep switched off)"
# the boolean keys a training stage can be switched by (pipelines/teacher.py, pipelines/train_dgnet.py --only-if)
BOOLEAN_SWITCHES = {
    "sweep.transfer_b_to_a": "Table 9's B -> A direction switched off: nothing is trained on the second domain",
    "sweep.without_id": "the w/o id ablation switched off",
}


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


def key_off(cfg, key: str) -> str | None:
    """Why the training that ``--only-if KEY`` guards is switched off (the boolean ``key`` is false), or None."""
    section, name = key.split(".")
    if getattr(getattr(cfg, section), name):
        return None
    return f"{key} is false ({BOOLEAN_SWITCHES[key]})"


def require_transfer_root(cfg) -> None:
    """One line naming ``data.transfer_root`` when Table 9's second domain is on and its folder is missing."""
    if transfer_off(cfg) is None and not Path(cfg.data.transfer_root).exists():
        raise UserError(f"params.yaml: data.transfer_root {cfg.data.transfer_root}: not found; Table 9's second "
                        f"domain ({cfg.data.transfer_layout}) goes there, or set data.transfer_layout: none to "
                        "switch the transfer stages off")


def layout_off(assignments: list[str]) -> bool:
    """Whether ``--set`` assignments put a training on ``data.layout=none`` (the switched-off second domain)."""
    return any(a.replace(" ", "") == f"data.layout={OFF}" for a in assignments)


def training_off(cfg, assignments: list[str], only_if: str | None) -> str | None:
    """Why a stage's training is switched off (its ``--set`` puts it on the switched-off second domain,
    or its ``--only-if KEY`` is false), or None when it trains."""
    if layout_off(assignments):
        return TRANSFER_OFF
    return key_off(cfg, only_if) if only_if else None


def is_marker(doc: Any) -> bool:
    """Whether a metrics document is a switched-off stage's marker (not trained, or not run)."""
    return isinstance(doc, dict) and (doc.get("trained") is False or doc.get("run") is False)


def not_run(doc: Any) -> str | None:
    """The reason of a switched-off stage's marker (an evaluation's "not run", a training's "not trained"), or None."""
    if is_marker(doc):
        return str(doc.get("reason") or "not run")
    return None


def blank_figure(path: str | Path) -> None:
    """A 1x1 white PNG: a figure output that exists and says nothing."""
    from PIL import Image

    with io.atomic_path(path) as tmp:
        Image.new("RGB", (1, 1), "white").save(tmp, format="PNG")


def marker_folder(folder: str | Path, reason: str) -> None:
    """``folder`` holding only README.txt with ``reason``: a folder output that exists and holds nothing else."""
    shutil.rmtree(folder, ignore_errors=True)  # what an earlier run left there goes
    io.write_text(Path(folder) / "README.txt", reason + "\n")


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
    if folder is not None:
        marker_folder(folder, reason)
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


__all__ = ["ALPHAS_OFF", "BOOLEAN_SWITCHES", "OFF", "TRANSFER_OFF", "alpha_sweep_off", "blank_figure", "is_marker",
           "key_off", "layout_off", "marker_folder", "require_transfer_root",
           "not_run", "training_off", "transfer_off", "write_not_run", "write_not_trained"]
