"""Progress bars that suit where they are written.

In a terminal, a live tqdm bar. Anywhere else (a log file, a pipe, CI), the
bar would write a carriage-return redraw for every update, thousands of them
per stage; there it prints a plain line every ``LOG_STEP`` of the total
instead (and every ``LOG_SECONDS`` when the total is unknown), and postfix
updates (``set_postfix``) wait for the next line.

    from dgnet.progress import tqdm          # same signature as tqdm.tqdm
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm import tqdm as _tqdm

LOG_STEP = 0.05  # a line every 5 % of the total in a log file
LOG_SECONDS = 60.0  # ... or every minute when the total is unknown


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _Lines:
    """A stream for tqdm that writes each redraw as one whole line (no carriage returns)."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self._last = ""

    def write(self, text: str) -> None:
        line = text.replace("\r", "").replace("\x1b[A", "").strip()
        done = line.split("[", 1)[0]  # the closing redraw repeats the last count with a new rate
        if line and done != self._last:
            self._stream.write(line + "\n")
            self._last = done

    def flush(self) -> None:
        self._stream.flush()


class _LogBar(_tqdm):
    """A tqdm that only draws at its ``miniters`` (no monitor thread, no redraw on postfix)."""

    monitor_interval = 0

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        super().set_postfix(ordered_dict, refresh=False, **kwargs)


def _total(iterable: Any, kwargs: dict) -> int | None:
    if kwargs.get("total") is not None:
        return int(kwargs["total"])
    try:
        return len(iterable)
    except TypeError:
        return None


def tqdm(iterable: Any = None, *args: Any, file: TextIO | None = None, **kwargs: Any) -> _tqdm:
    """``tqdm.tqdm``: a live bar on a terminal, a line every few percent otherwise."""
    stream = file if file is not None else sys.stderr
    if kwargs.get("disable") or _is_terminal(stream):
        return _tqdm(iterable, *args, file=stream, **kwargs)
    total = _total(iterable, kwargs)
    start = int(kwargs.get("initial") or 0)
    remaining = max(1, (total or 0) - start)
    kwargs.update(dynamic_ncols=False, ncols=None, ascii=True, maxinterval=float("inf"))
    if total:
        kwargs.update(miniters=max(1, round(remaining * LOG_STEP)), mininterval=0.0)
    else:
        kwargs.update(miniters=1, mininterval=LOG_SECONDS)
    return _LogBar(iterable, *args, file=_Lines(stream), **kwargs)
