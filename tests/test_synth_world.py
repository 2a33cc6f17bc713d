"""The synthetic world: ``data.synth.world`` (classic | readable)."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
from pathlib import Path

import pytest

from dgnet.config import ConfigError, SynthConfig, config_from_dict
from dgnet.data.layouts import load_layout
from dgnet.data.synth import write_synthetic

TINY = SynthConfig(train_ids=5, test_ids=4, distractors=3, junk=2, images_per_camera=2,
                   cameras=3, seed=7, height=32, width=16, world="classic")
# digest of the tiny classic set, computed with the code before the readable world existed, then
# again once the images' gamma moved to float64 (the same on AVX-512 and AVX2 CPUs)
CLASSIC_TINY_SHA256 = "0c7e6d7d0c34b13bb7cef988105aefc97f4623d112b284acaa5b6dc612d116f6"


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_classic_world_is_unchanged(tmp_path):
    write_synthetic(tmp_path / "classic", TINY)
    assert _digest(tmp_path / "classic") == CLASSIC_TINY_SHA256


def test_world_key_validates():
    assert config_from_dict({"data": {"synth": {"world": "readable"}}}).data.synth.world == "readable"
    assert config_from_dict({}).data.synth.world == "readable"  # the default since issue 25
    with pytest.raises(ConfigError, match=r"data\.synth\.world"):
        config_from_dict({"data": {"synth": {"world": "fancy"}}})


@pytest.mark.parametrize("style", ["A", "P"])
def test_readable_world_is_a_deterministic_market_layout(tmp_path, style):
    cfg = dataclasses.replace(TINY, world="readable", style=style)
    write_synthetic(tmp_path / "one", cfg)
    write_synthetic(tmp_path / "two", cfg)
    assert _digest(tmp_path / "one") == _digest(tmp_path / "two") != CLASSIC_TINY_SHA256
    splits = load_layout("market1501", tmp_path / "one")
    assert len({s.pid for s in splits.train}) == TINY.train_ids
    assert len({s.pid for s in splits.query}) == TINY.test_ids
    gallery = [s.pid for s in splits.gallery]
    assert gallery.count(0) == TINY.distractors and gallery.count(-1) == TINY.junk


def test_readable_world_keeps_colour_twins(tmp_path):
    cfg = dataclasses.replace(TINY, world="readable", train_ids=20, test_ids=20, images_per_camera=1)
    write_synthetic(tmp_path / "set", cfg)
    with open(tmp_path / "set" / "attributes.csv", newline="") as fh:
        people = {r["pid"]: r for r in csv.DictReader(fh) if int(r["pid"]) > 0}
    by_colours: dict[tuple, list[dict]] = {}
    for r in people.values():
        by_colours.setdefault((r["top_color"], r["bottom_color"]), []).append(r)
    twins = [group for group in by_colours.values() if len(group) > 1]
    assert twins, "no two identities wear the same top and bottom colours"
    cues = ("top_texture", "sleeves", "shoe_color", "hair_color", "hair_long", "bag")
    assert all(any(len({r[c] for r in group}) > 1 for c in cues) for group in twins)


def test_cli_synth_world(tmp_path):
    from dgnet.cli import main as cli_main

    args = ["data", "synth", "--ids", "3", "--seed", "2", "--size", "32x16"]
    assert cli_main([*args, "--out", str(tmp_path / "r"), "--world", "classic"]) == 0
    assert cli_main([*args, "--out", str(tmp_path / "c")]) == 0  # the default world, readable
    assert _digest(tmp_path / "r") != _digest(tmp_path / "c")
    with pytest.raises(SystemExit):  # argparse: not one of the choices
        cli_main([*args, "--out", str(tmp_path / "x"), "--world", "fancy"])
