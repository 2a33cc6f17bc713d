"""What ``dgnet export``, ``embed`` and ``search`` check before any work.

    check_outputs({"--out": out}, {"--checkpoint": [checkpoint], "the gallery": images})
    check_device("cuda")      # one clear line when there is no GPU
    beta = check_beta(beta)   # finite and >= 0

Every failure is a :class:`~dgnet.errors.UserError` (one ``dgnet: error:``
line, exit code 2).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Iterable

import torch

from dgnet.errors import UserError
from dgnet.io import write_probe


def _file_id(path: str | Path) -> tuple[int, int] | None:
    """(device, inode) of the file ``path`` names after following links; None if there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _nearest_existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _check_writable(name: str, path: Path) -> None:
    """``path`` can be written: not a folder, not read-only, under a folder that can be made and written.

    Nothing is created: a missing folder is made only when the output is written.
    """
    if path.is_dir():
        raise UserError(f"{name} {path}: is a folder; give a file name inside it")
    if path.is_file() and not path.stat().st_mode & 0o222:
        raise UserError(f"{name} {path}: the file is read-only; make it writable (chmod u+w) "
                        f"or choose another output path")
    folder = _nearest_existing(path.absolute().parent)
    if not folder.is_dir():
        raise UserError(f"{name} {path}: {folder} is a file, not a folder; choose another output path")
    try:
        write_probe(folder)
    except OSError as err:
        raise UserError(f"{name} {path}: cannot write in {folder} ({err.strerror}); "
                        f"choose another output path or fix the folder's permissions") from None


def check_outputs(outputs: dict[str, str | Path | None], inputs: dict[str, Iterable[str | Path]]) -> None:
    """Refuse, before any work, an output that cannot or must not be written.

    ``outputs`` maps an option (``--out``) to its path (None: not asked for);
    ``inputs`` maps a description (``--checkpoint``, ``the gallery``) to the
    files it reads. An output that is one of the inputs (the same file after
    links are resolved), that is given twice, that is a folder or a read-only
    file, or whose folder cannot be written is an error.
    """
    input_ids: dict[tuple[int, int], str] = {}
    for what, paths in inputs.items():
        for path in paths:
            file_id = _file_id(path)
            if file_id is not None:
                input_ids.setdefault(file_id, f"{what} {path}" if what.startswith("--") else f"{path} ({what})")
    seen: dict[object, str] = {}
    for name, path in outputs.items():
        if path is None:
            continue
        path = Path(path)
        _check_writable(name, path)
        file_id = _file_id(path)
        if file_id in input_ids:
            raise UserError(f"{name} {path}: is an input of this command ({input_ids[file_id]}); "
                            f"writing it would destroy it: choose another output path")
        key = file_id or path.resolve()
        if key in seen:
            raise UserError(f"{name} {path}: is also {seen[key]}; give each output its own file")
        seen[key] = name


def check_device(device: str) -> None:
    """``cpu``, ``mps``, or ``cuda`` / ``cuda:N`` naming a GPU this machine has."""
    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", device):
        raise UserError(f"--device: expected cpu, cuda or cuda:N, got {device!r}")
    if device == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps: no Apple GPU (MPS) is available here; use --device cpu")
    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if count == 0:
            raise UserError(f"--device {device}: no CUDA GPU is available here; use --device cpu")
        if index >= count:
            raise UserError(f"--device {device}: this machine has {count} CUDA GPU(s), "
                            f"cuda:0 to cuda:{count - 1}; choose one of them or cpu")


def check_beta(beta: float) -> float:
    """``beta`` (the weight of f_fine) if it is finite and >= 0."""
    if not math.isfinite(beta) or beta < 0:
        raise UserError(f"--beta: expected a finite number >= 0, got {beta}")
    return float(beta)


def check_at_least_one(option: str, value: int) -> None:
    if value < 1:
        raise UserError(f"{option}: expected a number >= 1, got {value}")


__all__ = ["check_at_least_one", "check_beta", "check_device", "check_outputs"]
