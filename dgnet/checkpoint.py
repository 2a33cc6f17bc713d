"""Self-contained training checkpoints.

A checkpoint holds everything needed to rebuild and continue a run: the
part of the config its networks depend on (:func:`stored_config`), the number of classes, the iteration, every network's and
optimizer's state and the RNG state. It is written through a temporary file
and an atomic rename (a SIGKILL leaves the previous checkpoint intact) and read
with ``torch.load(..., weights_only=True)``.

The same content always gives the same bytes (no time stamps, no file names
inside), so DVC sees an unchanged output as unchanged.

A save refuses a state with NaN or inf anywhere (networks and optimizers):
a checkpoint on disk is always one that training may continue from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from dgnet import io
from dgnet.config import Config, ConfigError, config_from_dict, config_to_dict
from dgnet.errors import DivergenceError, UserError
from dgnet.models import build_teacher, without_pretrained

FORMAT = "dgnet-checkpoint-v1"

# What a checkpoint keeps of the config, per kind: the sections (or, in a
# tuple, the keys of a section) its networks and their training depend on.
# The rest (eval, sweep, tracking, the config's name, the other stages'
# sections) does not change the weights, so it must not change the file either.
_TRAINING = {"data": None, "model": None, "runtime": None, "train": None}
STORED = {
    "teacher": {"data": None, "model": ("backbone", "head"), "runtime": None, "teacher": None, "train": ("fidelity",)},
    "dgnet": _TRAINING,
    "reid": _TRAINING,
}
# Keys that change no weight: where the second domain is, how images are cached, CPU threads.
NOT_STORED = {"data": ("transfer_layout", "transfer_root", "cache_images", "num_workers", "synth"),
              "runtime": ("threads",)}


def stored_config(kind: str, cfg: Config | dict) -> dict[str, Any]:
    """The part of ``cfg`` (a Config or its dict) that a ``kind`` checkpoint stores."""
    full = config_to_dict(cfg) if isinstance(cfg, Config) else dict(cfg)
    if kind not in STORED:
        return full
    out: dict[str, Any] = {}
    for section, keys in STORED[kind].items():
        if section not in full:
            continue
        values = full[section]
        if keys is not None:
            values = {k: values[k] for k in keys if k in values}
        drop = NOT_STORED.get(section, ())
        out[section] = {k: v for k, v in values.items() if k not in drop}
    return out


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
        "config": stored_config(kind, cfg),
        "num_classes": num_classes,
        "iteration": iteration,
        "models": {name: m.state_dict() for name, m in models.items()},
        "optimizers": {name: o.state_dict() for name, o in (optimizers or {}).items()},
        "torch_rng": torch.get_rng_state(),
        **(extra or {}),
    }


def save(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically; a non-finite tensor raises DivergenceError and writes nothing."""
    bad = io.nonfinite_names({"models": state.get("models", {}), "optimizers": state.get("optimizers", {})})
    if bad:
        raise DivergenceError(f"refusing to save {path}: the state holds {io.describe(bad)}")
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
    source: str | Path = "checkpoint",
) -> int:
    """Load networks and optimizers from ``state``; return the iteration to continue from.

    A missing entry, a shape that does not fit or a non-finite tensor is a
    UserError naming ``source`` (the file).
    """
    try:
        bad = io.nonfinite_names(state["models"])
        if bad:
            raise UserError(f"{source}: holds {io.describe(bad)} (a diverged run); "
                            f"train from scratch or from an earlier checkpoint")
        for name, module in models.items():
            module.load_state_dict(state["models"][name])
        for name, opt in (optimizers or {}).items():
            opt.load_state_dict(state["optimizers"][name])
        torch.set_rng_state(state["torch_rng"])
        return int(state["iteration"])
    except KeyError as err:
        raise UserError(f"{source}: the checkpoint has no {err.args[0]!r} entry; "
                        f"it was not written by this version of dgnet train") from None
    except (RuntimeError, ValueError, TypeError) as err:
        if isinstance(err, UserError):
            raise
        reason = " ".join(str(err).split())[:300]
        raise UserError(f"{source}: the checkpoint does not fit the networks of the current params "
                        f"({reason})") from None


def load_teacher(path: str | Path, device: torch.device) -> tuple[torch.nn.Module, int]:
    """The teacher of a checkpoint and its number of classes; a bad file is a UserError naming it."""
    state = load(path, "teacher", device)
    weights = state.get("models", {}).get("teacher") if isinstance(state.get("models"), dict) else None
    if weights is None:
        raise UserError(f"{path}: a teacher checkpoint without 'teacher' weights; train it again (dgnet train-teacher)")
    bad = io.nonfinite_names(weights)
    if bad:
        raise UserError(f"{path}: the teacher holds {len(bad)} non-finite tensors (e.g. {bad[0]}); "
                        f"train it again (dgnet train-teacher)")
    try:
        model_cfg = without_pretrained(config_from_dict(state["config"]).model)
        model = build_teacher(model_cfg, int(state["num_classes"]))
        model.load_state_dict(weights)
    except (KeyError, TypeError, ValueError, RuntimeError, ConfigError) as err:
        reason = " ".join(str(err).split())[:300]
        raise UserError(f"{path}: not a usable teacher checkpoint ({reason})") from None
    return model.to(device).eval(), int(state["num_classes"])
