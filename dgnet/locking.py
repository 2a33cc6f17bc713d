"""One exclusive file lock between processes on one machine.

``exclusive_lock(path)`` holds an ``flock`` on ``path`` (created empty if
missing, never truncated, so it may be the guarded file itself) for the body
of a ``with`` block. Closing the descriptor releases it, also when the holder
is killed. Used by the MLflow store's creation (``dgnet.tracking``) and by the
tuning workers' shared teacher and warm-up (``experiments/caches.py``).
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def exclusive_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (its folder and the file are created when missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # flock is independent of SQLite's fcntl locks
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
