"""MLflow runs: honest git tags, KILLED after SIGTERM, readable names, model links.

The parent run per DVC invocation is checked on a real ``dvc repro`` in test_pipeline_micro.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from dgnet import provenance, tracking
from dgnet.config import TrackingConfig

ROOT = Path(__file__).resolve().parent.parent

STAGE = """
import sys, time
from dgnet import tracking
from dgnet.config import TrackingConfig
cfg = TrackingConfig(uri=sys.argv[1], experiment="e")
with tracking.start_run(cfg, sys.argv[2], params={"name": "micro"}) as run:
    run.log_metrics({"x": 1.0})
    if sys.argv[2] == "slow":
        print("started", flush=True)
        time.sleep(60)
"""

def _env() -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DVC_STAGE", None)
    return env


def _runs(uri: str) -> list:
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("e")
    return client.search_runs([experiment.experiment_id])


def test_sigterm_ends_the_run_killed_not_running(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "stage.py").write_text(STAGE)
    proc = subprocess.Popen([sys.executable, str(tmp_path / "stage.py"), uri, "slow"], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) != 0
    (run,) = _runs(uri)
    assert run.info.status == "KILLED"


def test_an_error_ends_the_run_failed(mlflow_uri):
    cfg = TrackingConfig(uri=mlflow_uri, experiment="failing")
    with pytest.raises(ValueError):
        with tracking.start_run(cfg, "broken") as run:
            raise ValueError("boom")
    assert mlflow.MlflowClient(mlflow_uri).get_run(run.run_id).info.status == "FAILED"


def test_git_tags_say_whether_the_code_not_the_outputs_is_dirty(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True,
                       env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})

    (tmp_path / "reports").mkdir()
    for name in ("code.py", "dvc.lock", "params.yaml", "reports/table3.md"):
        (tmp_path / name).write_text("a\n")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "x")
    commit, dirty = provenance.git_state(tmp_path)
    assert len(commit) == 40 and dirty is False
    for name in ("dvc.lock", "params.yaml", "reports/table3.md"):  # what a repro or an experiment rewrites
        (tmp_path / name).write_text("b\n")
    assert provenance.git_state(tmp_path)[1] is False
    (tmp_path / "code.py").write_text("b\n")
    assert provenance.git_state(tmp_path)[1] is True
    assert provenance.git_commit(tmp_path).endswith("-dirty")


def test_metric_names_are_readable():
    assert tracking._metric_name("f_prim+f_fine/mAP") == "f_prim_f_fine/mAP"
    assert tracking._metric_name("A_to_B/Baseline (teacher)/mAP") == "A_to_B/Baseline_teacher/mAP"
    assert tracking._metric_name("loss/total") == "loss/total"


def test_evaluations_reach_the_run_that_trained_the_model_and_continuations_get_its_curve(mlflow_uri, tmp_path):
    cfg = TrackingConfig(uri=mlflow_uri, experiment="links")
    model = tmp_path / "last.pt"
    model.write_bytes(b"weights")
    with tracking.start_run(cfg, "dgnet_warm") as warm:
        for step in (2, 4):
            warm.log_metrics({"loss/total": 10.0 / step}, step=step)
        warm.tag_model(model)
    with tracking.start_run(cfg, "dgnet") as full:
        full.continue_from(model)
        full.log_metrics({"loss/total": 1.0}, step=6)
    with tracking.start_run(cfg, "evaluate") as evaluation:
        evaluation.log_to_model_run(model, {"test/mAP": 0.5})
    client = mlflow.MlflowClient(mlflow_uri)
    curve = [(m.step, m.value) for m in client.get_metric_history(full.run_id, "loss/total")]
    assert sorted(curve) == [(2, 5.0), (4, 2.5), (6, 1.0)]
    assert client.get_run(full.run_id).data.tags["warm_start_run_id"] == warm.run_id
    trained = client.get_run(warm.run_id)
    assert trained.data.metrics["test/mAP"] == 0.5
    assert trained.data.tags["evaluated_by_run_id"] == evaluation.run_id


def test_train_teacher_command_trains_then_evaluates_in_two_linked_runs(micro_cfg, tmp_path):
    import json

    import yaml

    from dgnet.cli import main
    from dgnet.config import config_to_dict

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(config_to_dict(micro_cfg) | {"tracking": {"uri": uri, "experiment": "e"}}))
    out, metrics_path = tmp_path / "teacher.pt", tmp_path / "teacher.json"
    assert main(["train-teacher", "--params", str(params), "--out", str(out), "--metrics", str(metrics_path),
                 "--quiet"]) == 0
    metrics = json.loads(metrics_path.read_text())
    assert 0.0 <= metrics["mAP"] <= 1.0 and 0.0 <= metrics["rank1"] <= 1.0
    assert metrics["train_seconds"] > 0 and metrics["train_images"] > 0 and metrics["train_ids"] > 1
    runs = {r.info.run_name: r for r in _runs(uri)}
    assert {"teacher", "evaluate_teacher"} <= set(runs)
    # the evaluation's numbers are also on the run that trained the checkpoint
    assert runs["teacher"].data.metrics["test/mAP"] == pytest.approx(metrics["mAP"])


def test_what_a_server_down_at_the_end_never_got_is_named_in_one_warning(monkeypatch, caplog):
    """The fallback of docs/shared_servers.md ("When things fail"): a server still down when the run
    ends (after FINISH_WAIT_SECONDS) gets a warning naming the run and every call it never got."""
    import socket

    from mlflow.exceptions import MlflowException

    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{s.getsockname()[1]}"

    def down(*args, **kwargs):
        raise MlflowException(f"API request to {uri}/api/2.0/mlflow/runs/log-batch failed: Connection refused")

    class Client:
        log_batch = down

    fake = type("FakeMlflow", (), {"MlflowClient": Client, "end_run": staticmethod(down)})
    monkeypatch.setattr(tracking, "FINISH_WAIT_SECONDS", 0.0)
    run = tracking.Run(fake, "r1", uri)
    with caplog.at_level("WARNING", logger="dgnet.tracking"):
        run.log_metrics({"loss": 1.0}, step=2)  # fails: kept
        run.log_metrics({"loss": 0.5}, step=4)  # queued behind it
        run.set_tags({"optuna.state": "COMPLETE"})
        tracking._end_run(fake, run, "FINISHED")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "does not answer" in lines[0]
    assert "r1" in lines[1] and "stays RUNNING" in lines[1]
    assert lines[1].endswith("metrics of steps 2-4 (2 batches); tags optuna.state")
