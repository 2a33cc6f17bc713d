"""Which code made an output: the git commit, and whether tracked code (not the outputs) changed.

Read by the MLflow tags (``dgnet.tracking``) and the report tables' footers (``dgnet.reports``) alike.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

# What a repro rewrites or an experiment sets: not "dirty code"
NOT_CODE = ("reports", "dvc.lock", "params.yaml")


def git_state(cwd: str | Path = ".") -> tuple[str, bool | None]:
    """``(commit, dirty)``: HEAD's full hash and whether tracked files other than outputs changed.

    ``("unknown", None)`` outside a git work tree.
    """
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                check=True).stdout.strip()
        excludes = [f":(exclude,top){p}" for p in NOT_CODE]
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/", *excludes],
                                 cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
        return commit, bool(changed)
    except (OSError, subprocess.CalledProcessError):
        return "unknown", None


def git_commit(cwd: str | Path = ".") -> str:
    """The short commit, ``-dirty`` when tracked code (not the outputs) changed."""
    commit, dirty = git_state(cwd)
    return commit if commit == "unknown" else commit[:7] + ("-dirty" if dirty else "")
