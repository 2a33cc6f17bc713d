"""The DVC graph's declarations: exact params, cached models, flat metrics (no DVC run needed)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TRAINING = {"pretrain", "pretrain_generator", "teacher", "teacher_b", "train_warm", "train_dgnet", "train_noid", "train_dgnet_b",
            "offline", "alpha_sweep", "replicate_train", "probe"}
PERFORMANCE_ONLY = ("runtime", "runtime.threads", "data", "data.cache_images", "data.num_workers")


def _stages() -> dict:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}


def _outs(stage: dict) -> dict[str, dict]:
    out = {}
    for kind in ("outs", "metrics", "plots"):
        for entry in stage.get(kind, []):
            path, opts = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
            out[path] = opts or {}
    return out


def test_every_training_stage_is_known_and_reads_no_test_time_key():
    stages = _stages()
    trains = {name for name, s in stages.items() if any(p.startswith("models/") for p in _outs(s))}
    assert trains == TRAINING
    for name in trains:
        params = stages[name]["params"]
        assert not [p for p in params if p == "eval" or p.startswith(("eval.", "sweep.betas"))], name
        assert not [p for p in params if p in PERFORMANCE_ONLY], name  # speed knobs retrain nothing


def test_each_network_is_evaluated_by_another_stage():
    """A stage that writes a model writes no accuracy (those stages read eval.*)."""
    stages = _stages()
    for name in TRAINING:
        accuracy = [p for p in _outs(stages[name]) if p.endswith(".json") and "/train_" not in p
                    and not p.endswith(("pretrain.json", "pretrain_generator.json", "train.json"))]
        assert accuracy == [], (name, accuracy)


def test_models_and_data_are_cached_and_reports_are_in_git():
    for name, stage in _stages().items():
        for path, opts in _outs(stage).items():
            cached = opts.get("cache", True)
            if path.startswith(("models/", "data/")):
                assert cached, (name, path)
            else:
                assert path.startswith("reports/") and not cached, (name, path)


def test_only_the_flat_summary_is_declared_as_metrics_and_figure8_is_a_plot():
    declared = [(name, path) for name, stage in _stages().items()
                for path in _outs({"metrics": stage.get("metrics", [])})]
    assert declared == [("summary", "reports/metrics/summary")]
    plots = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    titles = [next(iter(p)) for p in plots]
    assert any("Figure 8" in t and "alpha" in t for t in titles)
    assert any("training" in t for t in titles)


def test_stages_a_real_data_configuration_does_not_need_train_nothing(tmp_path, monkeypatch, capsys):
    """market1501 (ImageNet backbone, no ground-truth attributes): ``pretrain`` and ``probe`` write markers
    saying why, not a trained model, so the graph is the same and nothing is trained."""
    import runpy
    import sys

    import torch

    from dgnet.config import config_to_dict, preset_config

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(config_to_dict(preset_config("market1501"))))
    monkeypatch.chdir(tmp_path)
    for script in ("pretrain.py", "probe.py"):
        monkeypatch.setattr(sys, "argv", [script, "--quiet"] if script == "probe.py" else [script])
        runpy.run_path(str(ROOT / "pipelines" / script), run_name="not_main")["main"]()
    for marker, metrics in (("models/pretrained_backbone.pth", "pretrain.json"),
                            ("models/attribute_probe.pt", "train_probe.json")):
        assert torch.load(marker, weights_only=True)["kind"] == "not_trained"
        doc = json.loads((tmp_path / "reports" / "metrics" / metrics).read_text())
        assert doc["trained"] is False and doc["train_seconds"] == 0.0 and "not trained" in doc["reason"]
    assert "imagenet" in (tmp_path / "data" / "pretrain" / "README.txt").read_text()
    # the default's backbone is the pretrain stage's trunk, word for word, so that stage still trains there
    assert preset_config("default").model.backbone.pretrained == "models/pretrained_backbone.pth"
