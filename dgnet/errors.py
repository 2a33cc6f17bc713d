"""Exceptions shown to the user as one clear line (no traceback) by the CLI.

``dgnet.cli.main`` prints every expected failure as ``dgnet: error: ...`` and
exits 2, Ctrl-C as one ``dgnet: interrupted: ...`` line with exit code 130;
anything else is a bug and keeps its traceback. :func:`user_message` decides
which is which.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Callable

# errno values that mean "the output cannot be written": bad input, not a bug
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR,
                errno.EISDIR, errno.EFBIG}


class UserError(RuntimeError):
    """Bad input: a missing file, a malformed data-set tree, a missing weights file."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with one sentence saying what was kept (the CLI prints it and exits 130)."""


class DivergenceError(RuntimeError):
    """A loss became NaN or infinite."""


def os_error_message(err: OSError) -> str:
    """One line for an OSError that means an output could not be written."""
    where = f"{err.filename}: " if err.filename else ""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{where}no space left on the device; free some space and run the command again"
    return f"{where}cannot write here ({err.strerror}); choose another output path or fix its permissions"


def user_message(err: BaseException) -> str | None:
    """The one-line message of an expected failure, or None for a bug (keep the traceback)."""
    from dgnet.config import ConfigError

    if isinstance(err, (UserError, ConfigError, DivergenceError)):
        return str(err)
    if isinstance(err, OSError) and err.errno in WRITE_ERRNOS:
        return os_error_message(err)
    return None


PEAK_GPU_ENV = "DGNET_PEAK_GPU_MEMORY_FILE"  # set by `dgnet rehearse`: each stage appends its peak GPU MB


def _record_peak_gpu_memory() -> None:
    path = os.environ.get(PEAK_GPU_ENV)
    torch = sys.modules.get("torch")
    if path and torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        with open(path, "a") as f:
            f.write(f"{torch.cuda.max_memory_allocated() / 2**20:.1f}\n")


def run_guarded(main: Callable[[], int | None]) -> int:
    """Call ``main()`` the way every entry point should: an expected failure prints one
    ``dgnet: error:`` line and returns 2, Ctrl-C one ``dgnet: interrupted:`` line and 130;
    a bug keeps its traceback."""
    try:
        code = int(main() or 0)
        if code == 0:
            from dgnet import stage_seconds

            stage_seconds.record()  # under DVC: this stage's wall seconds, for the timings stage
        return code
    except KeyboardInterrupt as err:
        kept = str(err) or "every output is written atomically, so each file is complete or untouched"
        print(f"dgnet: interrupted: {kept}", file=sys.stderr)
        return 130
    except Exception as err:
        message = user_message(err)
        if message is None:
            raise
        print(f"dgnet: error: {' '.join(message.split())}", file=sys.stderr)
        return 2
    finally:
        _record_peak_gpu_memory()
