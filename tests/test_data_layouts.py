"""Layout parsers, check_layout and ``dgnet data check`` on small trees built here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from dgnet.cli import main as cli_main
from dgnet.data.layouts import (
    DataLayoutError,
    Sample,
    check_layout,
    count_warnings,
    load_layout,
    relabel,
)
from dgnet.errors import UserError


def _img(path: Path, color=(120, 60, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "PNG" if path.suffix == ".png" else "JPEG"
    Image.new("RGB", (4, 8), color).save(path, fmt)


MARKET = {
    "bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000551_01.jpg",
                           "0007_c1s2_000100_01.jpg", "0007_c3s1_000200_02.jpg",
                           "0007_c6s1_000300_01.jpg"],
    "query": ["0001_c1s1_001051_00.jpg", "0003_c2s1_000101_01.jpg"],
    "bounding_box_test": ["0001_c2s1_000301_01.jpg", "0003_c1s1_000401_01.jpg",
                          "0003_c4s1_000402_01.jpg", "0000_c1s1_000500_02.jpg",
                          "-1_c3s1_000600_03.jpg"],
    "gt_bbox": ["0001_c1s1_001051_00.jpg", "0001_c1s1_001060_00.jpg", "0003_c2s1_000101_01.jpg"],
}


def _market_tree(root: Path, names=MARKET) -> Path:
    for folder, files in names.items():
        for name in files:
            _img(root / folder / name)
    (root / "bounding_box_test" / "Thumbs.db").write_bytes(b"not an image")  # real Market has these
    return root


def test_market_parser_counts_junk_distractors_and_cameras(tmp_path):
    splits = load_layout("market1501", _market_tree(tmp_path / "m"))
    assert len(splits.train) == 5 and {s.pid for s in splits.train} == {2, 7}
    assert [s.camid for s in splits.train if s.pid == 7] == [0, 2, 5]  # c1, c3, c6 -> 0-based
    assert len(splits.query) == 2
    gallery_pids = sorted(s.pid for s in splits.gallery)
    assert gallery_pids == [-1, 0, 1, 3, 3]  # junk and distractors kept, Thumbs.db ignored
    assert len(splits.multi_query) == 3
    assert all(Path(s.path).is_file() for s in splits.train + splits.gallery)


def test_synthetic_layout_is_market(tmp_path):
    root = _market_tree(tmp_path / "m")
    assert load_layout("synthetic", root) == load_layout("market1501", root)


def test_market_junk_dropped_from_train_and_gt_bbox_optional(tmp_path):
    names = {k: list(v) for k, v in MARKET.items() if k != "gt_bbox"}
    names["bounding_box_train"].append("-1_c1s1_000999_01.jpg")
    splits = load_layout("market1501", _market_tree(tmp_path / "m", names))
    assert -1 not in {s.pid for s in splits.train} and len(splits.train) == 5
    assert splits.multi_query == ()


def test_duke_parser(tmp_path):
    root = tmp_path / "duke"
    for folder, names in {
        "bounding_box_train": ["0001_c2_f0046182.jpg", "0001_c5_f0051001.jpg", "0004_c1_f0001234.jpg"],
        "query": ["0005_c2_f0046999.jpg"],
        "bounding_box_test": ["0005_c3_f0047000.jpg", "0019_c8_f0000001.jpg"],
    }.items():
        for name in names:
            _img(root / folder / name)
    splits = load_layout("duke", root)
    assert [(s.pid, s.camid) for s in splits.train] == [(1, 1), (1, 4), (4, 0)]
    assert [(s.pid, s.camid) for s in splits.gallery] == [(5, 2), (19, 7)]
    assert splits.multi_query == ()


def _cuhk_tree(root: Path, subset="labeled") -> Path:
    for folder, names in {
        "bounding_box_train": ["0001_c1_1.png", "0001_c2_6.png", "0002_c1_1.png", "0002_c2_7.png"],
        "query": ["0003_c1_2.png", "0004_c2_8.png"],
        "bounding_box_test": ["0003_c2_6.png", "0004_c1_1.png", "0004_c1_3.png"],
    }.items():
        for name in names:
            _img(root / subset / folder / name)
    return root


def test_cuhk03np_parser_both_subsets(tmp_path):
    root = _cuhk_tree(tmp_path / "cuhk")
    _cuhk_tree(root, "detected")
    for subset in ("labeled", "detected"):
        splits = load_layout("cuhk03np", root, subset)
        assert len(splits.train) == 4 and len(splits.query) == 2 and len(splits.gallery) == 3
        assert all(f"/{subset}/" in s.path for s in splits.train)
        assert {s.camid for s in splits.train} == {0, 1}


def test_cuhk03np_missing_subset_is_named(tmp_path):
    root = _cuhk_tree(tmp_path / "cuhk")
    with pytest.raises(DataLayoutError, match=r"detected.*missing split folder"):
        load_layout("cuhk03np", root, "detected")


def _msmt_tree(root: Path) -> Path:
    lists = {
        ("train", "list_train.txt"): [("0000/0000_000_01_0303morning_0015_0.jpg", 0),
                                      ("0000/0000_001_05_0303morning_0016_1.jpg", 0),
                                      ("0001/0001_000_12_0303noon_0100_0.jpg", 1)],
        ("train", "list_val.txt"): [("0002/0002_000_03_0303noon_0200_0.jpg", 2)],
        ("test", "list_query.txt"): [("0000/0000_000_02_0303morning_0015_0.jpg", 0)],
        ("test", "list_gallery.txt"): [("0000/0000_003_15_0303morning_0016_0.jpg", 0),
                                       ("0001/0001_000_04_0303noon_0100_0.jpg", 1)],
    }
    for (folder, list_name), entries in lists.items():
        for rel, _ in entries:
            _img(root / folder / rel)
        (root / list_name).write_text("".join(f"{rel} {pid}\n" for rel, pid in entries))
    return root


def test_msmt17_parser_train_plus_val_and_cameras(tmp_path):
    splits = load_layout("msmt17", _msmt_tree(tmp_path / "msmt"))
    assert [(s.pid, s.camid) for s in splits.train] == [(0, 0), (0, 4), (1, 11), (2, 2)]
    assert [(s.pid, s.camid) for s in splits.query] == [(0, 1)]
    assert [(s.pid, s.camid) for s in splits.gallery] == [(0, 14), (1, 3)]
    assert all("/test/" in s.path for s in splits.query + splits.gallery)


@pytest.mark.parametrize(
    "line, message",
    [
        ("0000/0000_009_01_0303morning_0099_0.jpg 0", r"list_train.txt line 4: image .* does not exist"),
        ("../../outside/0000_000_01_0303morning_0015_0.jpg 0", r"list_train.txt line 4: .*outside ROOT"),
        ("0000/0000_000_01_0303morning_0015_0.jpg", r"list_train.txt line 4: expected '.*e\.g\. 0000/"),
        ("0000/badname.jpg 0", r"list_train.txt line 4: file name 'badname.jpg' does not parse"),
    ],
)
def test_msmt17_bad_list_lines(tmp_path, line, message):
    root = _msmt_tree(tmp_path / "msmt")
    with open(root / "list_train.txt", "a") as fh:
        fh.write(line + "\n")
    with pytest.raises(DataLayoutError, match=message):
        load_layout("msmt17", root)


def test_msmt17_missing_list_file(tmp_path):
    root = _msmt_tree(tmp_path / "msmt")
    (root / "list_gallery.txt").unlink()
    with pytest.raises(DataLayoutError, match=r"list_gallery.txt: missing list file"):
        load_layout("msmt17", root)


def test_missing_split_folder_is_named(tmp_path):
    root = _market_tree(tmp_path / "m")
    for p in (root / "query").iterdir():
        p.unlink()
    (root / "query").rmdir()
    with pytest.raises(DataLayoutError, match=r"query: missing split folder query/ \(expected Market-1501"):
        load_layout("market1501", root)


def test_missing_root(tmp_path):
    with pytest.raises(DataLayoutError, match=r"nowhere: data-set root not found"):
        load_layout("duke", tmp_path / "nowhere")


def test_unparsable_name_is_named_with_pattern(tmp_path):
    root = _market_tree(tmp_path / "m")
    _img(root / "bounding_box_train" / "person_7.jpg")
    with pytest.raises(DataLayoutError) as err:
        load_layout("market1501", root)
    assert "person_7.jpg: file name does not parse" in str(err.value)
    assert "e.g. 0002_c1s1_000451_03.jpg" in str(err.value)
    assert isinstance(err.value, UserError)


def test_duke_names_do_not_parse_as_market(tmp_path):
    root = tmp_path / "d"
    for folder in ("bounding_box_train", "query", "bounding_box_test"):
        _img(root / folder / "0001_c2_f0046182.jpg")
    load_layout("duke", root)
    with pytest.raises(DataLayoutError, match="0001_c2_f0046182.jpg: file name does not parse"):
        load_layout("market1501", root)


def test_camera_zero_rejected(tmp_path):
    root = _market_tree(tmp_path / "m")
    _img(root / "query" / "0005_c0s1_000001_01.jpg")
    with pytest.raises(DataLayoutError, match=r"0005_c0s1_000001_01.jpg: camera number must be >= 1"):
        load_layout("market1501", root)


def test_empty_split(tmp_path):
    root = _market_tree(tmp_path / "m")
    for p in (root / "bounding_box_train").iterdir():
        p.unlink()
    with pytest.raises(DataLayoutError, match=r"the train split has no images"):
        load_layout("market1501", root)


def test_unknown_layout(tmp_path):
    with pytest.raises(DataLayoutError, match="unknown layout 'viper'"):
        load_layout("viper", tmp_path)


def test_relabel_sorted_and_mapping():
    samples = [Sample("a", 17, 0), Sample("b", 3, 1), Sample("c", 17, 2), Sample("d", 9, 0)]
    new, mapping = relabel(samples)
    assert mapping == {3: 0, 9: 1, 17: 2}
    assert [s.pid for s in new] == [2, 0, 2, 1]
    assert [(s.path, s.camid) for s in new] == [(s.path, s.camid) for s in samples]


def test_check_layout_counts_and_published_warnings(tmp_path):
    result = check_layout("market1501", _market_tree(tmp_path / "m"))
    assert result["train"] == {"ids": 2, "images": 5}
    assert result["query"] == {"ids": 2, "images": 2}
    assert result["gallery"] == {"ids": 4, "images": 5}
    assert any("market1501 train: found 2 ids / 5 images, published 751 ids / 12936" in w
               for w in result["warnings"])
    assert check_layout("synthetic", tmp_path / "m")["warnings"] == []


def test_count_warnings_silent_on_published_counts():
    counts = {"train": {"ids": 751, "images": 12936}, "query": {"ids": 750, "images": 3368},
              "gallery": {"ids": 752, "images": 19732}}
    assert count_warnings("market1501", counts) == []
    counts["query"] = {"ids": 750, "images": 3367}
    assert len(count_warnings("market1501", counts)) == 1


def test_check_layout_warns_about_query_without_gallery(tmp_path):
    names = {k: list(v) for k, v in MARKET.items()}
    names["query"].append("0042_c1s1_000001_01.jpg")
    result = check_layout("synthetic", _market_tree(tmp_path / "m", names))
    assert any("1 query ids have no gallery image (e.g. pid 42)" in w for w in result["warnings"])


def test_check_layout_corrupt_image_is_named(tmp_path):
    root = _market_tree(tmp_path / "m")
    bad = root / "bounding_box_test" / "0003_c5s1_000777_01.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(DataLayoutError, match=r"0003_c5s1_000777_01.jpg: unreadable or corrupt image"):
        check_layout("market1501", root)


def test_cli_check_json(tmp_path, capsys):
    root = _market_tree(tmp_path / "m")
    assert cli_main(["data", "check", "--layout", "market1501", str(root), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"train": {"ids": 2, "images": 5}, "query": {"ids": 2, "images": 2},
                               "gallery": {"ids": 4, "images": 5}}
    assert "warning: market1501 train: found 2 ids" in err


def test_cli_check_text_and_subset(tmp_path, capsys):
    root = _cuhk_tree(tmp_path / "cuhk", "detected")
    assert cli_main(["data", "check", "--layout", "cuhk03np", str(root), "--subset", "detected"]) == 0
    out, _ = capsys.readouterr()
    assert re.search(r"^train\s+2 ids\s+4 images$", out, re.M)
    assert re.search(r"^gallery\s+2 ids\s+3 images$", out, re.M)


def test_cli_check_broken_tree_exits_nonzero(tmp_path, capsys):
    root = _market_tree(tmp_path / "m")
    _img(root / "query" / "garbage.jpg")
    assert cli_main(["data", "check", "--layout", "market1501", str(root), "--json"]) != 0
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "garbage.jpg: file name does not parse" in err
