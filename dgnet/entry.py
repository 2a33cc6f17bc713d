"""How every entry point (the ``dgnet`` command, each DVC stage script) runs and ends: :func:`run_guarded`."""

from __future__ import annotations

import os
import sys
from typing import Callable

from dgnet import stage_seconds
from dgnet.errors import user_message

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
