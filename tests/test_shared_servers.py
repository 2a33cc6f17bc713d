"""Shared tuning and tracking through real servers (docs/shared_servers.md): two ``dgnet tune``
processes, as two machines of a lab would, run one Optuna study in PostgreSQL and log to one
``mlflow server`` over HTTP. The servers come from tests/servers.py (PostgreSQL from the system
packages, which .ci/run installs); where one cannot start, the test is skipped with the reason."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

import servers
from dgnet import cli
from dgnet.config import config_to_dict, replace

ROOT = Path(__file__).resolve().parent.parent
from experiments.outputs import best_params

pytestmark = pytest.mark.slow
STUDY = "alpha-beta-micro"
EXPERIMENT = "shared-servers"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """``(study storage URL, tracking URI)``: a PostgreSQL cluster with the databases ``optuna`` and
    ``mlflow``, and an ``mlflow server`` whose backend store is the latter."""
    try:
        with servers.postgres() as pg:
            pg.create_database("optuna")
            pg.create_database("mlflow")
            with servers.mlflow_server(tmp_path_factory.mktemp("mlflow"), pg.url("mlflow")) as uri:
                yield pg.url("optuna"), uri
    except servers.Unavailable as err:
        pytest.skip(f"cannot start the servers on this machine: {err}")


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
