"""Shared tuning and tracking through real servers (docs/shared_servers.md): two ``dgnet tune``
processes, as two machines of a lab would, run one Optuna study in PostgreSQL and log to one
``mlflow server`` over HTTP. The servers come from tests/servers.py (PostgreSQL from the system
packages, which .ci/run installs); where one cannot start, the test is skipped with the reason."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
import yaml

import servers
from dgnet import cli
from dgnet.config import config_to_dict, replace

ROOT = Path(__file__).resolve().parent.parent
from experiments.outputs import best_params
from experiments.storage import open_study

pytestmark = pytest.mark.slow
STUDY = "alpha-beta-micro"
EXPERIMENT = "shared-servers"


@pytest.fixture(scope="module")
def lab_servers(tmp_path_factory):
    """``(PostgreSQL, mlflow server)``: a cluster with the databases ``optuna`` and ``mlflow``, and a
    tracking server whose backend store is the latter (it can be stopped and started again)."""
    try:
        with servers.postgres() as pg:
            pg.create_database("optuna")
            pg.create_database("mlflow")
            with servers.mlflow_server(tmp_path_factory.mktemp("mlflow"), pg.url("mlflow")) as tracking_server:
                yield pg, tracking_server
    except servers.Unavailable as err:
        pytest.skip(f"cannot start the servers on this machine: {err}")


@pytest.fixture(scope="module")
def lab(lab_servers):
    """``(study storage URL, tracking URI)``."""
    pg, tracking_server = lab_servers
    return pg.url("optuna"), tracking_server.uri


def _dgnet(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "dgnet.cli", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _finish(procs: list[subprocess.Popen]) -> list[str]:
    outs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    return outs


def test_two_workers_share_a_postgresql_study_and_a_tracking_server(lab, micro_cfg, tmp_path):
    storage, uri = lab
    cfg = replace(micro_cfg, **{"tracking.uri": uri, "tracking.experiment": EXPERIMENT})
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(config_to_dict(cfg)))
    trials_each = 2

    # two machines: each its own work folder (teacher, warm-up) and outputs; the study and runs shared
    workers = [_dgnet("tune", "alpha-beta", "--trials", str(trials_each), "--storage", storage,
                      "--params", str(params), "--report-every", "2", "--pruner-startup", "1", "--quiet",
                      "--work-dir", f"m{i}/models", "--reports-dir", f"m{i}/reports", "--figures-dir", f"m{i}/figures",
                      cwd=tmp_path) for i in (0, 1)]
    _finish(workers)

    # every trial counted once, half by each worker, none left running or failed
    study = optuna.load_study(study_name=STUDY, storage=storage)
    trials = study.trials
    n = 2 * trials_each
    assert sorted(t.number for t in trials) == list(range(n))
    assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    by_worker: dict[str, list[int]] = {}
    for t in trials:
        by_worker.setdefault(t.user_attrs["worker"], []).append(t.number)
    assert sorted(len(v) for v in by_worker.values()) == [trials_each, trials_each]

    # MLflow: one parent per worker process, one child per trial in its worker's parent
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`optuna.study` = '{STUDY}'")
    parents = {r.info.run_id: r for r in runs if r.info.run_name == f"tune/{STUDY}"}
    children = [r for r in runs if r.info.run_name.startswith(f"{STUDY}/trial-")]
    assert len(parents) == 2 and len(children) == n, [r.info.run_name for r in runs]
    assert {p.data.tags["tuning.worker"] for p in parents.values()} == set(by_worker)
    assert all(r.info.status == "FINISHED" for r in runs)
    by_number = {int(r.data.tags["optuna.trial"]): r for r in children}
    assert sorted(by_number) == list(range(n))
    for t in trials:
        run = by_number[t.number]
        assert run.info.run_id == t.user_attrs["mlflow_run_id"]
        assert run.data.tags["optuna.state"] == t.state.name
        assert parents[run.data.tags["mlflow.parentRunId"]].data.tags["tuning.worker"] == t.user_attrs["worker"]
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "val/mAP"))
        assert steps == sorted(t.intermediate_values)
        assert float(run.data.params["optuna.alpha"]) == pytest.approx(t.params["alpha"])
    last = max(parents.values(), key=lambda r: r.info.end_time)  # the last worker saw every trial over
    assert last.data.metrics["best_value"] == pytest.approx(study.best_value)
    assert sum(v for k, v in last.data.metrics.items() if k.startswith("trials_")) == n
    assert client.list_artifacts(last.info.run_id, "tuning"), "artifacts through the server"

    # the best parameters: the same in the last worker's own file and read again by the first one's machine
    order = sorted(parents.values(), key=lambda r: r.info.end_time)
    machine = {f"{socket.gethostname()}:{w.pid}": i for i, w in enumerate(workers)}
    first, last = (machine[r.data.tags["tuning.worker"]] for r in order)
    assert cli.main(["tune", "report", "--study", STUDY, "--storage", storage, "--reports-dir",
                     str(tmp_path / f"m{first}/reports"), "--figures-dir", str(tmp_path / f"m{first}/figures")]) == 0
    best = [yaml.safe_load((tmp_path / f"m{i}/reports/{STUDY}_best_params.yaml").read_text()) for i in (first, last)]
    assert best[0] == best[1] == best_params(study)[0]
    assert best[0]["train"]["alpha"] == pytest.approx(study.best_params["alpha"], abs=1e-4)


def test_an_unreachable_storage_is_one_line_without_the_password(capsys):
    url = f"postgresql+psycopg2://dgnet:secret@127.0.0.1:{servers.free_port()}/optuna"  # nobody listens there
    assert cli.main(["tune", "report", "--study", STUDY, "--storage", url]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dgnet: error: --storage postgresql+psycopg2://dgnet:***@127.0.0.1:")
    assert "cannot open the study storage" in err and "secret" not in err and len(err.splitlines()) == 1


def test_a_run_goes_to_its_experiment_when_another_process_created_it_meanwhile(micro_cfg, monkeypatch):
    """The race the shared test met: MLflow's set_experiment, when the experiment appeared between its
    lookup and its create, returns it without making it active; a run must still land in it."""
    import mlflow

    from dgnet import tracking

    def created_by_another_process(name):
        client = mlflow.MlflowClient()
        if client.get_experiment_by_name(name) is None:
            client.create_experiment(name)
        return client.get_experiment_by_name(name)  # not made active, as on MLflow's race path

    monkeypatch.setattr(mlflow, "set_experiment", created_by_another_process)
    name = f"race-{os.getpid()}"
    with tracking.start_run(replace(micro_cfg.tracking, experiment=name), "tune/x") as run:
        pass
    experiment = mlflow.MlflowClient().get_experiment_by_name(name)
    assert mlflow.MlflowClient().get_run(run.run_id).info.experiment_id == experiment.experiment_id



def test_a_worker_opens_the_study_when_another_created_its_tables_meanwhile(lab_servers):
    """The two-worker race, forced: a worker has checked that the study's tables are missing when
    another creates and commits them, so its own CREATE meets them (PostgreSQL: DuplicateTable or
    DuplicateObject, a ProgrammingError); it must open the study all the same."""
    import sqlalchemy

    pg, _ = lab_servers
    pg.create_database("race")
    url = pg.url("race")
    fired = []

    def other_worker_first(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("CREATE") and not fired:
            fired.append(statement.split("(")[0].strip())
            optuna.storages.RDBStorage(url)  # the other worker, on its own connection: creates and commits

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", other_worker_first)
    try:
        study = open_study("race", url)
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", other_worker_first)
    assert fired, "the interleaving did not happen"
    assert study.study_name == "race" and optuna.load_study(study_name="race", storage=url).trials == []

# ---------------------------------------------------------------- when things fail (docs/shared_servers.md)


def _wait_until(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while not (found := condition()):
        assert time.monotonic() < deadline, f"no {what} within {seconds:.0f} s"
        time.sleep(0.2)
    return found


HEARTBEAT = 2  # seconds: a trial silent for three is stale


def test_a_worker_killed_mid_trial_loses_no_finished_trial(lab, micro_cfg, tmp_path):
    """A real SIGKILL while a trial trains: its trial is failed by the heartbeat and retried once with
    the same parameters, the other worker goes on, the machine's worker started again resumes the
    study, and every finished trial is in the study and in MLflow once, with its curve."""
    from mlflow import MlflowClient
    from optuna.trial import TrialState

    storage, uri = lab
    name = "killed-worker"
    cfg = replace(micro_cfg, **{"tracking.uri": uri, "tracking.experiment": name})
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(config_to_dict(cfg)))

    def worker(machine: int, trials: int) -> subprocess.Popen:
        return _dgnet("tune", "alpha-beta", "--study", name, "--trials", str(trials), "--storage", storage,
                      "--params", str(params), "--report-every", "2", "--pruner", "none", "--quiet",
                      "--heartbeat", str(HEARTBEAT), "--work-dir", f"m{machine}/models", "--reports-dir", f"m{machine}/reports",
                      "--figures-dir", f"m{machine}/figures", cwd=tmp_path)

    victim, other = worker(0, 5), worker(1, 2)  # five: room to catch one of its trials mid-training
    tag = f"{socket.gethostname()}:{victim.pid}"

    client = MlflowClient(tracking_uri=uri)

    def victim_trial(skip: set[int]) -> int | None:  # a trial of the first worker that logged a loss
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            return None
        for run in client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'"):
            number = run.data.tags.get("optuna.trial")
            if (number is not None and int(number) not in skip and "loss/total" in run.data.metrics
                    and client.get_run(run.data.tags["mlflow.parentRunId"]).data.tags["tuning.worker"] == tag):
                return int(number)
        return None

    seen: set[int] = set()
    while True:
        number = _wait_until(lambda: victim_trial(seen), 240, "trial training in the first worker")
        os.kill(victim.pid, signal.SIGSTOP)  # frozen where it is while we look
        killed = {t.number: t for t in optuna.load_study(study_name=name, storage=storage).trials}[number]
        if killed.state == TrialState.RUNNING:
            break
        seen.add(number)  # it finished meanwhile: catch its next one
        os.kill(victim.pid, signal.SIGCONT)
    victim.kill()  # SIGKILL: no handler runs, nothing is closed
    victim.wait()
    time.sleep(3 * HEARTBEAT)  # its trial goes stale: the next trial any worker starts fails and retries it
    restarted = worker(0, 2)  # the same machine's worker, started again
    _finish([other, restarted])

    study = optuna.load_study(study_name=name, storage=storage)
    assert study.trials[killed.number].state == TrialState.FAIL
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params and retries[0].state == TrialState.COMPLETE
    finished = [t for t in study.trials if t.state == TrialState.COMPLETE]
    by_worker = Counter(t.user_attrs["worker"] for t in finished)
    host = socket.gethostname()
    assert by_worker[f"{host}:{other.pid}"] == by_worker[f"{host}:{restarted.pid}"] == 2
    assert len(study.trials) == len(finished) + 1  # the first worker's finished ones, the others' and the killed one

    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id])
    trial_runs = [r for r in runs if "optuna.trial" in r.data.tags and r.info.status == "FINISHED"]
    assert sorted(int(r.data.tags["optuna.trial"]) for r in trial_runs) == sorted(t.number for t in finished)
    for t in finished:
        run = client.get_run(t.user_attrs["mlflow_run_id"])
        assert run.info.status == "FINISHED" and run.data.tags["optuna.state"] == "COMPLETE"
        history = client.get_metric_history(run.info.run_id, "val/mAP")
        assert {m.step: m.value for m in history} == pytest.approx(t.intermediate_values)
    # what the killed worker left RUNNING, ended by a worker that found its trial failed
    dead = client.get_run(killed.user_attrs["mlflow_run_id"])
    assert dead.info.status == "KILLED"
    assert client.get_run(dead.data.tags["mlflow.parentRunId"]).info.status == "KILLED"
    assert not [r.info.run_name for r in runs if client.get_run(r.info.run_id).info.status == "RUNNING"]


def test_a_tracking_server_restarted_during_training_gets_every_metric(lab_servers, micro_cfg, tmp_path,
                                                                       monkeypatch, caplog):
    """A real stop and start of the server in the middle of a training: the training goes on, what
    it logged meanwhile is sent once the server is back, and the run ends FINISHED."""
    from mlflow import MlflowClient

    from dgnet import tracking
    from dgnet.data.loading import load_training_set
    from dgnet.models import build_teacher
    from dgnet.train.loop import train_dgnet

    _, server = lab_servers
    monkeypatch.setattr(tracking, "RETRY_SECONDS", 0.0)  # ask the server at every call (30 s in real runs)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    cfg = replace(micro_cfg, **{"tracking.uri": server.uri, "tracking.experiment": "restart"})
    data = load_training_set(cfg.data, progress=False)
    teacher = build_teacher(cfg.model, data.num_classes)
    down_at, up_at = 2, 4  # metrics are logged at iterations 2, 4 and 6: the one of 4 while it is down

    def restart(nets, iteration):
        if iteration == down_at:
            server.stop()
        elif iteration == up_at:
            server.start()

    with caplog.at_level(logging.WARNING, logger="dgnet.tracking"):
        with tracking.start_run(cfg.tracking, "restarted") as run:
            train_dgnet(cfg, data.images, data.labels, data.num_classes, teacher, tmp_path / "out", run,
                        progress=False, iteration_hook=restart)
    client = MlflowClient(tracking_uri=server.uri)
    assert client.get_run(run.run_id).info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run.run_id, "loss/total")]
    assert sorted(steps) == [2, 4, 6]
    assert any("does not answer" in r.getMessage() for r in caplog.records)


def test_an_unreachable_tracking_database_is_one_line_without_the_password(micro_cfg, tmp_path):
    """Every command that tracks opens its run through tracking.start_run: a tracking URI whose
    database does not answer is one line naming it, password hidden, and exit 2."""
    url = f"postgresql+psycopg2://dgnet:secret@127.0.0.1:{servers.free_port()}/mlflow"
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(config_to_dict(replace(micro_cfg, **{"tracking.uri": url}))))
    proc = subprocess.run([sys.executable, "-m", "dgnet.cli", "train-teacher", "--params", str(params), "--quiet",
                           "--out", str(tmp_path / "t.pt"), "--metrics", str(tmp_path / "t.json")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    err = proc.stderr.strip()
    assert proc.returncode == 2, err[-2000:]
    assert err.startswith("dgnet: error: tracking.uri postgresql+psycopg2://dgnet:***@127.0.0.1:")
    assert "cannot open the tracking database" in err and "secret" not in err and len(err.splitlines()) == 1


def test_a_study_command_with_an_unreachable_storage_is_one_line(micro_cfg, tmp_path, capsys):
    url = f"postgresql+psycopg2://dgnet:secret@127.0.0.1:{servers.free_port()}/optuna"
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(config_to_dict(micro_cfg)))
    assert cli.main(["tune", "schedule", "--trials", "1", "--storage", url, "--params", str(params), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dgnet: error: --storage postgresql+psycopg2://dgnet:***@127.0.0.1:")
    assert "secret" not in err and len(err.splitlines()) == 1
