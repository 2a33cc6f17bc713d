"""The one place that talks to MLflow.

    with tracking.start_run(cfg.tracking, "teacher", params=config_to_dict(cfg)) as run:
        run.log_metrics({"loss": 1.2}, step=10)
        run.log_image("reports/figures/samples.png")

Every run is tagged with the git commit, the DVC stage (when run by DVC, or
the name given) and the configuration name, so ``mlflow ui`` compares stages
and ablations side by side. ``uri: none`` turns tracking off (a no-op run).

Several processes may open runs on one fresh SQLite store at once (``dgnet
tune`` workers): the store is created under an exclusive ``flock`` on the
database file, so only one process runs MLflow's schema migration. An HTTP
tracking server that does not answer is one clear error, not minutes of retries.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import re
import subprocess
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from dgnet.config import TrackingConfig, flatten
from dgnet.errors import UserError

log = logging.getLogger(__name__)


def git_commit(cwd: str | Path = ".") -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _metric_name(name: str) -> str:
    """MLflow allows only alphanumerics and ``_ - . / : `` and spaces in metric names."""
    return re.sub(r"[^0-9A-Za-z_\-./: ]", "_", name)


class Run:
    """A thin handle on an active MLflow run (or a no-op when tracking is off)."""

    def __init__(self, mlflow_module: Any | None, run_id: str | None):
        self._mlflow = mlflow_module
        self.run_id = run_id

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self._mlflow is None:
            return
        finite = {
            _metric_name(k): float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))
        }
        if finite:
            self._mlflow.log_metrics(finite, step=step)

    def log_params(self, params: dict[str, Any]) -> None:
        if self._mlflow is None:
            return
        flat = flatten(params)
        items = list(flat.items())
        for i in range(0, len(items), 100):  # MLflow caps a batch at 100 params
            self._mlflow.log_params({k: str(v)[:500] for k, v in items[i : i + 100]})

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        if self._mlflow is not None and Path(path).exists():
            self._mlflow.log_artifact(str(path), artifact_path=folder)

    def log_image(self, path: str | Path) -> None:
        self.log_artifact(path, folder="images")

    def set_tags(self, tags: dict[str, str]) -> None:
        if self._mlflow is not None:
            self._mlflow.set_tags(tags)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` URI (None for other stores and in-memory SQLite)."""
    if not uri.startswith("sqlite:///") or uri.endswith(":memory:"):
        return None
    return Path(uri[len("sqlite:///"):].split("?", 1)[0])


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock on a SQLite store's file (created empty if missing) while
    MLflow creates or migrates its schema; other stores need no lock."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # SQLite uses fcntl locks, independent of flock
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def check_server(uri: str, timeout: float = 5.0) -> None:
    """An ``http(s)://`` tracking server must answer ``/health`` within ``timeout`` seconds."""
    if not uri.lower().startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return  # it answered (a proxy or an older server without /health)
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise UserError(f"tracking.uri {uri}: the MLflow server does not answer ({reason}); start it, "
                        f"or set tracking.uri to sqlite:///mlflow.db or none") from None


@contextmanager
def start_run(
    cfg: TrackingConfig,
    run_name: str,
    params: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    nested: bool = False,
) -> Iterator[Run]:
    """Open an MLflow run in ``cfg.experiment`` at ``cfg.uri``; close it (FAILED on error)."""
    if cfg.uri.lower() == "none":
        yield Run(None, None)
        return
    import mlflow

    logging.getLogger("alembic").setLevel(logging.WARNING)
    check_server(cfg.uri)
    mlflow.set_tracking_uri(cfg.uri)
    with store_lock(cfg.uri):
        mlflow.set_experiment(cfg.experiment)
    all_tags = {
        "git_commit": git_commit(),
        "stage": os.environ.get("DVC_STAGE", run_name),
        **(tags or {}),
    }
    with mlflow.start_run(run_name=run_name, nested=nested, tags=all_tags) as active:
        run = Run(mlflow, active.info.run_id)
        if params:
            run.log_params(params)
        yield run
