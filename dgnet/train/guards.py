"""Checks that keep a training honest: finite weights, a matching config on resume.

    bad = nonfinite_tensors(nets)          # [] when every parameter and buffer is finite
    notes = check_resume_config(state["config"], cfg, path)   # UserError for keys that change the run

The finiteness check runs after every optimizer step: fused max-norms
(``torch._foreach_norm``, which propagate NaN and inf) over every network and
a single host sync; tensors are only named when something is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dgnet.config import Config, ConfigError, config_from_dict, config_to_dict, flatten
from dgnet.errors import UserError


def _float_tensors(net: nn.Module) -> list[tuple[str, Tensor]]:
    named = list(net.named_parameters()) + list(net.named_buffers())
    return [(name, t.detach()) for name, t in named if t.is_floating_point() and t.numel()]


def all_finite(tensors: list[Tensor]) -> bool:
    """True when no tensor holds NaN or inf (one fused max-norm per device and dtype, one sync)."""
    if not tensors:
        return True
    norms = torch._foreach_norm(tensors, float("inf"))
    return bool(torch.isfinite(torch.stack([n.float() for n in norms])).all())


def nonfinite_tensors(nets: dict[str, nn.Module]) -> list[str]:
    """``network.tensor`` names of parameters and buffers holding NaN or inf (empty when all finite)."""
    named = [(f"{net_name}.{name}", t) for net_name, net in nets.items() for name, t in _float_tensors(net)]
    if all_finite([t for _, t in named]):
        return []
    return [name for name, t in named if not bool(torch.isfinite(t).all())]


# ---------------------------------------------------------------- resume


# Keys that may differ between a checkpoint and the run that resumes it: they
# change neither the networks, the data nor the updates already made.
RESUMABLE_PREFIXES = ("name", "tracking.", "runtime.", "eval.", "sweep.", "train.iterations",
                      "train.log_every", "train.sample_every", "train.checkpoint_every", "data.root",
                      "data.num_workers", "data.cache_images")


def _flat_config(data: dict) -> dict[str, Any]:
    return flatten(config_to_dict(config_from_dict(data)))


def check_resume_config(stored: Any, cfg: Config, path: str | Path, also_allowed: tuple[str, ...] = ()) -> list[str]:
    """Compare a checkpoint's config with ``cfg``; return the allowed differences as notes.

    Keys that change the networks, the data or the updates (seed, learning
    rates, widths, ...) are a :class:`UserError` naming each one with both
    values. ``also_allowed``: more dotted keys that may differ (the caller
    knows they have not acted yet, e.g. post-warm-up keys during the warm-up).
    """
    try:
        stored_keys = set(flatten(dict(stored)))  # a checkpoint stores only the keys its training depends on
        before = {k: v for k, v in _flat_config(dict(stored)).items() if k in stored_keys}
    except (ConfigError, TypeError, ValueError) as err:
        raise UserError(f"{path}: the checkpoint's stored config is not valid ({err}); "
                        f"train from scratch into another --out") from None
    now = {k: v for k, v in flatten(config_to_dict(cfg)).items() if k in stored_keys}
    changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    allowed = [k for k in changed if k.startswith(RESUMABLE_PREFIXES) or k in also_allowed]
    refused = [k for k in changed if k not in allowed]
    if refused:
        pairs = "; ".join(f"{k}: {before.get(k)!r} in the checkpoint, {now.get(k)!r} now" for k in refused)
        raise UserError(f"{path}: cannot resume, the params differ in keys that change the run ({pairs}); "
                        f"restore those values, or train from scratch into another --out")
    return [f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in allowed]
