"""The lock file, `dgnet env` and the environment every MLflow run carries."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow

from dgnet import cli, environment, lockfile, tracking
from dgnet.config import TrackingConfig

ROOT = Path(__file__).resolve().parent.parent


def test_the_committed_lock_matches_pyproject():
    lockfile.check(ROOT / "pyproject.toml", ROOT / "requirements.lock")


def test_a_changed_pin_without_a_refreshed_lock_is_one_error_line(tmp_path):
    shutil.copy(ROOT / "requirements.lock", tmp_path)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"pyyaml>=6",' in pyproject
    (tmp_path / "pyproject.toml").write_text(pyproject.replace('"pyyaml>=6",', '"pyyaml>=6.0.2",'))
    proc = subprocess.run([sys.executable, str(ROOT / "dgnet" / "lockfile.py"), "check"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("dgnet: error: requirements.lock: out of date")
    assert "make lock" in proc.stderr
    # comments and layout are not dependencies: the refreshed hash is stable under them
    (tmp_path / "pyproject.toml").write_text(pyproject.replace('"pyyaml>=6",', '"pyyaml>=6",  # a comment'))
    assert lockfile.dependencies_hash(tmp_path / "pyproject.toml") == lockfile.dependencies_hash(ROOT / "pyproject.toml")


def test_dgnet_env_reports_match_and_a_doctored_lock(tmp_path, capsys):
    installed = environment.installed_packages()
    exact = tmp_path / "exact.lock"
    exact.write_text("".join(f"{name}=={version} \\\n    --hash=sha256:00\n" for name, version in installed.items()
                             if name not in ("pip", "dgnet")))
    assert cli.main(["env", "--lock", str(exact)]) == 0
    out = capsys.readouterr().out
    assert "installed  match" in out and f"numpy=={installed['numpy']}" in out and "threads" in out

    doctored = tmp_path / "doctored.lock"
    doctored.write_text(exact.read_text().replace(f"numpy=={installed['numpy']} ", "numpy==0.0.1 ")
                        + "not-installed-anywhere==1.0\n")
    assert cli.main(["env", "--lock", str(doctored), "--json"]) == 0
    env = json.loads(capsys.readouterr().out)
    assert env["lock"]["line"] == (f"2 differ: not-installed-anywhere missing (lock 1.0), "
                                   f"numpy {installed['numpy']} (lock 0.0.1)")
    assert env["lock"]["sha256"] == lockfile.lock_hash(doctored)


def test_every_mlflow_run_carries_its_environment(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with tracking.start_run(TrackingConfig(uri=uri, experiment="env"), "teacher") as run:
        run_id = run.run_id
    client = mlflow.MlflowClient(uri)
    tags = client.get_run(run_id).data.tags
    assert tags["env.lock_sha256"] == lockfile.lock_hash(ROOT / "requirements.lock")
    assert tags["env.torch"].startswith(environment.torch_build()["torch"].split("+")[0])
    assert {"env.lock_match", "env.torch_build", "env.cpu", "env.threads", "env.numpy"} <= set(tags)
    local = Path(client.download_artifacts(run_id, "environment.json", str(tmp_path)))
    recorded = json.loads(local.read_text())
    assert recorded["torch_build"]["torch"] == tags["env.torch"] and "numpy" in recorded["packages"]
    assert recorded["lock"]["line"] == tags["env.lock_match"]
