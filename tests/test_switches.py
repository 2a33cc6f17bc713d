"""The per-configuration switches (dgnet/switches.py): ``data.transfer_layout: none``, ``sweep.alphas: []``,
``sweep.without_id: false`` and ``sweep.transfer_b_to_a: false`` make the stages of ``dvc.yaml`` that they switch off write markers, train nothing, and the reports say
"not run"; the real-data presets' choices. Each stage is run in-process from its ``dvc.yaml`` command, with
the trainings it would start recorded instead of run."""

from __future__ import annotations

import json
import runpy
import shlex
import sys
from pathlib import Path

import pytest
import yaml

from dgnet import io, switches
from dgnet.config import ConfigError, config_from_dict, preset_config, preset_dict
from dgnet.errors import UserError
from dgnet.reports import build, claims
from dgnet.train import parallel

ROOT = Path(__file__).resolve().parent.parent
GRAPH = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _params(tmp_path: Path, **data) -> dict:
    """The micro configuration with ``data`` changes, ``sweep.alphas`` and every training switched on, as
    params.yaml in ``tmp_path``."""
    params = preset_dict("micro")
    alphas = data.pop("alphas", None)
    params["data"].update(data)
    params["sweep"].update(without_id=True, transfer_b_to_a=True)
    if alphas is not None:
        params["sweep"]["alphas"] = alphas
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return params


def _run_stage(name: str, params: dict, monkeypatch) -> list[str]:
    """Run ``dvc.yaml``'s command of stage ``name`` in-process (cwd: the params' folder); returns the model
    folders of the DG-Net trainings it would start (recorded, not run)."""
    cmd = GRAPH[name]["cmd"]
    for key in ("transfer_layout", "transfer_root"):
        cmd = cmd.replace("${data.%s}" % key, str(params["data"][key]))
    python, script, *argv = shlex.split(cmd)
    started: list[str] = []
    monkeypatch.setattr(parallel, "run_side_by_side", lambda jobs: started.extend(str(j.args[1]) for j in jobs))
    monkeypatch.setattr(sys, "argv", [script, *argv])
    runpy.run_path(str(ROOT / script), run_name="dgnet_stage")["main"]()
    return started


def _outs(name: str) -> list[str]:
    return [next(iter(o)) if isinstance(o, dict) else o for o in GRAPH[name]["outs"]]


# ---------------------------------------------------------------- data.transfer_layout: none


def test_transfer_none_switches_off_teacher_b_and_the_domain_b_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = _params(tmp_path, transfer_layout="none", transfer_root="nowhere")
    stages = [n for n, s in GRAPH.items() if "${data.transfer_layout}" in s.get("cmd", "")]
    assert "teacher_b" in stages and len(stages) >= 2  # teacher_b and the stage that trains dgnet_b
    for name in stages:
        started = _run_stage(name, params, monkeypatch)
        assert "models/dgnet_b" not in started, name
        for out in _outs(name):
            if any(out.startswith(model) or Path(model).name in out for model in started):
                continue  # a model that does train (w/o id, beside dgnet_b): not run here
            assert Path(out).exists(), f"{name}: {out} not written"
    assert io.load_checkpoint("models/teacher_b.pt")["kind"] == "not_trained"
    for metrics in ("train_teacher_b", "train_dgnet_b"):
        doc = json.loads(Path(f"reports/metrics/{metrics}.json").read_text())
        assert doc["trained"] is False and "data.transfer_layout is none" in doc["reason"]
    assert not list(Path("models/dgnet_b").glob("*.pt"))  # a marker folder, no checkpoint


def test_transfer_none_writes_table9_and_the_claim_as_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = _params(tmp_path, transfer_layout="none")
    _run_stage("transfer", params, monkeypatch)
    doc = json.loads(Path("reports/metrics/transfer.json").read_text())
    assert doc["run"] is False and doc["rows"] == []
    cfg = config_from_dict(params)
    build.table9(cfg, doc, {})
    table = Path("reports/table9.md").read_text()
    assert "not run" in table and "data.transfer_layout is none" in table
    card = claims.scorecard({0: {"transfer": doc}}, "micro")
    row = next(r for r in card["claims"] if r["id"] == "transfer")
    assert row["verdict"] == "not run" and "transfer_layout" in row["reason"]
    assert claims.verdict_counts(card)["not run"] >= 1 and "not run" in claims.markdown(card)


def test_a_measured_transfer_is_not_marked_not_run():
    rows = [{"train": "A", "test": "B", "method": m, "rank1": 0.5, "mAP": v}
            for m, v in (("DG-Net", 0.4), ("Baseline (teacher)", 0.3))]
    card = claims.scorecard({0: {"transfer": {"rows": rows}}}, "micro")
    row = next(r for r in card["claims"] if r["id"] == "transfer")
    assert row["verdict"] == claims.NOT_TESTABLE and "reason" not in row  # measured, but no probe: not testable


def test_transfer_root_is_required_unless_transfer_is_off(tmp_path, monkeypatch):
    base = preset_dict("micro")
    for layout in ("duke", "synthetic"):
        with pytest.raises(ConfigError, match="transfer_root: missing"):
            config_from_dict({**base, "data": {**base["data"], "transfer_layout": layout, "transfer_root": ""}})
    assert config_from_dict({**base, "data": {**base["data"], "transfer_layout": "none",
                                              "transfer_root": ""}}).data.transfer_layout == "none"
    monkeypatch.chdir(tmp_path)  # a second domain whose folder is missing: one line naming the key
    params = _params(tmp_path, transfer_layout="duke", transfer_root=str(tmp_path / "DukeMTMC-reID"))
    with pytest.raises(UserError, match="data.transfer_root .*DukeMTMC-reID: not found"):
        _run_stage("teacher_b", params, monkeypatch)


# ---------------------------------------------------------------- sweep.alphas: []


def test_empty_alpha_sweep_writes_markers_and_figure8_and_the_claim_say_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = _params(tmp_path, alphas=[])
    assert _run_stage("alpha_sweep", params, monkeypatch) == []
    assert all(Path(out).exists() for out in _outs("alpha_sweep"))
    assert json.loads(Path("models/alpha_sweep/switched_off.json").read_text())["trained"] is False
    _run_stage("evaluate_alpha_sweep", params, monkeypatch)
    doc = json.loads(Path("reports/metrics/alpha_sweep.json").read_text())
    assert doc["run"] is False and doc["points"] == [] and "sweep.alphas is empty" in doc["reason"]

    figures = []
    monkeypatch.setattr(build.io, "save_figure", lambda fig, path, **kw: figures.append(fig))
    main = {key: {"rank1": 0.5, "mAP": 0.4} for key in ("baseline", "f_prim", "f_fine", "f_prim+f_fine")}
    build.figure8(config_from_dict(params), main, doc, {"points": []}, tmp_path / "fig8.png")
    assert "not run" in figures[0].axes[0].get_title()
    figures[0].clf()
    card = claims.scorecard({0: {"table3": main, "alpha_sweep": doc}}, "micro")
    assert next(r for r in card["claims"] if r["id"] == "alpha_peak")["verdict"] == "not run"


def test_a_nonempty_alpha_sweep_trains_one_model_per_alpha(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = _params(tmp_path, alphas=[0.0, 0.5])
    assert _run_stage("alpha_sweep", params, monkeypatch) == ["models/alpha_sweep/dgnet_alpha_0",
                                                               "models/alpha_sweep/dgnet_alpha_0.5"]
    assert not Path("models/alpha_sweep/switched_off.json").exists()


# ---------------------------------------------------------------- the presets


@pytest.mark.parametrize("name, alphas, transfer, extras", [
    ("default", (), "synthetic", False), ("paper", (0.0, 0.5), "synthetic", True),
    ("market1501", (0.0, 0.5), "duke", True), ("duke", (), "market1501", False),
    ("msmt17", (), "none", False), ("cuhk03np", (), "none", False)])
def test_presets_choose_what_they_train(name, alphas, transfer, extras):
    cfg = preset_config(name)
    assert (cfg.sweep.alphas, cfg.data.transfer_layout, cfg.sweep.seeds) == (alphas, transfer, (1, 2))
    assert (cfg.sweep.without_id, cfg.sweep.transfer_b_to_a) == (extras, extras)
    assert bool(switches.alpha_sweep_off(cfg)) == (alphas == ())
    assert bool(switches.transfer_off(cfg)) == (transfer == "none")


# ---------------------------------------------------------------- sweep.without_id, sweep.transfer_b_to_a: false


def test_without_id_and_b_to_a_off_train_nothing_and_the_reports_say_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = _params(tmp_path)
    params["sweep"].update(without_id=False, transfer_b_to_a=False)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for name in ("teacher_b", "train_scratch"):
        assert _run_stage(name, params, monkeypatch) == []
        assert all(Path(out).exists() for out in _outs(name)), name
    assert io.load_checkpoint("models/teacher_b.pt")["kind"] == "not_trained"
    for metrics, key in (("train_teacher_b", "sweep.transfer_b_to_a"), ("train_dgnet_b", "sweep.transfer_b_to_a"),
                         ("train_dgnet_noid", "sweep.without_id")):
        doc = json.loads(Path(f"reports/metrics/{metrics}.json").read_text())
        assert doc["trained"] is False and f"{key} is false" in doc["reason"], metrics

    evaluated = []  # the transfer stage tests the models trained on A on both domains, nothing trained on B

    def direct_transfer(cfg, domains, models):
        evaluated.extend(models)
        return [{"train": "A", "test": t, "method": m, "rank1": 0.5, "mAP": 0.4, "mINP": 0.1}
                for t in domains for m in models["A"]]

    class Run:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def log_metrics(self, metrics):
            pass

    monkeypatch.setattr("dgnet.eval.variants.direct_transfer", direct_transfer)
    monkeypatch.setattr("dgnet.tracking.start_run", lambda *a, **k: Run())
    Path(params["data"]["transfer_root"]).mkdir(parents=True)  # domain B's test set (prepare's, for synthetic)
    _run_stage("transfer", params, monkeypatch)
    doc = json.loads(Path("reports/metrics/transfer.json").read_text())
    assert evaluated == ["A"] and {r["test"] for r in doc["rows"]} == {"A", "B"}
    assert "sweep.transfer_b_to_a is false" in doc["b_to_a"] and not switches.is_marker(doc)
    cfg = config_from_dict(params)
    monkeypatch.setattr(build, "METRICS", tmp_path / "reports/metrics")
    monkeypatch.setattr(build, "REPORTS", tmp_path / "reports")
    build.table9(cfg, doc, {})
    assert "B -> A" in Path("reports/table9.md").read_text()
    main = {key: {"rank1": 0.5, "rank5": 0.6, "rank10": 0.7, "mAP": 0.4}
            for key in ("baseline", "f_prim", "f_fine", "f_prim+f_fine")}
    build.ablation_table(cfg, main, {}, {})
    assert "sweep.without_id is false" in Path("reports/ablations.md").read_text()
    seed0 = claims.load_seed_metrics(0, "reports/metrics", {})
    card = claims.scorecard(seed0, "micro")
    assert next(r for r in card["claims"] if r["id"] == "id_clothing")["verdict"] == "not run"


def test_generator_pretraining_under_scratch_writes_every_output_as_a_marker(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = _params(tmp_path)
    assert params["train"]["generator_init"] == "scratch"
    _run_stage("pretrain_generator", params, monkeypatch)
    assert all(Path(out).exists() for out in _outs("pretrain_generator"))
    assert io.load_checkpoint("models/pretrained_generator.pt")["kind"] == "not_trained"
