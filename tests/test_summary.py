"""The flat metrics of the ``summary`` stage."""

from __future__ import annotations

import json

from dgnet import summary

ROW = {"mAP": 0.5, "rank1": 0.6, "rank5": 0.9, "mINP": 0.1}


def test_every_table_becomes_named_rows_and_timings_are_apart(tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    files = {
        "table3": {"baseline": ROW, "f_prim": ROW, "f_fine": ROW, "f_prim+f_fine": {**ROW, "mAP": 0.7}},
        "alpha_sweep": {"points": [{"alpha": 0.5, "mAP": 0.4, "rank1": 0.5}]},
        "beta_sweep": {"points": [{"beta": 1.0, "mAP": 0.3, "rank1": 0.4}]},
        "transfer": {"rows": [{"train": "A", "test": "B", "method": "DG-Net", "mAP": 0.2, "rank1": 0.25},
                              {"train": "A", "test": "B", "method": "Baseline (teacher)", "mAP": 0.1, "rank1": 0.2}]},
        "ablations": {"w/o feed": {"f_prim+f_fine": ROW}},
        "train_dgnet": {"train_seconds": 12.5, "iterations": 6, "loss/total": 3.0},
        "generation": {"seconds": {"total": 4.0}, "table2": {}},
    }
    for name, data in files.items():
        (metrics / f"{name}.json").write_text(json.dumps(data))
    (tmp_path / "summary").mkdir()
    (tmp_path / "summary" / "stale.json").write_text("{}")

    rows = summary.write_summary(metrics, tmp_path / "summary", alpha=0.2)
    summary.write_timings(metrics, tmp_path / "timings.json")
    assert rows["table3.f_prim_f_fine"] == {"mAP": 0.7, "rank1": 0.6}
    assert rows["figure8.alpha_0.2"]["mAP"] == 0.7  # the main model is the curve's point at train.alpha
    assert rows["figure8.alpha_0.5"] == {"mAP": 0.4, "rank1": 0.5}
    assert rows["figure8.beta_1"] == {"mAP": 0.3, "rank1": 0.4}
    assert rows["table9.A_to_B.dgnet"] == {"mAP": 0.2, "rank1": 0.25}
    assert rows["table9.A_to_B.baseline"]["rank1"] == 0.2
    assert rows["ablations.w_o_feed"] == {"mAP": 0.5, "rank1": 0.6}
    written = sorted(p.name for p in (tmp_path / "summary").iterdir())
    assert written == sorted(f"{name}.json" for name in rows)  # the stale file is gone
    assert json.loads((tmp_path / "timings.json").read_text()) == {"generation.seconds.total": 4.0,
                                                                   "train_dgnet.train_seconds": 12.5}


def test_the_graph_cost_adds_each_stage_of_the_current_graph_over_the_default_step(tmp_path, monkeypatch):
    from dgnet import stage_seconds

    (tmp_path / "dvc.yaml").write_text("stages:\n  prepare: {cmd: a}\n  replicate: {foreach: '${sweep.seeds}', "
                                       "do: {cmd: b}}\n  timings: {cmd: c}\n")
    (tmp_path / "params.yaml").write_text("sweep: {seeds: [1, 2]}\n")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    for stage in ("prepare", "replicate@1", "replicate@3", "timings"):  # @3: no longer in the graph
        monkeypatch.setenv("DVC_STAGE", stage)
        stage_seconds.record()
    records = {p.stem: json.loads(p.read_text()) for p in (tmp_path / stage_seconds.FOLDER).glob("*.json")}
    assert set(records) == {"prepare", "replicate@1", "replicate@3", "timings"}
    assert all(r["wall_seconds"] > 0 for r in records.values())  # from the interpreter's start
    (tmp_path / stage_seconds.FOLDER / "prepare.json").write_text(json.dumps({"wall_seconds": 30.0}))
    (tmp_path / stage_seconds.FOLDER / "replicate@1.json").write_text(json.dumps({"wall_seconds": 10.0}))

    cost = stage_seconds.graph_cost(tmp_path, step_seconds=0.5)
    assert cost["stage_wall_seconds"] == {"prepare": 30.0, "replicate@1": 10.0}
    assert cost["stages_without_a_record"] == ["replicate@2"]
    assert (cost["graph_wall_seconds"], cost["default_step_equivalents"]) == (40.0, 80)


def test_under_dvc_the_seconds_leave_the_outputs_and_timings_read_them_back(tmp_path, monkeypatch):
    from dgnet import stage_seconds

    monkeypatch.chdir(tmp_path)
    doc = {"iterations": 6, "train_seconds": 12.5, "seconds": {"total": 4.0}}
    stage_seconds.write_metrics("reports/metrics/train_x.json", doc)  # outside DVC: written whole
    assert json.loads((tmp_path / "reports/metrics/train_x.json").read_text()) == doc

    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.setenv("DVC_STAGE", "train_x")
    stage_seconds.write_metrics("reports/metrics/train_x.json", doc)
    stage_seconds.write_metrics("reports/metrics/train_y.json", {**doc, "train_seconds": 99.0})
    assert json.loads((tmp_path / "reports/metrics/train_x.json").read_text()) == {"iterations": 6}
    moved = tmp_path / stage_seconds.MOVED / "reports/metrics/train_x.json"
    assert json.loads(moved.read_text()) == {"train_seconds": 12.5, "seconds": {"total": 4.0}}
    # the same run again: the output's bytes do not change, only the moved seconds
    before = (tmp_path / "reports/metrics/train_x.json").read_bytes()
    stage_seconds.write_metrics("reports/metrics/train_x.json", {**doc, "train_seconds": 13.0})
    assert (tmp_path / "reports/metrics/train_x.json").read_bytes() == before

    timings = summary.write_timings("reports/metrics", "reports/metrics/timings.json")
    assert timings["train_x.train_seconds"] == 13.0 and timings["train_y.train_seconds"] == 99.0
    assert timings["train_x.seconds.total"] == 4.0
