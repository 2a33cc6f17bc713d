"""Where the paper and the official code differ: one switch, ``train.fidelity``.

``reference`` trains as the official NVlabs/DG-Net code does (commit 9855f08,
``configs/latest.yaml``); ``paper`` follows the paper's equation 10 as
written. Every difference is also its own key; a key set to ``auto`` follows
``train.fidelity``, any other value overrides it for that point alone::

    switches = cfg.switches        # Switches(loss_sums="half_batches", ...), resolved once per config
    switches.groups                # 2: losses are sums of half-batch means

(``cfg.switches`` is :func:`resolve` cached on the frozen config; the config
itself keeps its ``auto`` values, which is what checkpoints store.)

``docs/fidelity.md`` has one row per difference: what the paper says, what
the official code does, the key, and which configuration uses what.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PROFILES: dict[str, dict[str, str]] = {
    "reference": {
        "loss_sums": "half_batches",
        "code_recon": "ramp",
        "prim_ramp": "official",
        "lr_decay": "official",
        "cycle_recon": "ramp",
        "code1_gradient": "detached",
        "fine_real_on": "anchors",
        "appearance_bn": "half_batches",
        "teacher_bn": "batch",
        "teacher_dropout": "after_first_sample",
        "resize": "bicubic",
        "pad_mode": "edge",
        "erasing_aspect": "uniform",
    },
    "paper": {
        "loss_sums": "batch_mean",
        "code_recon": "constant",
        "prim_ramp": "closed_form",
        "lr_decay": "at_step",
        "cycle_recon": "off",
        "code1_gradient": "live",
        "fine_real_on": "anchors_and_positives",
        "appearance_bn": "whole_batch",
        "teacher_bn": "running",
        "teacher_dropout": "off",
        "resize": "bilinear",
        "pad_mode": "zero",
        "erasing_aspect": "log_uniform",
    },
}

TRAIN_KEYS = ("loss_sums", "code_recon", "prim_ramp", "lr_decay", "cycle_recon", "code1_gradient",
              "fine_real_on", "appearance_bn", "teacher_bn", "teacher_dropout")
DATA_KEYS = ("resize", "pad_mode", "erasing_aspect")


@dataclass(frozen=True)
class Switches:
    """The resolved value of every fidelity key (``auto`` replaced by the profile's value)."""

    loss_sums: str  # half_batches: each loss is the sum of the two half-batches' means | batch_mean
    code_recon: str  # ramp: L_code weights 0 until warm_iter, then ramped to lambda_code_max | constant: 1
    prim_ramp: str  # official: lambda_prim first counts at warm_iter + 2 (2 x rate) | closed_form: at warm_iter
    lr_decay: str  # official: the learning rates drop one iteration before each lr_steps entry | at_step
    cycle_recon: str  # ramp: cycle reconstruction |x - G(a(x_ji), s(x_ij))| ramped to lambda_cycle_max | off
    code1_gradient: str  # detached: L_code1 is logged but sends no gradient | live
    fine_real_on: str  # anchors: the fine head's real-image term on x_i only | anchors_and_positives
    appearance_bn: str  # half_batches: E_a runs on each half-batch apart (BN statistics) | whole_batch
    teacher_bn: str  # batch: the teacher's BN uses the generated half-batch's statistics | running
    teacher_dropout: str  # after_first_sample: teacher dropout on from iteration sample_every | off
    resize: str  # bicubic | bilinear: interpolation when decoding the re-id training and test images
    pad_mode: str  # edge | zero: padding before the random crop
    erasing_aspect: str  # uniform | log_uniform: how random erasing draws the aspect ratio

    @property
    def groups(self) -> int:
        """Half-batches the losses are summed over (the reference's loaders a and b), or 1."""
        return 2 if self.loss_sums == "half_batches" else 1

    @property
    def bn_groups(self) -> int:
        """Separate E_a / teacher forward passes per batch (each with its own BN statistics)."""
        return 2 if self.appearance_bn == "half_batches" else 1


def resolve(cfg: Any) -> Switches:
    """Every fidelity key of ``cfg`` (a :class:`dgnet.config.Config`: this module stays below it)
    with ``auto`` replaced by ``train.fidelity``'s profile."""
    return resolve_parts(cfg.train, cfg.data)


def resolve_parts(train: Any, data: Any | None = None) -> Switches:
    """As :func:`resolve` from the sections alone; without ``data`` its keys come from the profile."""
    profile = PROFILES[train.fidelity]
    chosen = {key: getattr(train, key) for key in TRAIN_KEYS}
    if data is not None:
        chosen.update({key: getattr(data, key) for key in DATA_KEYS})
    return Switches(**{key: profile[key] if chosen.get(key, "auto") == "auto" else chosen[key] for key in profile})


__all__ = ["DATA_KEYS", "PROFILES", "Switches", "TRAIN_KEYS", "resolve", "resolve_parts"]
