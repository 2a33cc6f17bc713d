"""Self-contained training checkpoints.

A checkpoint holds everything needed to rebuild and continue a run: the
config it ran with, the number of classes, the iteration, every network's and
optimizer's state and the RNG state. It is written through a temporary file
and an atomic rename (a SIGKILL leaves the previous checkpoint intact) and read
with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from dgnet import io
from dgnet.config import Config, config_to_dict
from dgnet.errors import UserError

FORMAT = "dgnet-checkpoint-v1"


def make_state(
    kind: str,
    cfg: Config,
    num_classes: int,
    iteration: int,
    models: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "kind": kind,
        "config": config_to_dict(cfg),
        "num_classes": num_classes,
        "iteration": iteration,
        "models": {name: m.state_dict() for name, m in models.items()},
        "optimizers": {name: o.state_dict() for name, o in (optimizers or {}).items()},
        "torch_rng": torch.get_rng_state(),
        **(extra or {}),
    }


def save(path: str | Path, state: dict[str, Any]) -> None:
    io.save_checkpoint(path, state)


def load(path: str | Path, kind: str, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint of the expected ``kind`` ("teacher", "dgnet", "reid")."""
    state = io.load_checkpoint(path, map_location=device)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path}: not a dgnet checkpoint (expected format {FORMAT!r})")
    if state.get("kind") != kind:
        raise UserError(f"{path}: a {state.get('kind')!r} checkpoint, expected {kind!r}")
    return state


def restore(
    state: dict[str, Any],
    models: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
) -> int:
    """Load networks and optimizers from ``state``; return the iteration to continue from."""
    for name, module in models.items():
        module.load_state_dict(state["models"][name])
    for name, opt in (optimizers or {}).items():
        opt.load_state_dict(state["optimizers"][name])
    torch.set_rng_state(state["torch_rng"])
    return int(state["iteration"])
