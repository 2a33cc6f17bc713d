"""The search spaces: what a trial draws, the config keys it sets, and a study's config fingerprint."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

import optuna

from dgnet.config import Config, config_to_dict, flatten
from dgnet.errors import UserError

SPACES = ("alpha-beta", "schedule")
DEFAULT_BETAS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)

# name -> (low, high, log scale); the schedule's fractions are of the run's iterations
ALPHA_RANGE = (0.0, 1.0, False)
SCHEDULE_RANGES = {
    "warm_frac": (0.0, 0.6, False),  # train.warm_iter / iterations (paper: 30K / 100K)
    "ramp_frac": (0.0, 0.3, False),  # train.ramp_iters / iterations (paper: 4K / 100K)
    "lambda_prim_max": (0.5, 4.0, True),  # paper 2
    "lambda_id": (0.1, 2.0, True),  # paper 0.5
    "lambda_img": (1.0, 10.0, True),  # paper 5
}
# config keys each space searches (left out of the study's config fingerprint)
SEARCHED_KEYS = {
    "alpha-beta": ("train.alpha", "eval.beta"),
    "schedule": ("train.warm_iter", "train.ramp_iters", "train.lambda_prim_max", "train.lambda_id",
                 "train.lambda_img"),
}


def check_space(space: str) -> None:
    if space not in SPACES:
        raise UserError(f"unknown search space {space!r}; expected one of {', '.join(SPACES)}")


def suggest_params(space: str, trial: optuna.Trial) -> dict[str, float]:
    """Draw a trial's parameters of ``space`` (Optuna names, see :data:`SCHEDULE_RANGES`)."""
    check_space(space)
    if space == "alpha-beta":
        lo, hi, log_scale = ALPHA_RANGE
        return {"alpha": trial.suggest_float("alpha", lo, hi, log=log_scale)}
    return {name: trial.suggest_float(name, lo, hi, log=log_scale)
            for name, (lo, hi, log_scale) in SCHEDULE_RANGES.items()}


def config_changes(space: str, params: Mapping[str, float], iterations: int,
                   beta: float | None = None) -> dict[str, Any]:
    """The dotted config keys that a trial's ``params`` set for a run of ``iterations``.

    ``beta`` (alpha-beta only) is the grid value a trial picked on validation.
    """
    check_space(space)
    if space == "alpha-beta":
        changes: dict[str, Any] = {"train.alpha": float(params["alpha"])}
        if beta is not None:
            changes["eval.beta"] = float(beta)
        return changes
    return {
        "train.warm_iter": int(round(params["warm_frac"] * iterations)),
        "train.ramp_iters": int(round(params["ramp_frac"] * iterations)),
        "train.lambda_prim_max": float(params["lambda_prim_max"]),
        "train.lambda_id": float(params["lambda_id"]),
        "train.lambda_img": float(params["lambda_img"]),
    }


def config_params(space: str, cfg: Config) -> dict[str, float]:
    """``cfg``'s own values in the space's terms (the inverse of :func:`config_changes`): an enqueued trial."""
    check_space(space)
    t = cfg.train
    if space == "alpha-beta":
        return {"alpha": float(t.alpha)}
    return {"warm_frac": t.warm_iter / t.iterations, "ramp_frac": t.ramp_iters / t.iterations,
            "lambda_prim_max": float(t.lambda_prim_max), "lambda_id": float(t.lambda_id),
            "lambda_img": float(t.lambda_img)}


def config_fingerprint(cfg: Config, space: str) -> str:
    """A hash of what a study's trials share: the config without the searched keys,
    tracking, runtime (workers may differ in device), machine-local paths and
    keys no trial reads (the DVC sweeps, the evaluation batch size)."""
    flat = flatten(config_to_dict(cfg))
    skip = set(SEARCHED_KEYS[space]) | {"data.root", "data.num_workers", "data.cache_images", "name",
                                        "eval.batch_size"}
    kept = {k: v for k, v in flat.items()
            if k not in skip and not k.startswith(("tracking.", "runtime.", "sweep."))}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]
