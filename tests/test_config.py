"""Config loading: presets validate, and every bad value names its key."""

from pathlib import Path

import pytest
import yaml

from dgnet.config import (
    PRESET_CHAIN,
    ConfigError,
    config_from_dict,
    config_to_dict,
    load_config,
    preset_config,
    preset_dict,
    replace,
)
from dgnet.config_commands import use_preset

ROOT = Path(__file__).resolve().parent.parent


def test_params_yaml_is_the_default_preset():
    on_disk = load_config(ROOT / "params.yaml")
    assert on_disk == preset_config("default")


@pytest.mark.parametrize("name", list(PRESET_CHAIN))
def test_every_preset_validates(name):
    cfg = preset_config(name)
    assert cfg.name == name


def test_paper_preset_has_the_papers_values():
    cfg = preset_config("market1501")
    assert (cfg.data.height, cfg.data.width) == (256, 128)
    assert cfg.model.backbone.arch == "resnet50"
    assert cfg.train.iterations == 100_000
    assert cfg.train.warm_iter == 30_000 and cfg.train.ramp_iters == 4_000
    assert cfg.train.lambda_img == 5.0 and cfg.train.lambda_id == 0.5
    assert cfg.train.lambda_prim_max == 2.0 and cfg.train.alpha == 0.2
    assert cfg.eval.beta == 0.5
    assert cfg.data.layout == "market1501"
    assert preset_config("msmt17").train.iterations == 150_000


@pytest.mark.parametrize(
    "data, key, expected",
    [
        ({"train": {"alphaa": 0.1}}, "train.alphaa", "unknown key"),
        ({"bogus": 1}, "bogus", "unknown key"),
        ({"train": {"alpha": 1.5}}, "train.alpha", "<= 1"),
        ({"train": {"alpha": -0.1}}, "train.alpha", ">= 0"),
        ({"train": {"lr_appearance": -0.01}}, "train.lr_appearance", "> 0"),
        ({"train": {"lr_generator": 0}}, "train.lr_generator", "> 0"),
        ({"train": {"iterations": "many"}}, "train.iterations", "integer"),
        ({"train": {"iterations": 10.5}}, "train.iterations", "integer"),
        ({"train": {"feed_generated": "yes"}}, "train.feed_generated", "true or false"),
        ({"data": {"height": 66}}, "data.height", "divisible by 4"),
        ({"data": {"layout": "cifar"}}, "data.layout", "one of"),
        ({"data": {"synth": {"style": "C"}}}, "data.synth.style", "one of"),
        ({"model": {"structure": {"widths": "16"}}}, "model.structure.widths", "list of int"),
        ({"train": {"lr_steps": [10, "x"]}}, "train.lr_steps[1]", "integer"),
        ({"eval": 3}, "eval", "mapping"),
    ],
)
def test_bad_values_name_the_key(data, key, expected):
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    assert key in str(err.value) and expected in str(err.value)


def test_load_config_names_the_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"train": {"alpha": 2}}))
    with pytest.raises(ConfigError, match=r"params.yaml: train.alpha"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    path.write_text("train: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_config_is_frozen_and_replace_does_not_mutate():
    cfg = preset_config("default")
    with pytest.raises(AttributeError):
        cfg.train.alpha = 0.9  # type: ignore[misc]
    other = replace(cfg, **{"train.alpha": 0.9, "eval.beta": 1.0})
    assert other.train.alpha == 0.9 and other.eval.beta == 1.0
    assert cfg.train.alpha == 0.2 and cfg.eval.beta == 0.5


def test_round_trip_through_dict():
    cfg = preset_config("paper")
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_use_preset_writes_a_valid_params_file(tmp_path):
    out = tmp_path / "params.yaml"
    use_preset("duke", out, data_root="/data/DukeMTMC-reID")
    cfg = load_config(out)
    assert cfg.data.layout == "duke" and cfg.data.root == "/data/DukeMTMC-reID"
    assert cfg.name == "duke"


def test_use_preset_sets_keys_in_the_written_file_and_refuses_an_unknown_one(tmp_path):
    out = tmp_path / "params.yaml"
    use_preset("market1501", out, overrides=["train.iterations=12", "sweep.seeds=[]", "model.backbone.arch=small"])
    cfg = load_config(out)
    assert cfg.train.iterations == 12 and cfg.sweep.seeds == () and cfg.model.backbone.arch == "small"
    assert cfg.data.layout == "market1501"
    with pytest.raises(ConfigError, match="train.iterationz: unknown key"):
        use_preset("market1501", tmp_path / "other.yaml", overrides=["train.iterationz=12"])
    assert not (tmp_path / "other.yaml").exists()


def test_presets_only_override_known_keys():
    # every preset file must merge into a valid config (a typo would raise)
    for name in PRESET_CHAIN:
        preset_dict(name)


def test_apply_overrides_validates_each_assignment():
    from dgnet.config import apply_overrides

    cfg = apply_overrides(preset_config("default"), ["train.alpha=0.5", "train.feed_generated=false"])
    assert cfg.train.alpha == 0.5 and cfg.train.feed_generated is False
    with pytest.raises(ConfigError, match="train.alpha"):
        apply_overrides(cfg, ["train.alpha=3"])
    with pytest.raises(ConfigError, match="unknown key"):
        apply_overrides(cfg, ["train.alhpa=0.1"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides(cfg, ["train.alpha"])


def test_code_defaults_are_the_default_preset():
    """``Config()`` built in code is the model the pipeline trains: every field equals configs/default.yaml's."""
    from dgnet.config import Config, flatten

    code = flatten(config_to_dict(Config()))
    preset = flatten(config_to_dict(preset_config("default")))
    assert code.keys() == preset.keys()
    differ = {k: (code[k], preset[k]) for k in code if code[k] != preset[k] or type(code[k]) is not type(preset[k])}
    assert not differ, f"dataclass default != configs/default.yaml (code, preset): {differ}"
    assert Config() == preset_config("default")
