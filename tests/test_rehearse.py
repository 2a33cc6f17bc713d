"""``dgnet rehearse``: the real-data graph on a generated Market-1501 tree (and a DukeMTMC-reID tree for
Table 9), every stage in order, with per-stage estimates; a failing stage names itself and stops only its
dependants; a missing data set is one line saying where to put it."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from dgnet.cli import main
from dgnet.config import SynthConfig
from dgnet.data.synth import write_synthetic
from dgnet.rehearse import run_graph

ROOT = Path(__file__).resolve().parent.parent
# the real graph and the real networks' code paths, made cheap for a 2-core CI machine: a smaller input and
# backbone (no ImageNet file here), no replicate seeds and no alpha sweep (the same stages again), one training
# at a time
CHEAP = ["data.height=32", "data.width=16", "model.backbone.arch=small", "model.backbone.pretrained=none",
         "sweep.seeds=[]", "sweep.alphas=[]", "runtime.threads=1", "runtime.parallel_trainings=1"]
_MARKET = re.compile(r"^(-1|\d+)_c(\d)s\d_(\d+)_\d+\.jpg$")


def _tree(dest: Path, style: str) -> Path:
    """A small synthetic set in Market-1501 layout: real file names, junk and distractors, 6 cameras."""
    write_synthetic(dest, SynthConfig(train_ids=6, test_ids=6, distractors=2, junk=2, images_per_camera=1,
                                      cameras=6, style=style, height=64, width=32))
    return dest


def _as_duke(market: Path) -> Path:
    """The same images under DukeMTMC-reID's names (PPPP_cC_fFFFFFFF.jpg)."""
    for i, path in enumerate(sorted(market.rglob("*.jpg"))):
        pid, cam, frame = _MARKET.match(path.name).groups()
        path.rename(path.with_name(f"{pid}_c{cam}_f{int(frame) * 100 + i:07d}.jpg"))
    return market


def _params(tmp_path: Path, market: Path, transfer: Path) -> Path:
    params = tmp_path / "params.yaml"
    assert main(["config", "use", "market1501", "--data-root", str(market), "--device", "cpu",
                 "--params", str(params)]) == 0
    data = yaml.safe_load(params.read_text())
    data["data"]["transfer_root"] = str(transfer)
    params.write_text(yaml.safe_dump(data))
    return params


@pytest.mark.slow
def test_market1501_rehearsal_runs_every_stage_and_estimates_the_real_run(tmp_path, monkeypatch, capsys):
    params = _params(tmp_path, _tree(tmp_path / "Market-1501", "A"), _as_duke(_tree(tmp_path / "Duke", "B")))
    out = tmp_path / "rehearsal.json"
    monkeypatch.chdir(ROOT)  # the project whose dvc.yaml is rehearsed
    sets = [arg for key in CHEAP for arg in ("--set", key)]
    assert main(["rehearse", "--params", str(params), "--iterations", "2", *sets,
                 "--out", str(out)]) == 0, capsys.readouterr().err
    doc = json.loads(out.read_text())
    stages = {s["name"]: s for s in doc["stages"]}
    graph = set(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]) - {"replicate_train", "replicate"}
    assert set(stages) == graph and doc["failed"] == doc["not_reached"] == []
    assert all(s["status"] == "ok" and s["seconds"] > 0 and s["estimate_seconds"] > 0 for s in stages.values())
    # DG-Net's real iterations come from the configuration: 30K warm-up, then 70K for each continued variant
    trainings = {t["name"]: t for s in stages.values() for t in s["trainings"]}
    assert trainings["dgnet_warm"]["real_units"] == 30000 and trainings["dgnet"]["real_units"] == 70000
    assert trainings["dgnet_nofeed"]["unit"] == "iteration" and trainings["offline"]["real_units"] == 100000
    assert trainings["teacher"]["unit"] == "image-epoch"  # x 60 epochs of the whole generated tree's train images
    assert trainings["teacher"]["real_units"] == pytest.approx(60 * len(list((tmp_path / "Market-1501" /
                                                                               "bounding_box_train").glob("*.jpg"))))
    assert doc["real"]["iterations"] == 100000 and doc["rehearsal"]["iterations"] == 2
    assert doc["estimate_seconds_total"] >= sum(t["estimate_seconds"] for t in trainings.values())
    printed = capsys.readouterr().out
    assert re.search(r"train_dgnet +ok in .* dgnet [\d.e+-]+ s/iteration", printed), printed
    assert "estimated real run: about" in printed
    assert not Path(doc["scratch"]).exists()  # the scratch copy is gone; the project's outputs were never used
    duke_train = len(list((tmp_path / "Duke" / "bounding_box_train").glob("*.jpg")))
    assert doc["sample"]["transfer"]["train"] == duke_train  # Table 9's set is sampled too (all 6 of its ids)


def test_a_failing_stage_is_named_and_only_its_dependants_are_not_reached(tmp_path):
    stages = {
        "prepare": {"cmd": "true", "after": []},
        "teacher_b": {"cmd": "echo progress; echo 'dgnet: error: data.transfer_root: not found' >&2; exit 2",
                      "after": ["prepare"]},
        "teacher": {"cmd": "true", "after": ["prepare"]},
        "transfer": {"cmd": "true", "after": ["teacher", "teacher_b"]},
    }
    lines: list[str] = []
    results = run_graph(stages, tmp_path, dict(os.environ), progress=lines.append)
    assert {n: r.status for n, r in results.items()} == {"prepare": "ok", "teacher_b": "failed", "teacher": "ok",
                                                          "transfer": "not reached"}
    assert results["teacher_b"].error == "dgnet: error: data.transfer_root: not found"
    assert results["transfer"].error == "needs teacher_b"
    assert any(line.startswith("teacher_b") and "FAILED" in line for line in lines)


def test_a_missing_data_set_says_what_to_put_where(tmp_path, monkeypatch, capsys):
    params = _params(tmp_path, tmp_path / "Market-1501-v15.09.15", tmp_path / "Duke")
    monkeypatch.chdir(ROOT)
    assert main(["rehearse", "--params", str(params)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("dgnet: error: ") and "Market-1501-v15.09.15" in err[0], err
