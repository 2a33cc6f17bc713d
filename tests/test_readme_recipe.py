"""The README's Market-1501 recipe, run by ``bash`` in a fresh shell (no activated environment, the virtual
environment not on PATH), in a copy of the repository, on a small generated Market-1501 tree with a
DukeMTMC-reID tree beside it, through to Table 3.

Substituted: the data roots, and ``--set`` keys appended to the recipe's ``dgnet config use`` line: the micro
configuration's sizes, ``runtime.device=cpu`` and ``pretrained: none`` (no GPU or ImageNet file in CI), and the
DukeMTMC-reID root that the recipe's comment asks to edit. Two lines are made cheap (see the test).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_pipeline_micro import _copy_repo
from test_rehearse import _as_duke, _tree

from dgnet.config import flatten, preset_dict

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow
MARKET = "/data/Market-1501-v15.09.15"


def recipe_block(readme: str) -> str:
    """The README's bash block that switches to the market1501 configuration."""
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    found = [b for b in blocks if "dgnet config use market1501" in b]
    assert len(found) == 1, "README.md: expected one bash block with `dgnet config use market1501`"
    return found[0]


def small_sizes(duke: Path) -> list[str]:
    """``KEY=VALUE`` for the micro configuration's sizes, on the CPU, with the DukeMTMC-reID tree for Table 9."""
    micro = preset_dict("micro")
    keep = {k: v for k, v in flatten(micro).items()
            if k.split(".")[0] in ("model", "train", "teacher", "pretrain", "probe", "eval", "runtime")
            or k in ("data.height", "data.width", "data.val_ids")}
    keep.update({"model.backbone.arch": "small", "runtime.device": "cpu", "data.transfer_root": str(duke)})
    return [f"{k}={json.dumps(v)}" for k, v in keep.items()]


def test_the_market1501_recipe_runs_as_written_from_a_fresh_shell(tmp_path):
    venv = Path(sys.prefix)
    if venv == Path(sys.base_prefix):
        pytest.skip("the tests do not run in a virtual environment: the recipe's .venv has nothing to activate")
    repo = tmp_path / "repo"
    repo.mkdir()
    _copy_repo(repo)
    (repo / ".venv").symlink_to(venv)
    market = _tree(tmp_path / "Market-1501", "A")
    duke = _as_duke(_tree(tmp_path / "Duke", "B"))

    block = recipe_block((ROOT / "README.md").read_text())
    assert block.startswith("source .venv/bin/activate")
    sets = " ".join(f"--set {shlex.quote(kv)}" for kv in small_sizes(duke))
    script = re.sub(r"^(dgnet config use market1501 .*?)(\s+#.*)?$", lambda m: f"{m.group(1)} {sets}", block,
                    count=1, flags=re.M)
    script = script.replace(MARKET, str(market))
    # Made cheap, as the whole graph (each of its ~25 stages a new interpreter) would take this test from about
    # 2 minutes to 7 on 2 cores: the rehearsal only parses its command line (tests/test_rehearse.py rehearses
    # such a tree through every stage), and `dvc repro` stops at Table 3 (tests/test_pipeline_micro.py runs
    # the whole graph).
    script, rehearsals = re.subn(r"^dgnet rehearse .*$", "dgnet rehearse --help > /dev/null", script, flags=re.M)
    script, repros = re.subn(r"^dvc repro(\s+#.*)?$", "dvc repro evaluate_dgnet", script, flags=re.M)
    assert rehearsals == repros == 1
    assert script != block and MARKET not in script

    bin_dir = str(venv / "bin")
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != Path(bin_dir))
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PATH=path, OMP_NUM_THREADS="1",
               PYTHONPATH=str(repo))  # the copy's code, wherever the environment's editable install points
    git = {**env, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "clone"]):
        subprocess.run(cmd, cwd=repo, env=git, check=True, capture_output=True)

    proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=repo, env=git,
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"{script}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"

    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["data"]["root"] == str(market) and params["data"]["layout"] == "market1501"
    table3 = pd.read_csv(repo / "reports" / "table3.csv")
    measured = table3[table3["source"] == "measured"]
    assert measured["Method"].tolist() == ["Baseline (teacher)", "f_prim", "f_fine", "f_prim + f_fine"]
    assert measured["mAP"].between(0, 100).all()
