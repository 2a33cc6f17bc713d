"""``dgnet export``, ``embed`` and ``search`` on hostile but realistic inputs (issue 29), through the real
CLI on files the tests write: outputs that are inputs, a changed checkpoint, a ``reference`` checkpoint's
bicubic decoding, EXIF rotation, 16-bit PNGs, broken files, NaN, and the one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dgnet import io
from dgnet.cli import main
from dgnet.config import config_from_dict, config_to_dict, preset_dict
from dgnet.data.dataset import ReidTestDataset, decode_image
from dgnet.data.layouts import Sample
from dgnet.eval import default_feature_sets, extract_features
from dgnet.models import CHECKPOINT_FORMAT, AppearanceEncoder, load_embedder

NUM_CLASSES = 8


def _write_checkpoint(path: Path, seed: int = 0, fidelity: str = "reference", scale_bn: float = 1.0) -> Path:
    """A micro DG-Net checkpoint (32 x 16 input) with random weights; ``scale_bn`` multiplies one BN weight."""
    cfg = config_from_dict({**preset_dict("micro"), "train": {**preset_dict("micro")["train"], "fidelity": fidelity}})
    torch.manual_seed(seed)
    net = AppearanceEncoder(cfg.model.backbone, cfg.model.head, NUM_CLASSES)
    state = net.state_dict()
    state["head_prim.bn.weight"] *= scale_bn
    io.save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "kind": "dgnet", "config": config_to_dict(cfg),
                              "num_classes": NUM_CLASSES, "models": {"appearance": state}})
    return path


def _person(seed: int, size: tuple[int, int] = (20, 40)) -> Image.Image:
    """A smooth RGB picture (width, height) = ``size``, different for each seed, not at the network's size."""
    gen = np.random.default_rng(seed)
    small = gen.integers(0, 256, (4, 2, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.BICUBIC)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return _write_checkpoint(tmp_path_factory.mktemp("ckpt") / "dgnet.pt")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Six pictures of 20 x 40 px (resized to 16 x 32 by the network's decoding)."""
    root = tmp_path_factory.mktemp("photos")
    for i in range(6):
        _person(i).save(root / f"p{i}.jpg", quality=95)
    return root


@pytest.fixture(scope="module")
def gallery(ckpt, photos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gallery") / "gallery.npz"
    assert main(["embed", "--checkpoint", str(ckpt), str(photos), "--out", str(out), "--quiet"]) == 0
    return out


def _features(path: Path) -> dict:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _error(capsys, *needles: str) -> str:
    """The command's stderr: exactly one ``dgnet: error:`` line holding every needle."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dgnet: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _fails(capsys, argv: list[str], *needles: str) -> str:
    assert main(argv) == 2, argv
    return _error(capsys, *needles)


# ---------------------------------------------------------------- outputs


def test_an_output_that_is_an_input_is_refused_before_any_work(ckpt, photos, gallery, tmp_path, capsys):
    query = photos / "p0.jpg"
    link = tmp_path / "link.pt"
    link.symlink_to(ckpt)
    kept = {p: p.read_bytes() for p in (ckpt, gallery, query)}
    search = ["search", "--features", str(gallery), str(query), "--quiet"]
    for argv, needles in [
        (["export", "--checkpoint", str(ckpt), "--format", "onnx", "--out", str(ckpt)], ["--out", "--checkpoint"]),
        (["export", "--checkpoint", str(link), "--format", "torchscript", "--out", str(ckpt)], ["destroy"]),
        (["embed", "--checkpoint", str(ckpt), str(photos), "--out", str(query)], ["image to embed"]),
        ([*search, "--out", str(gallery)], ["--features"]),
        ([*search, "--figure", str(query)], ["a query"]),
        ([*search, "--figure", str(photos / "p3.jpg")], ["gallery image"]),
        ([*search, "--out", str(tmp_path / "r.json"), "--figure", str(tmp_path / "r.json")], ["also --out"]),
    ]:
        _fails(capsys, argv, *needles)
    assert all(p.read_bytes() == data for p, data in kept.items())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.pt"]


def test_output_locations_are_checked_before_any_work(ckpt, photos, tmp_path, capsys):
    embed = ["embed", "--checkpoint", str(ckpt), str(photos), "--quiet", "--out"]
    _fails(capsys, [*embed, str(tmp_path)], str(tmp_path), "is a folder")
    read_only = tmp_path / "read_only.npz"
    read_only.write_bytes(b"keep me")
    read_only.chmod(0o444)
    _fails(capsys, [*embed, str(read_only)], "read-only")
    assert read_only.read_bytes() == b"keep me" and read_only.stat().st_mode & 0o777 == 0o444
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    _fails(capsys, [*embed, str(a_file / "x.npz")], "is a file, not a folder")
    # a failed run leaves no folder behind; a replaced file keeps its mode
    _fails(capsys, ["embed", "--checkpoint", str(tmp_path / "none.pt"), str(photos),
                    "--out", str(tmp_path / "new" / "sub" / "x.npz")], "none.pt")
    assert not (tmp_path / "new").exists()
    private = tmp_path / "private.npz"
    private.write_bytes(b"old")
    private.chmod(0o600)
    assert main([*embed, str(private)]) == 0
    assert private.stat().st_mode & 0o777 == 0o600 and _features(private)["features"].shape[0] == 6


# ---------------------------------------------------------------- the checkpoint behind a feature file


def test_search_refuses_a_checkpoint_other_than_the_gallerys(ckpt, photos, gallery, tmp_path, capsys):
    """Another checkpoint of the same feature size, or the same path retrained in place, is refused
    (the scores would be meaningless) unless --allow-other-checkpoint asks for it, which is recorded."""
    other = _write_checkpoint(tmp_path / "other.pt", seed=1)
    query = str(photos / "p1.jpg")
    _fails(capsys, ["search", "--features", str(gallery), query, "--checkpoint", str(other)],
           "sha256", "--allow-other-checkpoint")
    last = tmp_path / "last.pt"
    last.write_bytes(ckpt.read_bytes())
    feats = tmp_path / "g.npz"
    assert main(["embed", "--checkpoint", str(last), str(photos), "--out", str(feats), "--quiet"]) == 0
    assert main(["search", "--features", str(feats), query, "--quiet"]) == 0
    last.write_bytes(other.read_bytes())  # retrained in place
    _fails(capsys, ["search", "--features", str(feats), query], "last.pt", "changed")
    out = tmp_path / "r.json"
    assert main(["search", "--features", str(feats), query, "--quiet", "--allow-other-checkpoint",
                 "--out", str(out)]) == 0
    assert "dgnet: warning:" in capsys.readouterr().err
    assert "sha256" in json.loads(out.read_text())["mismatches"][0]


# ---------------------------------------------------------------- preprocessing


@pytest.mark.parametrize("fidelity, resize", [("reference", "bicubic"), ("paper", "bilinear")])
def test_embed_and_export_decode_as_the_evaluation(fidelity, resize, photos, tmp_path, capsys):
    """The checkpoint's resolved ``data.resize`` decides the interpolation of embed and of the export's
    documented input; the features equal the evaluation's (ReidTestDataset + extract_features)."""
    from dgnet.toolkit.export import run_onnx

    ckpt = _write_checkpoint(tmp_path / f"{fidelity}.pt", fidelity=fidelity)
    out = tmp_path / "g.npz"
    assert main(["embed", "--checkpoint", str(ckpt), str(photos), "--out", str(out), "--quiet"]) == 0
    assert f"PIL {resize}" in capsys.readouterr().out
    doc = _features(out)
    assert str(doc["resize"]) == resize
    embed, config = load_embedder(ckpt, "cpu")
    samples = [Sample(str(p), 0, 0) for p in doc["paths"]]
    raw, _, _ = extract_features(embed, ReidTestDataset(samples, 32, 16, cache=False, progress=False,
                                                        resize=resize), 4, "cpu", progress=False)
    want = default_feature_sets(raw, 0.5)["f_prim+f_fine"](raw).numpy()
    np.testing.assert_allclose(doc["features"], want, atol=1e-6)
    model = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--format", "onnx", "--out", str(model)]) == 0
    assert f"resized to 16x32 (width x height), PIL {resize}" in capsys.readouterr().out
    images = np.stack([decode_image(p, 32, 16, resize).numpy() for p in doc["paths"]]).astype(np.float32) / 255
    np.testing.assert_allclose(run_onnx(model, images)[0], doc["features"], atol=1e-4)
    other = "bilinear" if resize == "bicubic" else "bicubic"
    images = np.stack([decode_image(p, 32, 16, other).numpy() for p in doc["paths"]]).astype(np.float32) / 255
    assert np.abs(run_onnx(model, images)[0] - doc["features"]).max() > 1e-3  # the interpolation matters


def test_exif_rotation_and_16_bit_png_are_read_as_their_8_bit_upright_originals(ckpt, tmp_path, capsys):
    """A phone photo stored sideways with an EXIF orientation, and a 16-bit grey PNG, embed like the
    upright 8-bit image they show."""
    folder = tmp_path / "in"
    folder.mkdir()
    upright = _person(7)
    upright.save(folder / "upright.jpg", quality=100)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation 6: turn the stored pixels 90 degrees clockwise to show them
    upright.transpose(Image.Transpose.ROTATE_90).save(folder / "sideways.jpg", quality=100, exif=exif)
    grey = np.asarray(upright.convert("L"), dtype=np.uint16)
    Image.fromarray(grey * 257).save(folder / "grey16.png")  # 16-bit: 0..65535
    Image.fromarray(grey.astype(np.uint8)).save(folder / "grey8.png")
    for i in range(3):
        _person(20 + i).save(folder / f"other{i}.jpg", quality=100)
    with Image.open(folder / "grey16.png") as im:
        assert im.mode == "I;16"
    out = tmp_path / "g.npz"
    assert main(["embed", "--checkpoint", str(ckpt), str(folder), "--out", str(out), "--quiet"]) == 0
    doc = _features(out)
    row = {Path(p).name: f for p, f in zip(doc["paths"], doc["features"])}
    np.testing.assert_array_equal(row["grey16.png"], row["grey8.png"])
    sideways, upright_pixels = (decode_image(str(folder / n), 32, 16).int() for n in ("sideways.jpg", "upright.jpg"))
    assert (sideways - upright_pixels).abs().max() <= 8  # JPEG noise only
    assert main(["search", "--features", str(out), str(folder / "upright.jpg"), "--top", "1",
                 "--out", str(tmp_path / "r.json"), "--quiet"]) == 0
    assert Path(json.loads((tmp_path / "r.json").read_text())["results"][0]["matches"][0]["path"]).name \
        == "sideways.jpg"


def _in_mode(grey: np.ndarray, mode: str) -> Image.Image:
    """The 8-bit grey picture ``grey`` as a PIL image of ``mode`` (integer modes: 16-bit values, grey x 257)."""
    wide = grey.astype(np.uint32) * 257
    if mode == "I":
        return Image.fromarray(wide.astype(np.int32))
    if mode in ("I;16", "I;16B"):
        dtype = "<u2" if mode == "I;16" else ">u2"
        return Image.frombytes(mode, (grey.shape[1], grey.shape[0]), wide.astype(dtype).tobytes())
    return Image.fromarray(grey).convert("RGB").convert(mode)


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGBA", "LA", "CMYK", "I", "I;16", "I;16B"])
def test_every_pil_mode_decodes_to_8_bit_rgb(mode, tmp_path):
    grey = np.asarray(_person(3).convert("L"))
    im = _in_mode(grey, mode)
    im.save(tmp_path / "x.tif")  # TIFF keeps every one of these modes, losslessly
    with Image.open(tmp_path / "x.tif") as back:
        assert back.mode == mode
    if mode.startswith("I"):  # 16-bit values scaled back to the 8-bit grey
        want = np.broadcast_to(grey, (3, 40, 20))
    else:
        want = np.asarray(im.convert("RGB")).transpose(2, 0, 1)
    got = decode_image(str(tmp_path / "x.tif"), 40, 20)
    assert got.dtype == torch.uint8
    np.testing.assert_array_equal(got.numpy(), want)


# ---------------------------------------------------------------- NaN


def test_non_finite_values_never_pass(ckpt, photos, gallery, tmp_path, monkeypatch, capsys):
    import dgnet.toolkit.export as export

    for beta in ("nan", "inf"):
        _fails(capsys, ["embed", "--checkpoint", str(ckpt), str(photos), "--out", str(tmp_path / "x.npz"),
                        "--beta", beta], "--beta", "finite")
    _fails(capsys, ["export", "--checkpoint", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "m.onnx"),
                    "--beta", "nan"], "finite")
    # an export whose runtime answers NaN fails its self-check and leaves the previous file
    model = tmp_path / "m.onnx"
    model.write_bytes(b"previous export")
    monkeypatch.setattr(export, "run_onnx", lambda path, images: [np.full((3, 4), np.nan, np.float32)])
    _fails(capsys, ["export", "--checkpoint", str(ckpt), "--format", "onnx", "--out", str(model)], "non-finite")
    assert model.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temporary file left
    # a NaN gallery row is refused, and so is a network that overflows
    doc = _features(gallery)
    doc["features"][2, 0] = np.nan
    np.savez(tmp_path / "nan.npz", **doc)
    _fails(capsys, ["search", "--features", str(tmp_path / "nan.npz"), str(photos / "p0.jpg")],
           "not finite", "p2.jpg")
    huge = _write_checkpoint(tmp_path / "huge.pt", scale_bn=3e38)
    _fails(capsys, ["embed", "--checkpoint", str(huge), str(photos), "--out", str(tmp_path / "h.npz"),
                    "--quiet"], "not finite")
    assert not (tmp_path / "h.npz").exists()


# ---------------------------------------------------------------- unreadable images


def test_unreadable_images_are_all_named_or_skipped_on_request(ckpt, photos, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for p in sorted(photos.glob("*.jpg"))[:3]:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "random.jpg").write_bytes(os.urandom(500))
    (folder / "cut.png").write_bytes((folder / "p0.jpg").read_bytes()[:0])
    _person(9).save(folder / "truncated.png")
    (folder / "truncated.png").write_bytes((folder / "truncated.png").read_bytes()[:-40])
    out = tmp_path / "g.npz"
    argv = ["embed", "--checkpoint", str(ckpt), str(folder), "--out", str(out), "--quiet"]
    _fails(capsys, argv, "cannot read 3 of 6 images", "random.jpg", "cut.png", "truncated.png",
           "--skip-unreadable")
    assert not out.exists()
    assert main([*argv, "--skip-unreadable"]) == 0
    assert "skipped 3 unreadable images" in capsys.readouterr().out
    doc = _features(out)
    assert sorted(Path(p).name for p in doc["paths"]) == ["p0.jpg", "p1.jpg", "p2.jpg"]
    assert sorted(Path(p).name for p in doc["skipped"]) == ["cut.png", "random.jpg", "truncated.png"]
    assert len(doc["skipped_reasons"]) == 3


# ---------------------------------------------------------------- one line, not a traceback


def test_expected_failures_are_one_line(ckpt, photos, gallery, tmp_path, monkeypatch, capsys):
    doc = _features(gallery)
    query = str(photos / "p0.jpg")

    def feature_file(name: str, **changes) -> str:
        arrays = {k: v for k, v in {**doc, **changes}.items() if v is not None}
        np.savez(tmp_path / name, **arrays)
        return str(tmp_path / name)

    (tmp_path / "random.npz").write_bytes(os.urandom(300))
    (tmp_path / "random.pt").write_bytes(os.urandom(300))
    cases = [
        (feature_file("no_paths.npz", paths=None), ["no_paths.npz", "no paths"]),
        (feature_file("no_checkpoint.npz", checkpoint=None), ["no checkpoint"]),
        (feature_file("rows.npz", paths=doc["paths"][:-1]), ["rows.npz", "paths (5,)"]),
        (feature_file("old.npz", format="dgnet-features-v1"), ["older dgnet"]),
        (str(tmp_path / "random.npz"), ["not a zip archive"]),
    ]
    for features, needles in cases:
        line = _fails(capsys, ["search", "--features", features, query], *needles)
        assert "pickled" not in line
    embed = ["embed", str(photos), "--out", str(tmp_path / "x.npz"), "--checkpoint"]
    line = _fails(capsys, [*embed, str(tmp_path / "random.pt")], "random.pt", "not a readable checkpoint")
    assert "weights_only=False" not in line and "Re-running" not in line
    _fails(capsys, [*embed, str(tmp_path)], "is a folder")
    _fails(capsys, [*embed, str(ckpt), "--device", "gpu"], "--device", "'gpu'")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _fails(capsys, [*embed, str(ckpt), "--device", "cuda"], "no CUDA GPU", "--device cpu")
    # a gallery moved away before `search --figure`: refused before anything is written
    moved = tmp_path / "moved"
    photos.rename(moved)
    try:
        out, fig = tmp_path / "r.json", tmp_path / "r.png"
        _fails(capsys, ["search", "--features", str(gallery), str(moved / "p0.jpg"), "--out", str(out),
                        "--figure", str(fig)], "--figure", "moved or deleted")
    finally:
        moved.rename(photos)
    assert not out.exists() and not fig.exists()


def test_one_line_error_and_exit_code_end_to_end(ckpt, tmp_path):
    """The real ``dgnet`` process: exit code 2 and one stderr line, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "dgnet.cli", "export", "--checkpoint", str(ckpt),
                           "--format", "onnx", "--out", str(ckpt)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("dgnet: error: ") and len(proc.stderr.strip().splitlines()) == 1
