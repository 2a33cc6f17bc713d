"""Checks that keep a training honest: finite weights, a matching config on resume.

    bad = nonfinite_tensors(nets)          # [] when every parameter and buffer is finite
    watch = FinitenessWatch(); watch.record(it, losses, nets); watch.first_failure()   # (iteration, what) or None
    notes = check_resume_config(state["config"], cfg, path)   # UserError for keys that change the run

Finiteness is measured with fused max-norms (``torch._foreach_norm``, which
propagate NaN and inf) over every network; tensors are only named when
something is wrong. The training loop records each iteration's losses and
max-norms on the device and reads them once per logging interval and before
every checkpoint (:class:`FinitenessWatch`), so a steady-state iteration waits
on no device-to-host copy.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dgnet.config import Config, ConfigError, config_from_dict, config_to_dict, flatten
from dgnet.errors import UserError
from dgnet.io import describe


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


class FinitenessWatch:
    """Each iteration's losses and the networks' max-norms after its update, kept on the device until
    :meth:`first_failure` reads them all at once (one host read) and names the first non-finite one."""

    def __init__(self) -> None:
        self._pending: list[tuple[int, list[str], Tensor, list[str], Tensor]] = []

    def record(self, iteration: int, losses: dict[str, Tensor], nets: dict[str, nn.Module]) -> None:
        named = [(f"{net_name}.{name}", t) for net_name, net in nets.items() for name, t in _float_tensors(net)]
        values = torch.stack([v.detach().float() for v in losses.values()])
        norms = torch.stack([n.float() for n in torch._foreach_norm([t for _, t in named], float("inf"))])
        self._pending.append((iteration, list(losses), values, [name for name, _ in named], norms))

    def first_failure(self) -> tuple[int, str] | None:
        """``(iteration, what)`` for the first recorded iteration with a non-finite loss (named), else
        with a non-finite parameter or buffer; None when all were finite. Forgets what was recorded."""
        pending, self._pending = self._pending, []
        if not pending:
            return None
        ok = torch.stack([torch.isfinite(torch.cat([v, n])).all() for _, _, v, _, n in pending]).tolist()
        for good, (it, loss_names, values, tensor_names, norms) in zip(ok, pending):
            if good:
                continue
            for name, value in zip(loss_names, values.tolist()):
                if not math.isfinite(value):
                    return it, f"loss {name!r} is {value}"
            bad = [name for name, n in zip(tensor_names, norms.tolist()) if not math.isfinite(n)]
            return it, f"the update made {describe(bad)}"
        return None


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
