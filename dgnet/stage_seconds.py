"""The wall-clock seconds of each DVC stage's last run, and the graph's cost in default-step equivalents.

Every stage script ends through :func:`dgnet.entry.run_guarded`; when DVC
runs it (``DVC_STAGE`` set) a successful run writes its wall seconds, from
the interpreter's start, to ``reports/stage_seconds/STAGE.json``. The
``timings`` stage adds up the stages of the current graph and divides by the
default step's seconds per iteration measured on the same machine
(:func:`dgnet.train.speed.default_step_seconds`): the graph's cost in
*default-step equivalents*, comparable across machines that differ in speed.

Seconds change on every run, so under DVC they are kept out of the stages'
outputs (whose hashes ``dvc.lock`` records): :func:`write_metrics` writes a
metrics JSON without its seconds and moves them to
``reports/stage_seconds/moved/<the output's path>``; :func:`read_metrics`
puts them back for the ``timings`` stage.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from dgnet import io
from dgnet.provenance import git_commit

FOLDER = Path("reports/stage_seconds")
MOVED = FOLDER / "moved"
VOLATILE = ("train_seconds", "seconds_per_iteration", "step_seconds_median", "seconds")  # top-level keys
NOT_COUNTED = ("timings", "report")  # they run after the count is taken


def process_seconds() -> float:
    """Seconds since this interpreter started (Linux ``/proc``; else since this module was imported)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        return time.time() - (boot + ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, StopIteration):
        return time.perf_counter() - _IMPORTED


_IMPORTED = time.perf_counter()


def record() -> None:
    """Write this stage's wall seconds (called once, at a successful exit, by ``run_guarded``)."""
    stage, root = os.environ.get("DVC_STAGE"), os.environ.get("DVC_ROOT")
    if not stage or not root:
        return
    io.write_json(Path(root) / FOLDER / f"{stage}.json",
                  {"stage": stage, "wall_seconds": round(process_seconds(), 1),
                   "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "git_commit": git_commit(root)})


def moved_path(path: str | Path) -> Path | None:
    """Where the seconds of the output ``path`` go: ``MOVED/<path from the repository root>``
    (the root is ``DVC_ROOT``, else the working folder); None for a path outside it."""
    root = Path(os.environ.get("DVC_ROOT") or ".").resolve()
    try:
        return root / MOVED / Path(path).resolve().relative_to(root)
    except ValueError:
        return None


def write_metrics(path: str | Path, doc: dict[str, Any]) -> None:
    """Write a stage's metrics JSON; under DVC its :data:`VOLATILE` keys go to their own file."""

    moved = moved_path(path) if os.environ.get("DVC_STAGE") else None
    volatile = {k: doc[k] for k in VOLATILE if k in doc}
    if moved is None or not volatile:
        io.write_json(path, doc)
        return
    io.write_json(path, {k: v for k, v in doc.items() if k not in volatile})
    io.write_json(moved, volatile)


def read_metrics(path: str | Path) -> dict[str, Any]:
    """A metrics JSON with its moved seconds (if any) put back."""
    import json

    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    moved = moved_path(path)
    if moved is not None and moved.is_file():
        doc.update(json.loads(moved.read_text(encoding="utf-8")))
    return doc


def graph_stages(dvc_yaml: dict, params: dict) -> list[str]:
    """The stage names of ``dvc.yaml`` (``foreach`` stages expanded as NAME@KEY), from its parsed text."""
    names = []
    for name, stage in dvc_yaml.get("stages", {}).items():
        items = stage.get("foreach") if isinstance(stage, dict) else None
        if items is None:
            names.append(name)
            continue
        if isinstance(items, str) and items.startswith("${"):
            value: Any = params
            for part in items[2:-1].split("."):
                value = value[part]
            items = value
        keys = items.keys() if isinstance(items, dict) else items
        names.extend(f"{name}@{k}" for k in keys)
    return names


def graph_cost(root: str | Path, step_seconds: float) -> dict[str, Any]:
    """The current graph's stage seconds (those recorded) and their sum in default-step equivalents."""
    from dgnet.config import yaml_load

    root = Path(root)
    stages = [s for s in graph_stages(yaml_load((root / "dvc.yaml").read_text()),
                                      yaml_load((root / "params.yaml").read_text()))
              if s.split("@")[0] not in NOT_COUNTED]
    seconds, missing = {}, []
    for stage in stages:
        path = root / FOLDER / f"{stage}.json"
        if path.is_file():
            import json

            seconds[stage] = float(json.loads(path.read_text())["wall_seconds"])
        else:
            missing.append(stage)
    total = sum(seconds.values())
    return {"stage_wall_seconds": seconds, "stages_without_a_record": missing, "graph_wall_seconds": round(total, 1),
            "default_step_seconds": round(step_seconds, 4),
            "default_step_equivalents": round(total / step_seconds) if step_seconds > 0 else None}
