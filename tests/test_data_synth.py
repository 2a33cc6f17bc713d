"""Synthetic pedestrians: determinism, Market-1501 layout, attributes, CLI and prepare stage."""

from __future__ import annotations

import csv
import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from dgnet.cli import main as cli_main
from dgnet.config import DataConfig, SynthConfig
from dgnet.data.commands import prepare_data
from dgnet.data.layouts import load_layout
from dgnet.data.synth import MULTI_QUERY_EXTRA, save_example_grid, write_synthetic
from dgnet.errors import UserError

TINY = SynthConfig(train_ids=5, test_ids=4, distractors=3, junk=2, images_per_camera=2,
                   cameras=3, seed=7, height=32, width=16)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _rows(root: Path) -> list[dict]:
    with open(root / "attributes.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synth") / "synth_a"
    return root, write_synthetic(root, TINY)


def test_same_seed_same_bytes_other_seed_differs(tiny, tmp_path):
    root, _ = tiny
    again = tmp_path / "again"
    write_synthetic(again, TINY)
    a, b = _files(root), _files(again)
    assert a.keys() == b.keys() and len(a) > 20
    assert all(a[k] == b[k] for k in a)
    other = tmp_path / "other"
    write_synthetic(other, SynthConfig(**{**TINY.__dict__, "seed": 8}))
    c = _files(other)
    assert a["attributes.csv"] != c["attributes.csv"]
    assert set(a) != set(c) or any(a[k] != c[k] for k in a)


def test_style_b_is_another_domain(tiny, tmp_path):
    root, _ = tiny
    b_root = tmp_path / "b"
    write_synthetic(b_root, SynthConfig(**{**TINY.__dict__, "style": "B"}))

    def mean_colour(r: Path) -> np.ndarray:
        imgs = [np.asarray(Image.open(p), np.float32) for p in sorted((r / "bounding_box_test").glob("*.jpg"))]
        return np.mean([im.reshape(-1, 3).mean(0) for im in imgs], axis=0)

    a_mean, b_mean = mean_colour(root), mean_colour(b_root)
    # style B: cooler (blue above red) and darker than the warm style A
    assert b_mean[2] - b_mean[0] > a_mean[2] - a_mean[0] + 5
    assert b_mean.mean() < a_mean.mean()


def test_read_back_by_market_parser_with_expected_counts(tiny):
    root, summary = tiny
    splits = load_layout("market1501", root)
    rows = _rows(root)
    train_pids = {s.pid for s in splits.train}
    query_pids = {s.pid for s in splits.query}
    gallery_pids = {s.pid for s in splits.gallery}
    assert len(train_pids) == TINY.train_ids and len(query_pids) == TINY.test_ids
    assert train_pids.isdisjoint(query_pids | gallery_pids)
    assert gallery_pids == query_pids | {0, -1}
    assert sum(s.pid == 0 for s in splits.gallery) == TINY.distractors
    assert sum(s.pid == -1 for s in splits.gallery) == TINY.junk
    # every train id: images_per_camera images in each of 2..cameras cameras
    per_id_cam = defaultdict(int)
    for s in splits.train:
        per_id_cam[s.pid, s.camid] += 1
    assert set(per_id_cam.values()) == {TINY.images_per_camera}
    cams_per_id = defaultdict(set)
    for pid, cam in per_id_cam:
        cams_per_id[pid].add(cam)
    assert all(2 <= len(c) <= TINY.cameras for c in cams_per_id.values())
    assert summary["train"] == {"ids": TINY.train_ids, "images": len(splits.train)}
    assert summary["query"] == {"ids": TINY.test_ids, "images": len(splits.query)}
    assert summary["gallery"]["images"] == len(splits.gallery)
    assert len(rows) == len(splits.train) + len(splits.query) + len(splits.gallery) + len(splits.multi_query)


def test_queries_have_cross_camera_matches_and_multi_query(tiny):
    root, _ = tiny
    splits = load_layout("market1501", root)
    gallery = {(s.pid, s.camid) for s in splits.gallery}
    seen = set()
    for q in splits.query:
        assert (q.pid, q.camid) not in seen  # one query per id and camera
        seen.add((q.pid, q.camid))
        assert any(pid == q.pid and cam != q.camid for pid, cam in gallery)
    mq = defaultdict(list)
    for s in splits.multi_query:
        mq[s.pid, s.camid].append(Path(s.path).name)
    assert set(mq) == seen
    for q in splits.query:
        names = mq[q.pid, q.camid]
        assert Path(q.path).name in names and len(names) == 1 + MULTI_QUERY_EXTRA


def test_names_sizes_and_format(tiny):
    root, _ = tiny
    names = [p.name for p in root.rglob("*.jpg")]
    assert any(n.startswith("-1_c") for n in names) and any(n.startswith("0000_c") for n in names)
    for p in list((root / "query").glob("*.jpg"))[:5]:
        with Image.open(p) as im:
            assert im.format == "JPEG" and im.size == (TINY.width, TINY.height) and im.mode == "RGB"


def test_attributes_csv_matches_images(tiny):
    root, _ = tiny
    rows = _rows(root)
    files = {str(p.relative_to(root)) for p in root.rglob("*.jpg")}
    assert {r["file"] for r in rows} == files
    folder = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test",
              "gt_bbox": "gt_bbox"}
    for r in rows:
        name = Path(r["file"]).name
        pid, cam = name.split("_")[0], name.split("_")[1]
        assert int(pid) == int(r["pid"]) and int(cam[1:cam.index("s")]) - 1 == int(r["camid"])
        assert r["file"].startswith(folder[r["split"]] + "/")
        if int(r["pid"]) > 0:
            assert r["kind"] == "person" and r["view"] in ("front", "back", "side")
            assert r["top_texture"] in ("solid", "stripes", "dots", "checks")
        elif int(r["pid"]) == -1:
            assert r["kind"] == "partial"
        else:
            assert r["kind"] in ("person", "background")
    # identity attributes are constant per pid; per-image ones vary
    by_pid = defaultdict(set)
    for r in rows:
        if int(r["pid"]) > 0:
            by_pid[r["pid"]].add((r["top_color"], r["top_texture"], r["bottom_color"], r["hair_color"],
                                  r["bag"], r["height_factor"]))
    assert all(len(v) == 1 for v in by_pid.values())
    assert len({r["phase"] for r in rows if r["split"] == "train"}) > 10


def test_existing_output_is_protected(tiny, tmp_path):
    root, _ = tiny
    with pytest.raises(UserError, match="already exists"):
        write_synthetic(root, TINY)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=r"precious: exists and is not a synthetic data set"):
        write_synthetic(precious, TINY, overwrite=True)
    assert (precious / "notes.txt").read_text() == "mine"


def test_overwrite_replaces_and_leaves_no_temp(tmp_path):
    root = tmp_path / "s"
    write_synthetic(root, TINY)
    (root / "query" / "stale.jpg").write_bytes(b"x")
    write_synthetic(root, TINY, overwrite=True)
    assert not (root / "query" / "stale.jpg").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["s"]


def test_too_many_ids():
    with pytest.raises(UserError, match="<= 9999"):
        write_synthetic(Path("/nonexistent/x"), SynthConfig(train_ids=5000, test_ids=5000))


def test_example_grid(tiny, tmp_path):
    root, _ = tiny
    out = tmp_path / "fig" / "grid.png"
    save_example_grid(root, out, rows=3, cols=4)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100


def test_cli_synth(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["data", "synth", "--out", str(out), "--ids", "3", "--seed", "2", "--size", "32x16", "--style", "B"]
    assert cli_main(args) == 0
    assert "style B, seed 2, 32x16" in capsys.readouterr().out
    splits = load_layout("synthetic", out)
    assert len({s.pid for s in splits.train}) == 3 and len({s.pid for s in splits.query}) == 3
    assert cli_main(args) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert cli_main(args + ["--force"]) == 0
    assert cli_main(["data", "synth", "--out", str(tmp_path / "x"), "--size", "32by16"]) == 2
    assert "--size: expected HEIGHTxWIDTH" in capsys.readouterr().err
    assert cli_main(["data", "synth", "--out", str(tmp_path / "x"), "--ids", "1"]) == 2
    assert "train_ids" in capsys.readouterr().err


def test_prepare_data_synthetic_writes_both_domains(tmp_path):
    cfg = DataConfig(root=str(tmp_path / "prepared" / "synth_a"), synth=TINY)
    result = prepare_data(cfg, tmp_path / "prepared", tmp_path / "fig.png")
    assert result["train"]["ids"] == TINY.train_ids and result["warnings"] == []
    assert result["synth_b"]["train"]["ids"] == TINY.train_ids
    b_rows = _rows(tmp_path / "prepared" / "synth_b")
    assert b_rows and (tmp_path / "fig.png").is_file()
    assert b_rows != _rows(tmp_path / "prepared" / "synth_a")
    index = json.loads((tmp_path / "prepared" / "index.json").read_text())
    assert index["layout"] == "synthetic" and index["counts"]["query"] == result["query"]


def _prepare_stage():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "prepare_stage", Path(__file__).resolve().parent.parent / "pipelines" / "prepare.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    return stage


def test_prepare_pipeline_main(tmp_path, monkeypatch):
    from dgnet.entry import run_guarded

    stage = _prepare_stage()
    monkeypatch.chdir(tmp_path)
    params = {"data": {"root": "data/prepared/synth_a", "synth": {**TINY.__dict__}}}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    Path("data/prepared/synth_a").mkdir(parents=True)
    Path("data/prepared/synth_a/attributes.csv").write_text("old run\n")
    assert stage.main([]) == 0
    metrics = json.loads(Path("reports/metrics/data.json").read_text())
    assert set(metrics) == {"train", "query", "gallery", "synth_b"}
    assert metrics["train"]["ids"] == TINY.train_ids
    assert Path("reports/figures/synth_examples.png").is_file()
    assert Path("data/prepared/synth_b/attributes.csv").is_file()
    # a real layout with a broken root: one error line, non-zero exit
    Path("params.yaml").write_text(yaml.safe_dump({"data": {"layout": "duke", "root": "missing"}}))
    assert run_guarded(lambda: stage.main([])) == 2


# sha256 over (path, bytes) of data/prepared and reports/metrics/data.json after `prepare` on TINY
PREPARED_SHA256 = "7318a513f0cbb03e1aa077c37564dc03b0453e6fa5521477d1ce571a01d41126"


def _tree_sha256(root: Path, paths: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for path in paths:
        files = [root / path] if (root / path).is_file() else sorted(p for p in (root / path).rglob("*") if p.is_file())
        for f in files:
            h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def test_prepare_writes_the_same_bytes_in_any_folder_and_they_are_pinned(tmp_path, monkeypatch):
    """Two fresh folders, the same bytes; a changed byte (code, NumPy, Pillow, the CPU's SIMD) fails the pin."""
    stage = _prepare_stage()
    data, figures = [], []
    for folder in (tmp_path / "one", tmp_path / "two" / "deeper"):
        folder.mkdir(parents=True)
        monkeypatch.chdir(folder)
        Path("params.yaml").write_text(yaml.safe_dump({"data": {"root": "data/prepared/synth_a",
                                                                "synth": {**TINY.__dict__}}}))
        assert stage.main([]) == 0
        data.append(_tree_sha256(folder, ("data/prepared", "reports/metrics/data.json")))
        figures.append(_tree_sha256(folder, ("reports/figures/synth_examples.png",)))
    assert data[0] == data[1] and figures[0] == figures[1]
    assert data[0] == PREPARED_SHA256
