"""Exceptions shown to the user as one clear line (no traceback) by the CLI.

``dgnet.cli.main`` prints every expected failure as ``dgnet: error: ...`` and
exits 2, Ctrl-C as one ``dgnet: interrupted: ...`` line with exit code 130;
anything else is a bug and keeps its traceback. :func:`user_message` decides
which is which; :func:`dgnet.entry.run_guarded` is the wrapper that prints them.
"""

from __future__ import annotations

import errno

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
