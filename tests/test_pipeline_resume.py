"""A `dvc repro` killed by SIGKILL during a training stage continues from its last checkpoint when rerun
(dgnet/stages/resume.py), and its model is byte-identical to an uninterrupted run's."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from dgnet.stages.resume import InProgress
from test_pipeline_micro import _copy_repo, _env, _run

pytestmark = pytest.mark.slow


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_killed_dvc_repro_resumes_its_training_and_ends_byte_identical(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _copy_repo(repo)
    env = _env(repo)
    _run([sys.executable, "-m", "dgnet.cli", "config", "use", "micro"], repo, env)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    # the warm-up long enough to be killed between two checkpoints
    params["train"].update(warm_iter=40, checkpoint_every=10, sample_every=20, log_every=5)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    _run(["git", "init", "-q"], repo, env)

    kept = repo / ".resume/models/dgnet_warm/last.pt"
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen(["dvc", "repro", "train_warm"], cwd=repo, env=env, stdout=log, stderr=log,
                                start_new_session=True)  # its own process group: dvc and the stage it runs
    try:
        deadline = time.monotonic() + 150
        while not kept.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert kept.is_file() and proc.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # as a lost node: no handler runs
        proc.wait()

    resumed = _run(["dvc", "repro", "train_warm"], repo, env)
    lines = [line for line in (resumed.stdout + resumed.stderr).splitlines() if "in-progress checkpoint" in line]
    assert len(lines) == 1 and lines[0].startswith("dgnet_warm: resuming from the in-progress checkpoint "
                                                   ".resume/models/dgnet_warm/last.pt (iteration "), lines
    metrics = json.loads((repo / "reports/metrics/train_dgnet_warm.json").read_text())
    assert metrics["iterations"] == 40 and metrics["iterations_trained"] < 40
    curve = (repo / "reports/curves/dgnet_warm.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in curve[1:]] == [str(s) for s in range(5, 41, 5)]  # the killed part too
    assert not (repo / ".resume/models").exists()  # finished: nothing in progress
    resumed_digest = _digest(repo / "models/dgnet_warm/last.pt")

    again = _run(["dvc", "repro", "--force", "--single-item", "train_warm"], repo, env)  # uninterrupted
    assert "in-progress checkpoint" not in again.stdout + again.stderr
    assert _digest(repo / "models/dgnet_warm/last.pt") == resumed_digest


def test_an_in_progress_checkpoint_of_other_inputs_is_dropped_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    inputs = {"config": {"train": {"alpha": 2.0}}, "files": {"teacher": "abc"}, "training_set": "x"}
    first = InProgress("models/dgnet", inputs, "dgnet")
    assert first.start() is False
    Path("models/dgnet").mkdir(parents=True)
    Path("models/dgnet/last.pt").write_bytes(b"state at 10")
    first.keep(10, {5: {"loss/total": 1.0}})

    changed = {**inputs, "config": {"train": {"alpha": 1.0}}, "files": {"teacher": "abd"}}
    assert InProgress("models/dgnet", changed, "dgnet").start() is False
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == ["dgnet: starting afresh: the in-progress checkpoint .resume/models/dgnet/last.pt was made "
                   "with other inputs (train.alpha, the teacher file)"]
    assert not Path(".resume/models/dgnet/last.pt").exists()
