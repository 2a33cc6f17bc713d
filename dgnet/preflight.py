"""Checks run before any stage: ``dgnet rehearse`` and the ``prepare`` stage of ``dvc repro``.

    check(cfg, "params.yaml")    # a UserError naming the key and the fix, or nothing

A wrong device, a missing ImageNet file or a missing data set would otherwise
stop the graph stages later (the first teacher, hours into a real run) with
torch's or the layout's message; here each is one ``dgnet: error:`` line at
the start. Nothing is loaded: only the device's presence and the paths are
looked at.
"""

from __future__ import annotations

from pathlib import Path

from dgnet.config import Config
from dgnet.errors import UserError

# the data sets whose root must exist before the run (prepare writes the synthetic ones)
REAL_LAYOUTS = ("market1501", "duke", "msmt17", "cuhk03np")


def device_problem(device: str) -> str | None:
    """Why ``runtime.device`` cannot be used on this machine, or None."""
    import torch

    kind, _, index = device.partition(":")
    if kind == "cuda":
        if not torch.cuda.is_available():
            return "this machine has no usable CUDA GPU (torch.cuda.is_available() is false)"
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            return f"this machine has {count} CUDA GPU(s), numbered from 0"
    if kind == "mps" and not torch.backends.mps.is_available():
        return "this machine has no usable Apple GPU (torch.backends.mps.is_available() is false)"
    return None


def check(cfg: Config, source: str = "params.yaml") -> None:
    """Raise a :class:`UserError` for the first check ``cfg`` (read from ``source``) fails."""
    device = device_problem(cfg.runtime.device)
    if device:
        raise UserError(f"{source}: runtime.device {cfg.runtime.device}: {device}; run on the CPU with "
                        f"--set runtime.device=cpu (dgnet rehearse) or write it with "
                        f"`dgnet config use NAME --device cpu`, or run on a machine with that device")
    roots = [("data.root", cfg.data.layout, cfg.data.root),
             ("data.transfer_root", cfg.data.transfer_layout, cfg.data.transfer_root)]
    for key, layout, root in roots:
        if layout in REAL_LAYOUTS and not Path(root).is_dir():
            fix = ("point it at the data set's folder (`dgnet config use NAME --data-root DIR`)" if key == "data.root"
                   else "point it at the second data set's folder, or set data.transfer_layout: none "
                        "to switch Table 9's transfer off")
            raise UserError(f"{source}: {key} {root}: not found (a {layout} folder is expected there); {fix}")
    backbone = cfg.model.backbone
    if backbone.pretrained == "imagenet" and backbone.arch != "small":
        from dgnet.models.backbone import IMAGENET_FILES, imagenet_weights_path

        if backbone.arch in IMAGENET_FILES and not (path := imagenet_weights_path(backbone.arch)).is_file():
            raise UserError(f"{source}: model.backbone.pretrained imagenet: {path} not found (dgnet never "
                            f"downloads it); copy torchvision's {path.name} there (docs/configurations.md), "
                            f"or set model.backbone.pretrained to the file's path, or to none")
