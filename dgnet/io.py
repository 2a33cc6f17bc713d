"""Atomic file outputs and safe checkpoint loading.

Every output goes to a temporary file in the same folder and is renamed into
place, so a crash or SIGKILL leaves either the old file or the new one, never
half of one. The writer holds a lock on its temporary file; a temporary file
that nobody holds (its writer was killed) is removed by the next write to the
same output or by :func:`remove_stale_tmp`. A full disk is a
:class:`~dgnet.errors.UserError` that says so; the previous file is kept.
"""

from __future__ import annotations

import errno
import fcntl
import glob
import json
import os
import pickle
import shutil
import sys
import tempfile
import zipfile
from collections import OrderedDict
from io import BytesIO
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from dgnet.errors import UserError

_UMASK = os.umask(0)
os.umask(_UMASK)
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def umask() -> int:
    """The process umask (read once at import)."""
    return _UMASK


def _tmp_glob(path: Path) -> str:
    return f".{glob.escape(path.name)}.*.tmp"


def remove_stale_tmp(path: str | Path) -> list[Path]:
    """Remove the temporary files of ``path`` left by killed writers; return them.

    A live writer holds an exclusive ``flock`` on its temporary file, so only
    files that no process holds are removed.
    """
    path = Path(path)
    removed = []
    for tmp in sorted(path.parent.glob(_tmp_glob(path))):
        try:
            fd = os.open(tmp, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
        except OSError:  # held by a live writer
            pass
        finally:
            os.close(fd)
    return removed


def no_space_message(path: Path) -> str:
    free_mb = shutil.disk_usage(path.parent).free / 2**20
    kept = f"the previous {path.name} is kept" if path.exists() else "nothing was written"
    return (f"{path}: no space left on the device ({free_mb:.0f} MB free); {kept}; "
            f"free some space and run the command again")


def _output_mode(path: Path) -> int:
    """The permission bits of the file being replaced, or an ordinary new file's (0666 less the umask)."""
    try:
        return path.stat().st_mode & 0o777 if path.is_file() else 0o666 & ~_UMASK
    except OSError:
        return 0o666 & ~_UMASK


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path`` (a replaced
    file's permission bits are kept)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(path)
    mode = _output_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp_path = Path(tmp)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # "in use": remove_stale_tmp leaves it alone
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, mode)  # mkstemp makes 0600
        os.replace(tmp_path, path)
    except OSError as err:
        if err.errno in NO_SPACE:
            tmp_path.unlink(missing_ok=True)
            raise UserError(no_space_message(path)) from None
        raise
    finally:
        tmp_path.unlink(missing_ok=True)
        os.close(fd)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_figure(fig: Any, path: str | Path, **savefig_kwargs: Any) -> Path:
    """Write a matplotlib figure as a PNG (atomically), then close it; ``savefig_kwargs`` go to ``savefig``."""
    import matplotlib.pyplot as plt  # here, not at the top: most users of this module draw nothing

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", **savefig_kwargs)
    plt.close(fig)  # a figure pyplot never held (``Figure()``) is left as it is
    return path


def checkpoint_bytes(state: dict) -> bytes:
    """``torch.save`` of ``state`` into memory: the same state gives the same bytes.

    Saving to a buffer fixes the zip's record prefix (``archive/``) whatever
    the file is called, so a checkpoint's hash depends on its content only
    (DVC then sees an unchanged output and reruns nothing downstream).
    The state is saved in :func:`canonical` form, so a resumed run's state
    gives the bytes of the uninterrupted run's.
    """
    buffer = BytesIO()
    torch.save(canonical(state), buffer)
    return buffer.getvalue()


def canonical(value: Any) -> Any:
    """``value`` with every string interned and every container rebuilt.

    Pickle writes an object seen before as a reference to it, by identity: a
    key that is the same string object as an earlier one (e.g. an optimizer's
    ``weight_decay`` and the config's, both interned names) is a reference in a
    fresh run but a second copy after ``torch.load`` (unpickled strings are not
    interned). Interned strings and fresh containers make the bytes depend on
    the content only. Tensors are kept as they are (their sharing is content).
    """
    if isinstance(value, str):
        return sys.intern(value)
    if type(value) in (dict, OrderedDict):  # a state_dict is an OrderedDict with the modules' _metadata
        out = type(value)((canonical(k), canonical(v)) for k, v in value.items())
        if hasattr(value, "_metadata"):
            out._metadata = canonical(value._metadata)
        return out
    if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        return type(value)(canonical(v) for v in value)
    return value


def save_checkpoint(path: str | Path, state: dict) -> None:
    """A byte-deterministic ``torch.save`` through a temporary file and an atomic rename.

    A full disk is the ``OSError(ENOSPC)`` of the write; :func:`atomic_path`
    turns it into one clear line and keeps the previous file.
    """
    data = checkpoint_bytes(state)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


def write_probe(folder: str | Path) -> None:
    """Create and remove a file in ``folder``: the OSError a real output would meet, raised before any work."""
    fd, probe = tempfile.mkstemp(prefix=".dgnet-write-check.", dir=folder)
    os.close(fd)
    os.unlink(probe)


def require_writable(*paths: str | Path) -> None:
    """Check before any work that each output file's folder can be created and written."""
    for folder in dict.fromkeys(Path(p).parent for p in paths):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_probe(folder)
        except OSError as err:
            raise UserError(f"{folder}: cannot write the outputs here ({err.strerror}); "
                            f"choose another output path or fix the folder's permissions") from None


def nonfinite_names(state: Any, prefix: str = "") -> list[str]:
    """Dotted names of the floating-point tensors in ``state`` (nested dicts and lists) with NaN or inf."""
    if isinstance(state, torch.Tensor):
        if state.is_floating_point() and state.numel() and not bool(torch.isfinite(state).all()):
            return [prefix.rstrip(".") or "tensor"]
        return []
    if isinstance(state, dict):
        items = state.items()
    elif isinstance(state, (list, tuple)):
        items = enumerate(state)
    else:
        return []
    return [name for key, value in items for name in nonfinite_names(value, f"{prefix}{key}.")]


class CheckpointError(UserError):
    pass


def describe(names: list[str], shown: int = 3) -> str:
    """``"2 non-finite tensors (appearance.fc.weight, ...)"``."""
    more = ", ..." if len(names) > shown else ""
    return f"{len(names)} non-finite tensor{'s' if len(names) != 1 else ''} ({', '.join(names[:shown])}{more})"


def _unreadable_reason(path: Path, err: Exception) -> str:
    """Why ``torch.load`` failed, in words that fit the file (never advice to load it unsafely)."""
    if not zipfile.is_zipfile(path):
        return "not a PyTorch checkpoint archive: the file is corrupt, truncated or of another kind"
    if isinstance(err, pickle.UnpicklingError):
        return ("it holds Python objects that the safe loader (weights_only=True) refuses; "
                "a dgnet checkpoint holds only tensors and plain values")
    return " ".join(str(err).split())[:300]


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; clear errors for missing or corrupt files."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file (give the .pt file inside it)")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated/corrupt files
        raise CheckpointError(f"{path}: not a readable checkpoint ({_unreadable_reason(path, err)})") from None
