"""Exceptions shown to the user as one clear line (no traceback) by the CLI."""


class UserError(RuntimeError):
    """Bad input: a missing file, a malformed data-set tree, a missing weights file."""
