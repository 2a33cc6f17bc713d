"""The whole DVC graph on the micro configuration, in a temporary copy of the repository.

One ``dvc repro`` is shared by the checks, in order: the tables and figures,
the flat metrics, byte-identical retraining (``dvc repro -f teacher``), one
MLflow parent run per DVC invocation with the stages as its children, a push
to a local remote and a pull into a fresh clone that then reruns nothing, and
last what DVC plans for a changed test-time key (``eval.beta``), which must
train nothing. ``make test`` runs this module first, on one worker, beside
all the others (see conftest.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from dgnet import tracking

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

TABLES = ["table2", "table3", "table4_5", "offline_vs_e2e", "ablations", "table9", "table10", "disentanglement"]
FIGURES = ["synth_examples", "fig1_swap_grid", "fig4_ablation", "fig5_appearance_interpolation",
           "fig6_test_swaps", "fig8_alpha_beta", "fig9_structure_interpolation", "rank_list", "samples_dgnet"]


def _copy_repo(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if rel.startswith("reports/") or not (ROOT / rel).is_file():
            continue  # generated outputs are what the test must produce
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)


def _run(cmd: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


TRAINING_STAGES = {"pretrain", "teacher", "teacher_b", "train_warm", "train_dgnet", "train_scratch",
                   "offline", "alpha_sweep", "replicate_train", "probe"}


def _env(repo: Path) -> dict:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(repo),  # the copy's code, whatever the environment's editable install points at
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def _stages_run(output: str) -> set[str]:
    return {re.sub(r"@.*", "", name) for name in re.findall(r"Running stage '([^']+)'", output)}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def micro_repo(tmp_path_factory) -> tuple[Path, dict]:
    """A copy of the repository on the micro configuration after one ``dvc repro``, committed."""
    repo = tmp_path_factory.mktemp("micro") / "repo"
    repo.mkdir()
    _copy_repo(repo)
    env = _env(repo)
    _run([sys.executable, "-m", "dgnet.cli", "config", "use", "micro"], repo, env)
    _run(["git", "init", "-q"], repo, env)
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-qm", "micro"], repo, env)
    _run(["dvc", "repro", "--quiet"], repo, env)
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-qm", "repro"], repo, env)
    return repo, env


def test_dvc_repro_on_the_micro_configuration_produces_every_table_and_figure(micro_repo):
    repo, env = micro_repo
    reports = repo / "reports"
    for name in TABLES:
        assert (reports / f"{name}.md").is_file(), name
        assert (reports / f"{name}.csv").is_file(), name
    for name in FIGURES:
        png = reports / "figures" / f"{name}.png"
        assert png.is_file() and png.stat().st_size > 1000, name
    assert (reports / "README.md").is_file()

    table3 = pd.read_csv(reports / "table3.csv")
    measured = table3[table3["source"] == "measured"]["Method"].tolist()
    assert measured == ["Baseline (teacher)", "f_prim", "f_fine", "f_prim + f_fine"]
    assert (table3["source"] == "paper (quoted)").sum() == 4
    table2 = pd.read_csv(reports / "table2.csv")
    assert {"Real", "DG-Net", "DG-Net w/o feed"} <= set(table2["Method"])  # w/o id: switched off, as on the default
    assert "DG-Net w/o id" not in set(table2["Method"])
    assert (repo / "data/generated/dgnet_noid/README.txt").is_file()  # a declared output, there and empty
    table9 = pd.read_csv(reports / "table9.csv")
    measured9 = table9[table9["source"] == "measured"]
    assert len(measured9) == 5 and measured9["Transfer"].tolist()[-1] == "B -> A"  # A -> {A, B} x 2, then "not run"
    assert "sweep.transfer_b_to_a is false" in (reports / "table9.md").read_text()
    offline = pd.read_csv(reports / "offline_vs_e2e.csv")
    assert (offline["source"] == "measured").sum() == 2
    assert "not run" in (reports / "table10.md").read_text()

    # the seeds matrix (micro: one replicate seed beside train.seed) and the claims scorecard
    assert (reports / "seeds" / "1" / "metrics" / "table3.json").is_file()
    card = json.loads((reports / "metrics" / "claims.json").read_text())
    assert card["seeds"] == [0, 1]
    ids = {c["id"] for c in card["claims"]}
    assert {"dgnet_vs_baseline", "prim_vs_baseline", "combined_vs_prim", "e2e_vs_offline", "alpha_peak",
            "beta_peak", "feed_realism", "id_clothing", "disentangle", "transfer"} <= ids
    by_id = {c["id"]: c for c in card["claims"]}
    assert by_id["dgnet_vs_baseline"]["ours"]["n_seeds"] == 2
    assert by_id["transfer"]["ours"]["n_seeds"] == 2  # each replicate seed's models are tested on B too
    assert "A -> B: DG-Net" in (reports / "table9.md").read_text().split("over seeds")[1]
    assert by_id["id_clothing"]["verdict"] == "not run" and "sweep.without_id" in by_id["id_clothing"]["reason"]
    assert by_id["alpha_peak"]["ours"]["n_seeds"] == 1
    assert by_id["dgnet_vs_baseline"]["verdict"] == "not testable here"  # micro's 2-epoch Baseline: under the plateau
    assert by_id["dgnet_vs_baseline"]["preconditions"][1]["measured"]["epochs"] == 2
    assert json.loads((reports / "metrics" / "pretrain.json").read_text())["trained"] is False  # pretrained: none
    probe = json.loads((reports / "metrics" / "train_probe.json").read_text())
    assert probe["ids"] > 0 and not (reports / "seeds" / "1" / "metrics" / "train_probe.json").exists()
    for c in card["claims"]:  # the seeds rule where the preconditions hold, "not testable here" where one does not
        n, holds = c["ours"]["n_seeds"], all(p["holds"] for p in c["preconditions"])
        if n:
            assert c["verdict"] == (f"inconclusive ({n} seed{'s' * (n > 1)})" if holds else "not testable here")
    assert card["machine"]["torch"] and card["machine"]["training_threads"] == 1
    assert "[Claims scorecard](claims.md)" in (reports / "README.md").read_text()

    # nothing changed: a second repro does nothing
    again = _run(["dvc", "status"], repo, env)
    assert "up to date" in again.stdout.lower() or again.stdout.strip() == ""


def test_metrics_show_prints_one_readable_row_per_measured_number(micro_repo):
    repo, env = micro_repo
    shown = _run(["dvc", "metrics", "show"], repo, env).stdout
    lines = shown.splitlines()
    assert lines[0].split() == ["Path", "mAP", "rank1"]
    names = {Path(line.split()[0]).stem for line in lines[1:] if line.strip()}
    assert {"table3.baseline", "table3.f_prim_f_fine", "figure8.alpha_0.2", "figure8.alpha_0.5", "figure8.beta_1",
            "table9.A_to_B.dgnet", "table9.A_to_A.baseline", "ablations.w_o_feed", "offline.f_prim_f_fine"} <= names
    assert max(len(line) for line in lines) < 120
    timings = json.loads((repo / "reports/metrics/timings.json").read_text())
    assert timings["train_dgnet.train_seconds"] > 0 and not any("seconds" in line for line in lines)
    # each stage timed itself; the graph's cost is their sum over the default step measured here
    assert timings["graph.stages_without_a_record"] == 0 and timings["stage.train_dgnet.wall_seconds"] > 0
    assert timings["graph.default_step_equivalents"] == round(
        timings["graph.wall_seconds"] / timings["graph.default_step_seconds"])


def test_forced_retraining_of_the_teacher_gives_the_same_bytes_and_reruns_nothing_after_it(micro_repo):
    repo, env = micro_repo
    teacher = repo / "models" / "teacher.pt"
    before = _digest(teacher)
    proc = _run(["dvc", "repro", "-f", "teacher"], repo, env)
    assert _stages_run(proc.stdout) == {"prepare", "pretrain", "teacher"}  # -f forces what the teacher reads too
    assert _digest(teacher) == before
    status = _run(["dvc", "status"], repo, env).stdout
    changed = {line.rstrip(":").strip() for line in status.splitlines()
               if line and not line[0].isspace() and "up to date" not in line}
    assert changed <= {"timings"}, status  # identical files; only the seconds differ
    # git sees the same: every rewritten output has the same bytes; the seconds are files of their own
    porcelain = _run(["git", "status", "--porcelain", "--untracked-files=all"], repo, env).stdout
    assert porcelain and all(line[3:].startswith("reports/stage_seconds/") for line in porcelain.splitlines()), porcelain


def test_each_dvc_invocation_is_one_mlflow_parent_run_with_its_stages_as_children(micro_repo):
    repo, _ = micro_repo  # two invocations so far: the whole graph, then the forced teacher
    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("dgnet")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = sorted((r for r in runs if tracking.PARENT_TAG in r.data.tags), key=lambda r: r.info.start_time)
    assert len(parents) == 2
    assert all(p.info.status == "FINISHED" and p.info.run_name.startswith("dvc ") for p in parents)
    stages = set(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]) | {"replicate_train@1", "replicate@1"}
    stages -= {"replicate_train", "replicate"}
    children = {p.info.run_id: [r for r in runs if r.data.tags.get("mlflow.parentRunId") == p.info.run_id]
                for p in parents}
    first, second = (children[p.info.run_id] for p in parents)
    # no runs: the stages that train or measure nothing (micro's backbone and generator start from scratch;
    # w/o id and Table 9's B -> A are switched off)
    assert {r.data.tags["stage"] for r in first} == stages - {"prepare", "pretrain", "pretrain_generator", "probe",
                                                              "summary", "timings", "teacher_b", "train_scratch"}
    assert {r.data.tags["stage"] for r in second} == {"teacher"}
    assert all(r.info.status == "FINISHED" and r.data.tags["config"] == "micro" for r in first + second)


def test_models_push_to_a_remote_and_a_fresh_clone_pulls_them_and_reruns_nothing(micro_repo, tmp_path):
    repo, env = micro_repo
    _run(["dvc", "repro"], repo, env)  # the timings of the forced retraining above
    remote = tmp_path / "remote"
    _run(["dvc", "remote", "add", "-f", "-d", "storage", str(remote)], repo, env)
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-qm", "remote"], repo, env)
    _run(["dvc", "push"], repo, env)
    assert any(remote.rglob("*")) and (repo / "models" / "teacher.pt").is_file()

    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    env = _env(clone)
    assert not (clone / "models").exists()
    _run(["dvc", "pull"], clone, env)
    assert _digest(clone / "models" / "teacher.pt") == _digest(repo / "models" / "teacher.pt")
    assert (clone / "models" / "dgnet" / "last.pt").is_file() and (clone / "data" / "prepared").is_dir()
    status = _run(["dvc", "status"], clone, env).stdout.lower()
    assert "up to date" in status, status
    proc = _run(["dvc", "repro"], clone, env)
    assert _stages_run(proc.stdout) == set(), proc.stdout

    (clone / "models" / "teacher.pt").unlink()  # a deleted model comes back from the cache
    _run(["dvc", "checkout", "models/teacher.pt"], clone, env)
    assert _digest(clone / "models" / "teacher.pt") == _digest(repo / "models" / "teacher.pt")


def test_a_test_time_experiment_trains_no_network(micro_repo):
    repo, env = micro_repo  # last: the changed key stays in the workspace
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace("  beta: 0.5\n", "  beta: 1.0\n", 1))
    planned = _stages_run(_run(["dvc", "repro", "--dry"], repo, env).stdout)  # what DVC would rerun
    assert planned & TRAINING_STAGES == set(), planned
    assert {"evaluate_dgnet", "beta_sweep", "evaluate_teacher"} <= planned, planned
