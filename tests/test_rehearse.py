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
    # switched off here (markers, no estimate): the synthetic pre-training and the probe on real data, the
    # generator's pre-training under generator_init: scratch, and the alpha sweep (sweep.alphas=[] above)
    off = {"pretrain", "pretrain_generator", "probe", "alpha_sweep", "evaluate_alpha_sweep"}
    assert set(doc["skipped"]) == off and all(stages[n]["estimate_seconds"] is None for n in off)
    assert all(s["status"] == "ok" and s["seconds"] > 0 and s["estimate_seconds"] > 0
               for n, s in stages.items() if n not in off)
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


def test_a_broken_key_in_the_real_graph_fails_at_the_stage_that_reads_it(tmp_path, monkeypatch, capsys):
    """market1501 with backbone weights from a file that is not there (the preflight checks only the ImageNet
    file: tests/test_preflight.py): the stages before the backbone is read run, both teachers fail naming
    the file, their dependants are not reached, and the rehearsal ends in one line naming the first."""
    params = _params(tmp_path, _tree(tmp_path / "Market-1501", "A"), _as_duke(_tree(tmp_path / "Duke", "B")))
    monkeypatch.chdir(ROOT)
    weights = tmp_path / "weights" / "resnet18.pth"
    broken = [k for k in CHEAP if not k.startswith("model.backbone.")] + [
        "model.backbone.arch=resnet18", f"model.backbone.pretrained={weights}"]
    out = tmp_path / "rehearsal.json"
    assert main(["rehearse", "--params", str(params), "--iterations", "2", "--out", str(out),
                 *[arg for key in broken for arg in ("--set", key)]]) == 2
    doc = json.loads(out.read_text())
    status = {s["name"]: s["status"] for s in doc["stages"]}
    assert doc["failed"] == ["teacher", "teacher_b"] and status["prepare"] == "ok"
    errors = {s["name"]: s["error"] for s in doc["stages"] if s["status"] == "failed"}
    assert all(e.startswith("dgnet: error: ") and str(weights) in e for e in errors.values()), errors
    assert {"train_warm", "train_dgnet", "offline", "transfer", "summary"} <= set(doc["not_reached"])
    assert set(status) - set(doc["not_reached"]) <= {"prepare", "pretrain", "pretrain_generator", "probe",
                                                     "teacher", "teacher_b", "alpha_sweep"}
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err[-1].startswith("dgnet: error: rehearsal: 2 stage(s) failed, first teacher: "), err


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


def _write(path: str, doc: dict) -> str:
    """A shell command that writes ``doc`` as JSON at ``path`` (through a rename, as dgnet.io does)."""
    return f"mkdir -p $(dirname {path}) && echo '{json.dumps(doc)}' > {path}.tmp && mv {path}.tmp {path}"


def test_each_stage_is_measured_on_the_files_it_wrote_only(tmp_path):
    """No time window: a stage that starts right after another does not count the other's training again."""
    dgnet = {"iterations": 4, "iterations_trained": 4, "train_seconds": 2.0}
    stages = {"first": {"cmd": _write("reports/metrics/train_dgnet.json", dgnet), "after": []},
              "second": {"cmd": "true", "after": ["first"]},
              "third": {"cmd": _write("reports/metrics/train_dgnet_noid.json", dgnet), "after": ["second"]}}
    seen: dict[str, list[str]] = {}
    run_graph(stages, tmp_path, dict(os.environ), lambda r, written: seen.setdefault(r.name, [
        str(p.relative_to(tmp_path)) for p in written]), progress=lambda line: None)
    assert seen == {"first": ["reports/metrics/train_dgnet.json"], "second": [],
                    "third": ["reports/metrics/train_dgnet_noid.json"]}


def test_the_alpha_sweeps_trainings_are_counted_from_the_warm_up(tmp_path):
    from dgnet.config import preset_config, replace
    from dgnet.rehearse import _trainings

    real = preset_config("market1501")
    rehearsal = replace(real, **{"train.iterations": 4, "train.warm_iter": 2})
    doc = {"iterations": 4, "iterations_trained": 2, "train_seconds": 3.0, "step_seconds_median": 0.5}
    written = []
    for alpha in ("0", "0.5"):
        path = tmp_path / "models" / "alpha_sweep" / f"dgnet_alpha_{alpha}" / "train.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(doc))
        written.append(path)
    found = _trainings(written, real, rehearsal, train_scale=1.0)
    assert [(t.name, t.unit, t.real_units) for t in found] == [("dgnet_alpha_0", "iteration", 70000),
                                                                ("dgnet_alpha_0.5", "iteration", 70000)]
    assert found[0].estimate == pytest.approx(0.5 * 70000)


def test_a_switched_off_stage_is_skipped_without_an_estimate_and_its_dependants_run(tmp_path):
    marker = {"trained": False, "reason": "not trained: data.transfer_layout is none", "train_seconds": 0.0}
    not_run = {"run": False, "reason": "not run: data.transfer_layout is none", "rows": []}
    stages = {
        "teacher_b": {"cmd": _write("reports/metrics/train_teacher_b.json", marker), "after": []},
        "transfer": {"cmd": _write("reports/metrics/transfer.json", not_run), "after": ["teacher_b"]},
        "replicate": {"cmd": _write("reports/seeds/1/transfer.json", not_run) + " && "
                      + _write("reports/seeds/1/table3.json", {"f_prim": {}}), "after": ["teacher_b"]},
        "report": {"cmd": "true", "after": ["transfer", "replicate"]},
    }
    lines: list[str] = []
    results = run_graph(stages, tmp_path, dict(os.environ), lambda r, written: setattr(r, "estimate_seconds", 1.0),
                        progress=lines.append)
    assert {n: r.status for n, r in results.items()} == {"teacher_b": "skipped", "transfer": "skipped",
                                                          "replicate": "ok", "report": "ok"}
    assert results["teacher_b"].estimate_seconds is None and results["replicate"].estimate_seconds == 1.0
    assert results["transfer"].switched_off == "not run: data.transfer_layout is none"
    assert "teacher_b                skipped (switched off: data.transfer_layout is none)" in lines
