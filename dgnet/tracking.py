"""The one place that talks to MLflow.

    with tracking.start_run(cfg.tracking, "teacher", params=config_to_dict(cfg)) as run:
        run.log_metrics({"loss": 1.2}, step=10)
        run.log_image("reports/figures/samples.png")

Every run is tagged with the git commit and whether the tracked code (not
the pipeline's outputs) was dirty, the DVC stage (when run by DVC, or the name
given) and the configuration name, so ``mlflow ui`` compares stages and
ablations side by side. ``uri: none`` turns tracking off (a no-op run).

Under ``dvc repro`` (or ``dvc exp run``) every stage's run is a child of one
parent run per invocation, named after the DVC experiment when there is one;
the parent's status follows its children. A run stopped by Ctrl-C or SIGTERM
ends KILLED, one stopped by an error FAILED, never left RUNNING.

Several processes may open runs on one fresh SQLite store at once (``dgnet
tune`` workers): the store is created under an exclusive ``flock`` on the
database file, so only one process runs MLflow's schema migration. Every run
names its experiment explicitly (MLflow 3 does not activate an experiment that
another process created during ``set_experiment``: such a run went to
"Default"). An HTTP tracking server that does not answer is one clear error,
not minutes of retries; one that stops answering during a run does not stop
the run: what it logs meanwhile is kept and sent once the server is back
(:class:`Outbox`; docs/shared_servers.md, "When things fail").
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from dgnet import environment
from dgnet.config import TrackingConfig, flatten
from dgnet.errors import Interrupted, UserError
from dgnet.locking import exclusive_lock
from dgnet.provenance import git_state

log = logging.getLogger(__name__)
PARENT_TAG = "dvc_invocation"


def _metric_name(name: str) -> str:
    """Readable MLflow names: each ``/``-separated part keeps letters, digits and ``_ - . :``
    (``"f_prim+f_fine/mAP"`` -> ``"f_prim_f_fine/mAP"``, ``"Baseline (teacher)"`` -> ``"Baseline_teacher"``)."""
    parts = [re.sub(r"[^0-9A-Za-z_\-.:]+", "_", part).strip("_") or "_" for part in name.split("/")]
    return "/".join(parts)


def test_metrics(metrics: dict[str, dict], main: str = "f_prim+f_fine") -> dict[str, float]:
    """``test/mAP``, ``test/rank1`` (the main feature) and ``test/FEATURE/mAP`` ... for MLflow."""
    out = {f"test/{k}": metrics[main][k] for k in ("mAP", "rank1", "mINP") if k in metrics.get(main, {})}
    for feature, m in metrics.items():
        out.update({f"test/{feature}/{k}": m[k] for k in ("mAP", "rank1") if k in m})
    return out


class Run:
    """A thin handle on an active MLflow run (or a no-op when tracking is off).

    With an HTTP tracking server (``uri``), what the run logs while the server does not answer
    (stopped, restarting) is kept in order and sent again once it answers (:class:`Outbox`).
    """

    def __init__(self, mlflow_module: Any | None, run_id: str | None, uri: str | None = None):
        self._mlflow = mlflow_module
        self.run_id = run_id
        self.outbox = Outbox(uri) if mlflow_module is not None and is_http(uri or "") else None

    def _send(self, what: str, call: Any) -> None:
        if self.outbox is None:
            call()
        else:
            self.outbox.send(what, call)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self._mlflow is None:
            return
        finite = {
            _metric_name(k): float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))
        }
        if not finite:
            return
        if self.outbox is None:
            self._mlflow.log_metrics(finite, step=step)
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)  # stamped now: a metric sent again later keeps its time
        batch = [Metric(k, v, now, step or 0) for k, v in finite.items()]
        self._send(f"metrics@{step or 0}",
                   lambda: self._mlflow.MlflowClient().log_batch(self.run_id, metrics=batch))

    def log_params(self, params: dict[str, Any]) -> None:
        if self._mlflow is None:
            return
        flat = flatten(params)
        items = list(flat.items())
        for i in range(0, len(items), 100):  # MLflow caps a batch at 100 params
            chunk = {k: str(v)[:500] for k, v in items[i : i + 100]}
            self._send(f"{len(chunk)} params", lambda chunk=chunk: self._mlflow.log_params(chunk, run_id=self.run_id))

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        if self._mlflow is not None and Path(path).exists():
            self._send(f"artifact {path}", lambda: self._mlflow.MlflowClient().log_artifact(
                self.run_id, str(path), artifact_path=folder))

    def log_image(self, path: str | Path) -> None:
        self.log_artifact(path, folder="images")

    def set_tags(self, tags: dict[str, str]) -> None:
        if self._mlflow is None:
            return
        from mlflow.entities import RunTag

        batch = [RunTag(k, str(v)) for k, v in tags.items()]
        self._send(f"tags {', '.join(tags)}", lambda: self._mlflow.MlflowClient().log_batch(self.run_id, tags=batch))

    # ------------------------------------------------ links between runs, by the model file they share

    def tag_model(self, path: str | Path) -> None:
        """Mark this run as the one that trained ``path`` (its content hash links evaluations to it)."""
        if self._mlflow is not None:
            self.set_tags({"model_path": str(path), "model_md5": file_md5(path)})

    def _model_run(self, path: str | Path) -> str | None:
        client = self._mlflow.MlflowClient()
        experiment = client.get_run(self.run_id).info.experiment_id
        found = client.search_runs([experiment], filter_string=f"tags.model_md5 = '{file_md5(path)}'",
                                   order_by=["attributes.start_time DESC"], max_results=1)
        return found[0].info.run_id if found else None

    def log_to_model_run(self, path: str | Path, metrics: dict[str, float]) -> None:
        """Log ``metrics`` in the run that trained ``path`` too (so it compares on accuracy)."""
        if self._mlflow is None or not Path(path).is_file():
            return
        trained_by = self._model_run(path)
        if trained_by is None or trained_by == self.run_id:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(_metric_name(k), float(v), now, 0) for k, v in metrics.items()
                 if v is not None and math.isfinite(float(v))]
        client = self._mlflow.MlflowClient()
        client.log_batch(trained_by, metrics=batch)
        client.set_tag(trained_by, "evaluated_by_run_id", self.run_id)

    def continue_from(self, path: str | Path) -> None:
        """This run continues the checkpoint ``path``: copy its training run's curves and link it."""
        if self._mlflow is None or not Path(path).is_file():
            return
        source = self._model_run(path)
        if source is None:
            return
        client = self._mlflow.MlflowClient()
        batch = [m for key in client.get_run(source).data.metrics
                 for m in client.get_metric_history(source, key) if m.step and key != "train_seconds"]
        for i in range(0, len(batch), 1000):  # MLflow caps a batch at 1000 metrics
            client.log_batch(self.run_id, metrics=batch[i:i + 1000])
        self.set_tags({"warm_start_run_id": source, "warm_start_checkpoint": str(path)})

    def log_reid_model(self, checkpoint: str | Path, beta: float, registered_name: str) -> None:
        """Log the checkpoint's test-time re-id network as an MLflow model and register it.

        Input: float32 images ``(batch, 3, H, W)`` in ``[0, 1]``; output: the test feature
        (see :mod:`dgnet.toolkit.export`).
        """
        if self._mlflow is None:
            return
        import mlflow.pytorch
        import torch
        from mlflow.models import infer_signature

        from dgnet.toolkit.export import FeatureNetwork, example_images, load_inference_network

        net = FeatureNetwork(load_inference_network(checkpoint, beta))
        example = example_images(net.inference, batch=2).numpy()
        with torch.no_grad():
            output = net(torch.from_numpy(example)).numpy()
        mlflow.pytorch.log_model(net, name="reid_model", signature=infer_signature(example, output),
                                 input_example=example, registered_model_name=registered_name,
                                 pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])


def file_md5(path: str | Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Recorder:
    """A :class:`Run` that also keeps every metric logged with a step (the training curves for ``dvc plots``)."""

    def __init__(self, run: Run):
        self._run = run
        self.run_id = run.run_id
        self.history: dict[int, dict[str, float]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._run, name)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._run.log_metrics(metrics, step=step)
        if step is not None:
            self.history.setdefault(step, {}).update(
                {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))})

    def curve_csv(self) -> str:
        """``step,loss_total,...`` (``/`` in names becomes ``_``), one line per logged step."""
        names = sorted({k for row in self.history.values() for k in row})
        lines = [",".join(["step"] + [n.replace("/", "_") for n in names])]
        for step in sorted(self.history):
            row = self.history[step]
            lines.append(",".join([str(step)] + [repr(row[n]) if n in row else "" for n in names]))
        return "\n".join(lines) + "\n"


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
    with exclusive_lock(path):  # SQLite uses fcntl locks, independent of this flock
        yield


def redact(uri: str) -> str:
    """``uri`` with its password replaced by ``***`` (for error lines and logs)."""
    return re.sub(r"(://[^:@/]*):[^@/]*@", r"\1:***@", uri)


def check_server(uri: str, timeout: float = 5.0) -> None:
    """The tracking store must answer: an ``http(s)://`` server its ``/health`` within ``timeout``
    seconds, a database URL (``postgresql://``, ``mysql://``...) a connection; else one clear error."""
    if uri.lower().startswith(("postgresql", "mysql", "mssql")):
        _check_database(uri, timeout)
    if not is_http(uri):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return  # it answered (a proxy or an older server without /health)
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise UserError(f"tracking.uri {redact(uri)}: the MLflow server does not answer ({reason}); start it, "
                        f"or set tracking.uri to sqlite:///mlflow.db or none") from None


def _check_database(uri: str, timeout: float) -> None:
    import sqlalchemy

    connect_args = {"connect_timeout": max(1, int(timeout))} if uri.startswith(("postgresql", "mysql")) else {}
    try:
        engine = sqlalchemy.create_engine(uri, connect_args=connect_args, poolclass=sqlalchemy.pool.NullPool)
        with engine.connect():
            pass
    except ImportError as err:
        raise UserError(f"tracking.uri {redact(uri)}: {err}") from None
    except sqlalchemy.exc.SQLAlchemyError as err:
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        raise UserError(f"tracking.uri {redact(uri)}: cannot open the tracking database ({reason}); check "
                        "that its server runs, the host, port, user, password and database name") from None


# ---------------------------------------------------------------- a tracking server that stops answering

RETRY_SECONDS = 30.0  # while the server is down, how often a run checks whether it is back
FINISH_WAIT_SECONDS = float(os.environ.get("DGNET_TRACKING_FINISH_WAIT", 120))  # at a run's end


def is_http(uri: str) -> bool:
    return uri.lower().startswith(("http://", "https://"))


def server_unavailable(err: BaseException) -> bool:
    """An error that means the tracking server did not answer (down, restarting, a 5xx after
    MLflow's own retries), not a request it refused."""
    import requests
    from mlflow.exceptions import MlflowException

    if isinstance(err, MlflowException):
        return err.error_code in ("INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE")
    return isinstance(err, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, OSError))


def _answers(uri: str) -> bool:
    try:
        check_server(uri, timeout=2.0)
        return True
    except UserError:
        return False


def _wait_for_server(uri: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    warned = False
    while not _answers(uri) and time.monotonic() < deadline:
        if not warned:
            log.warning("tracking server %s does not answer: waiting up to %.0f s for it", redact(uri), seconds)
            warned = True
        time.sleep(2.0)


class Outbox:
    """The calls a run made while its tracking server did not answer, sent again in order.

    Training never waits on a stopped server for more than MLflow's few retries: a
    call that fails that way is kept, later calls queue behind it, and every
    :data:`RETRY_SECONDS` the server's ``/health`` is asked; once it answers, the
    queue goes out. At the run's end the queue gets up to :data:`FINISH_WAIT_SECONDS`;
    whatever is still unsent then is named in one warning line.
    """

    def __init__(self, uri: str):
        self.uri = uri
        self.pending: list[tuple[str, Any]] = []
        self._last_try = 0.0

    def send(self, what: str, call: Any) -> None:
        if self.pending and not self.flush():
            self.pending.append((what, call))
            return
        try:
            call()
        except Exception as err:
            if not server_unavailable(err):
                raise
            log.warning("tracking server %s does not answer (%s): the run keeps what it logs and sends it "
                        "when the server is back", redact(self.uri), str(err).splitlines()[0][:200])
            self.pending.append((what, call))
            self._last_try = time.monotonic()

    def flush(self, wait: float = 0.0) -> bool:
        """Send what is kept if the server answers (asked at most every RETRY_SECONDS unless
        ``wait``, then polled for up to ``wait`` seconds); True when nothing is left."""
        deadline = time.monotonic() + wait
        if not self.pending:
            return True
        if not wait and time.monotonic() - self._last_try < RETRY_SECONDS:
            return False
        while self.pending:
            self._last_try = time.monotonic()
            if _answers(self.uri):
                try:
                    while self.pending:
                        self.pending[0][1]()
                        self.pending.pop(0)
                    break
                except Exception as err:
                    if not server_unavailable(err):
                        raise
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
        log.info("tracking server %s answers again: the kept calls were sent", redact(self.uri))
        return True

    def describe(self) -> str:
        """What is kept, in a few words: ``metrics of steps 4-6 (2 batches); tags optuna.state``."""
        steps = [int(what.split("@")[1]) for what, _ in self.pending if what.startswith("metrics@")]
        others = [what for what, _ in self.pending if not what.startswith("metrics@")]
        parts = [f"metrics of steps {min(steps)}-{max(steps)} ({len(steps)} batches)"] if steps else []
        return "; ".join(parts + others)


def _end_run(mlflow: Any, run: Run, status: str) -> None:
    """End the active run with ``status``; with a server that is down, after waiting for it."""
    if run.outbox is None:
        mlflow.end_run(status)
        return
    sent = run.outbox.flush(wait=FINISH_WAIT_SECONDS)
    try:
        mlflow.end_run(status)  # (it drops the run from MLflow's active ones before it calls the server)
    except Exception as err:
        if not server_unavailable(err):
            raise
        sent = False
    if run.outbox.pending or not sent:
        lost = run.outbox.describe() or "only its end"
        log.warning("tracking server %s did not answer within %.0f s at the end of run %s: it stays RUNNING "
                    "there, and these were not recorded: %s",
                    redact(run.outbox.uri), FINISH_WAIT_SECONDS, run.run_id, lost)


def end_abandoned_runs(cfg: TrackingConfig, run_ids: list[str]) -> list[str]:
    """End KILLED each of ``run_ids`` still RUNNING, and its parent run when that is RUNNING too:
    runs of a process killed outright (SIGKILL, a lost machine), which never ended them.
    Returns the runs ended."""
    if cfg.uri.lower() == "none" or not run_ids:
        return []
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=cfg.uri)
    ended: list[str] = []
    try:
        for run_id in run_ids:
            run = client.get_run(run_id)
            if run.info.status != "RUNNING":
                continue
            for rid in (run_id, run.data.tags.get("mlflow.parentRunId")):
                if rid and rid not in ended and client.get_run(rid).info.status == "RUNNING":
                    client.set_tag(rid, "killed_reason", "its process was killed before it ended the run")
                    client.set_terminated(rid, "KILLED")
                    ended.append(rid)
    except Exception as err:
        if not server_unavailable(err):
            raise
        log.warning("tracking server %s does not answer: runs left RUNNING by killed workers stay so for now "
                    "(the next worker to finish ends them)", redact(cfg.uri))
    if ended:
        log.warning("tracking: ended KILLED the runs left RUNNING by killed workers: %s", ", ".join(ended))
    return ended


class Terminated(Interrupted):
    """SIGTERM during a run: ends it KILLED, as Ctrl-C does."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated("stopped by SIGTERM")


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while a run is open (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def dvc_invocation() -> tuple[str, str] | None:
    """``(key, name)`` of the ``dvc repro`` / ``dvc exp run`` process running this stage, None outside DVC.

    The key (host, pid and start time of the dvc process) is the same for every
    stage of one invocation and differs between invocations.
    """
    if "DVC_STAGE" not in os.environ:
        return None
    pid = os.getppid()
    for _ in range(8):
        try:
            args = [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        if any(Path(a).name == "dvc" for a in args[:2]) or args[1:3] == ["-m", "dvc"]:
            started = stat.rsplit(")", 1)[1].split()[19]
            command = " ".join(a for a in args if Path(a).name not in ("dvc",) and not a.startswith("/"))[:60]
            exp = os.environ.get("DVC_EXP_NAME")
            name = f"dvc exp {exp}" if exp else f"dvc {command} {time.strftime('%Y-%m-%d %H:%M')}"
            return f"{socket.gethostname()}:{pid}:{started}", name
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # its parent
        if pid <= 1:
            return None
    return None


def _parent_run(client: Any, experiment_id: str, invocation: tuple[str, str], tags: dict[str, str]) -> str:
    """The parent run of this DVC invocation (created by its first stage)."""
    key, name = invocation
    found = client.search_runs([experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{key}'", max_results=1)
    if found:
        return found[0].info.run_id
    exp = os.environ.get("DVC_EXP_NAME")
    parent_tags = {PARENT_TAG: key, **{k: tags[k] for k in ("git_commit", "git_dirty", "config") if k in tags}}
    if exp:
        parent_tags["dvc_experiment"] = exp
    return client.create_run(experiment_id, run_name=name, tags=parent_tags).info.run_id


def _run_tags(run_name: str, params: dict[str, Any] | None, tags: dict[str, str] | None) -> dict[str, str]:
    commit, dirty = git_state()
    out = {"git_commit": commit, "git_dirty": "unknown" if dirty is None else str(dirty).lower(),
           "stage": os.environ.get("DVC_STAGE", run_name)}
    if commit != "unknown":
        out["mlflow.source.git.commit"] = commit
    if params and "name" in params:
        out["config"] = str(params["name"])
    return {**out, **(tags or {})}


@contextmanager
def start_run(
    cfg: TrackingConfig,
    run_name: str,
    params: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    nested: bool = False,
) -> Iterator[Run]:
    """Open an MLflow run in ``cfg.experiment`` at ``cfg.uri``; close it FINISHED, FAILED or KILLED.

    Under DVC the run is a child of the invocation's parent run (see :func:`dvc_invocation`).
    """
    if cfg.uri.lower() == "none":
        yield Run(None, None)
        return
    import mlflow

    logging.getLogger("alembic").setLevel(logging.WARNING)
    if nested and is_http(cfg.uri):  # a run inside a live one (a trial): its server answered; give it time
        _wait_for_server(cfg.uri, FINISH_WAIT_SECONDS)
    check_server(cfg.uri)
    if is_http(cfg.uri):  # a stopped server costs a few seconds per call, not MLflow's minutes (see Outbox)
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    mlflow.set_tracking_uri(cfg.uri)
    env = environment.describe()
    all_tags = {**_run_tags(run_name, params, tags), **environment.tags(env)}
    parent = None
    with store_lock(cfg.uri):
        experiment = mlflow.set_experiment(cfg.experiment)
        client = mlflow.MlflowClient()  # opening a store migrates its schema: under the lock
        invocation = None if nested else dvc_invocation()
        if invocation is not None:
            parent = _parent_run(client, experiment.experiment_id, invocation, all_tags)
            client.update_run(parent, status="RUNNING")
            all_tags["mlflow.parentRunId"] = parent
    status = "FINISHED"
    with _sigterm_as_interrupt():
        # the experiment named explicitly: when another process creates it at the same moment (tuning
        # workers on one tracking server), mlflow.set_experiment returns it without making it active
        active = mlflow.start_run(run_name=run_name, nested=nested, tags=all_tags,
                                  experiment_id=experiment.experiment_id)
        run = Run(mlflow, active.info.run_id, cfg.uri)
        try:
            mlflow.log_dict(env, "environment.json")
            if params:
                run.log_params(params)
            yield run
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        except BaseException:
            status = "FAILED"
            raise
        finally:
            _end_run(mlflow, run, status)
            if parent is not None:
                client.set_terminated(parent, status)
