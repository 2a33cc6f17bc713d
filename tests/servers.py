"""Throwaway servers for tests: a PostgreSQL cluster and an ``mlflow server``, on free local ports.

    with servers.postgres() as pg:            # pg.url("optuna") -> postgresql+psycopg2://...
        with servers.mlflow_server(tmp_path / "mlflow", pg.url("mlflow")) as server:   # server.uri: http://...
            ...

The PostgreSQL binaries come from the system packages (``apt-get install
postgresql``: ``.ci/run`` installs them); the cluster is created with
``initdb`` in a temporary folder and runs as the ``postgres`` user when the
tests run as root (PostgreSQL refuses root). Every wait is a condition with a
deadline. When a server cannot be started, :class:`Unavailable` says why (the
test skips with that reason).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

DB_USER = "dgnet"


class Unavailable(Exception):
    """A server could not be started here; the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(ready: Callable[[], bool], proc: subprocess.Popen, what: str, log: Path, seconds: float) -> None:
    """Poll ``ready`` until it holds; :class:`Unavailable` if ``proc`` exits or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while not ready():
        if proc.poll() is not None:
            raise Unavailable(f"{what} exited with code {proc.returncode}: {_tail(log)}")
        if time.monotonic() > deadline:
            raise Unavailable(f"{what} did not answer within {seconds:.0f} s: {_tail(log)}")
        time.sleep(0.1)


def _tail(log: Path, lines: int = 3) -> str:
    text = log.read_text(errors="replace").strip() if log.exists() else ""
    return " | ".join(text.splitlines()[-lines:]) or "no output"


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, seconds: float = 5) -> None:
    """Stop a server started in its own process group (its children too)."""
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(seconds)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# ---------------------------------------------------------------- PostgreSQL


def postgres_bindir() -> Path | None:
    """The folder of ``initdb`` and ``postgres``: on PATH, else Debian's newest /usr/lib/postgresql/N/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


def _server_user() -> pwd.struct_passwd | None:
    """Whom the server runs as: ``postgres`` (made by the system package) when we are root, else us."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise Unavailable("running as root and there is no 'postgres' user to run the server "
                          "(apt-get install postgresql makes it)") from None


def _can_connect(port: int) -> bool:
    import psycopg2

    try:
        psycopg2.connect(host="127.0.0.1", port=port, user=DB_USER, dbname="postgres", connect_timeout=2).close()
        return True
    except psycopg2.OperationalError:
        return False


@dataclass
class Postgres:
    port: int

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://{DB_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=DB_USER, dbname="postgres")
        conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
        try:
            conn.cursor().execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()


@contextmanager
def postgres(seconds: float = 30) -> Iterator[Postgres]:
    """A fresh cluster in a temporary folder (trust authentication, 127.0.0.1 only), removed on exit.

    The folder is made directly under the system's temporary folder: as root, the
    server runs as ``postgres``, which cannot enter pytest's private tmp folders.
    """
    bindir = postgres_bindir()
    if bindir is None:
        raise Unavailable("no PostgreSQL server binaries (initdb); apt-get install postgresql (.ci/run does)")
    user = _server_user()
    folder = Path(tempfile.mkdtemp(prefix="dgnet-postgres-"))
    try:
        if user is not None:
            os.chown(folder, user.pw_uid, user.pw_gid)
        yield from _run_postgres(bindir, folder, user, seconds)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run_postgres(bindir: Path, folder: Path, user: pwd.struct_passwd | None, seconds: float) -> Iterator[Postgres]:
    as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
    log = folder / "server.log"
    data = folder / "data"
    init = subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", DB_USER, "-A", "trust", "-E", "UTF8",
                           "--no-sync"], capture_output=True, text=True, cwd=folder, **as_user)
    if init.returncode != 0:
        raise Unavailable(f"initdb failed: {(init.stderr or init.stdout).strip()[-300:]}")
    port = free_port()
    with open(log, "w") as out:
        if user is not None:
            os.chown(log, user.pw_uid, user.pw_gid)
        proc = subprocess.Popen(
            [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(folder),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=50"],
            stdout=out, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True, **as_user)
    try:
        wait_for(lambda: _can_connect(port), proc, "postgres", log, seconds)
        yield Postgres(port)
    finally:
        _stop(proc, signal.SIGINT)  # SIGINT: PostgreSQL's fast shutdown


# ---------------------------------------------------------------- MLflow tracking server


def _healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class MlflowServer:
    """``mlflow server`` on a fixed free port of 127.0.0.1; :meth:`stop` and :meth:`start` again
    keep its port and stores (a restart, as a lab's server has)."""

    def __init__(self, folder: Path, backend_store: str, seconds: float = 60):
        self.folder, self.backend_store, self.seconds = folder, backend_store, seconds
        self.uri = f"http://127.0.0.1:{free_port()}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = self.folder / "server.log"
        with open(log, "a") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.backend_store,
                 "--artifacts-destination", str(self.folder / "artifacts"), "--host", "127.0.0.1",
                 "--port", self.uri.rsplit(":", 1)[1], "--workers", "1"],
                stdout=out, stderr=subprocess.STDOUT, cwd=self.folder, start_new_session=True)
        wait_for(lambda: _healthy(self.uri), self.proc, "mlflow server", log, self.seconds)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc, seconds=3)  # a throwaway server: no need to wait on its clients' idle connections
            self.proc = None


@contextmanager
def mlflow_server(folder: Path, backend_store: str, seconds: float = 60) -> Iterator[MlflowServer]:
    """``mlflow server`` with ``backend_store``, artifacts under ``folder``; yields it (``.uri``,
    ``http://127.0.0.1:PORT``) once ``/health`` answers."""
    server = MlflowServer(folder, backend_store, seconds)
    try:
        server.start()
        yield server
    finally:
        server.stop()
