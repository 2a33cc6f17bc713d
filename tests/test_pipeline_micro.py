"""The whole DVC graph on the micro configuration, in a temporary copy of the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent

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


@pytest.mark.slow
def test_dvc_repro_on_the_micro_configuration_produces_every_table_and_figure(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _copy_repo(repo)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    _run([sys.executable, "-m", "dgnet.cli", "config", "use", "micro"], repo, env)
    _run(["git", "init", "-q"], repo, env)
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-qm", "micro"], repo, env)
    _run(["dvc", "repro", "--quiet"], repo, env)

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
    assert {"Real", "DG-Net", "DG-Net w/o feed", "DG-Net w/o id"} <= set(table2["Method"])
    table9 = pd.read_csv(reports / "table9.csv")
    assert (table9["source"] == "measured").sum() == 8  # {A, B} x {A, B} x {baseline, DG-Net}
    offline = pd.read_csv(reports / "offline_vs_e2e.csv")
    assert (offline["source"] == "measured").sum() == 2
    assert "not run" in (reports / "table10.md").read_text()

    # the seeds matrix (micro: one replicate seed beside train.seed) and the claims scorecard
    assert (reports / "seeds" / "1" / "metrics" / "table3.json").is_file()
    card = json.loads((reports / "metrics" / "claims.json").read_text())
    assert card["seeds"] == [0, 1]
    ids = {c["id"] for c in card["claims"]}
    assert {"dgnet_vs_baseline", "prim_vs_baseline", "combined_vs_prim", "e2e_vs_offline", "alpha_peak",
            "beta_gain", "feed_realism", "id_clothing", "disentangle", "transfer"} <= ids
    by_id = {c["id"]: c for c in card["claims"]}
    assert by_id["dgnet_vs_baseline"]["ours"]["n_seeds"] == 2
    assert by_id["transfer"]["ours"]["n_seeds"] == 1 and by_id["transfer"]["verdict"] == "inconclusive"
    assert all(c["verdict"] in ("reproduced", "not reproduced", "inconclusive") for c in card["claims"])
    assert "[Claims scorecard](claims.md)" in (reports / "README.md").read_text()

    # nothing changed: a second repro does nothing
    again = _run(["dvc", "status"], repo, env)
    assert "up to date" in again.stdout.lower() or again.stdout.strip() == ""
    metrics = _run(["dvc", "metrics", "show"], repo, env)
    assert "table3.json" in metrics.stdout
