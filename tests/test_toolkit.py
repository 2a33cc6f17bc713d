"""``dgnet export``, ``embed``, ``search`` and ``evaluate --target`` through the real CLI,
on micro DG-Net and teacher checkpoints (random weights, perturbed BatchNorm statistics)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dgnet import io
from dgnet.cli import main
from dgnet.config import config_from_dict, config_to_dict, preset_dict
from dgnet.data.dataset import decode_image
from dgnet.models import CHECKPOINT_FORMAT, AppearanceEncoder, build_teacher

NUM_CLASSES = 8


def _perturb_batchnorm(net: torch.nn.Module, gen: torch.Generator) -> None:
    """Non-trivial running statistics, so that eval-mode BatchNorm is really exercised."""
    for m in net.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))


@pytest.fixture(scope="module", params=["dgnet", "teacher"])
def checkpoint(request, tmp_path_factory) -> Path:
    cfg = config_from_dict(preset_dict("micro"))  # 32 x 16 input, beta 0.5
    torch.manual_seed(0)
    if request.param == "teacher":
        net, key = build_teacher(cfg.model, NUM_CLASSES), "teacher"
    else:
        net, key = AppearanceEncoder(cfg.model.backbone, cfg.model.head, NUM_CLASSES), "appearance"
    _perturb_batchnorm(net, torch.Generator().manual_seed(1))
    path = tmp_path_factory.mktemp("ckpt") / f"{request.param}.pt"
    io.save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "kind": request.param, "config": config_to_dict(cfg),
                              "num_classes": NUM_CLASSES, "models": {key: net.state_dict()}})
    return path


@pytest.fixture(scope="module")
def gallery_folder(micro_data, tmp_path_factory) -> Path:
    """Test images in nested folders, one of them converted to PNG, plus a file that is no image."""
    root = tmp_path_factory.mktemp("photos")
    images = sorted((micro_data / "bounding_box_test").glob("*.jpg"))
    for i, src in enumerate(images):
        dst = root / f"cam{i % 2}" / ("deep" if i % 3 == 0 else "") / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
    with Image.open(images[0]) as im:
        im.save(root / "extra.png")
    (root / "notes.txt").write_text("not an image")
    return root


def _embed(checkpoint: Path, folder: Path, out: Path) -> dict:
    assert main(["embed", "--checkpoint", str(checkpoint), str(folder), "--out", str(out),
                 "--batch-size", "5", "--quiet"]) == 0
    with np.load(out) as data:
        return {k: data[k] for k in data.files}


def test_help_lists_the_toolkit_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for command in ("export", "embed", "search", "evaluate"):
        assert command in text


def test_embed_folder_recursive(checkpoint, gallery_folder, tmp_path):
    doc = _embed(checkpoint, gallery_folder, tmp_path / "feats.npz")
    n_images = len(list(gallery_folder.rglob("*.jpg"))) + 1  # + extra.png; notes.txt skipped
    assert doc["features"].shape[0] == len(doc["paths"]) == n_images
    assert doc["features"].dtype == np.float32 and list(doc["image_size"]) == [32, 16]
    assert list(doc["paths"]) == sorted(doc["paths"]) and all(Path(p).is_absolute() for p in doc["paths"])
    if checkpoint.stem == "dgnet":
        assert str(doc["feature_name"]) == "f_prim+f_fine" and float(doc["beta"]) == 0.5
        want = np.concatenate([doc["f_prim"], np.sqrt(0.5) * doc["f_fine"]], axis=1)
        np.testing.assert_allclose(doc["features"], want, atol=1e-6)
    else:
        assert str(doc["feature_name"]) == "baseline"
        np.testing.assert_allclose(np.linalg.norm(doc["features"], axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_gives_the_features_of_embed(checkpoint, gallery_folder, tmp_path, fmt, capsys):
    """The exported file, run by onnxruntime / torch.jit on images in [0, 1], equals
    ``dgnet embed`` (PyTorch) to 1e-4, for a batch size other than the export's."""
    from dgnet.toolkit.export import run_onnx, run_torchscript

    out = tmp_path / f"model.{fmt}"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", fmt, "--out", str(out)]) == 0
    assert "max |difference|" in capsys.readouterr().out
    doc = _embed(checkpoint, gallery_folder, tmp_path / "feats.npz")
    resize = str(doc["resize"])  # the checkpoint's interpolation, as its metadata says
    images = np.stack([decode_image(p, 32, 16, resize).numpy() for p in doc["paths"]]).astype(np.float32) / 255
    outputs = (run_onnx if fmt == "onnx" else run_torchscript)(out, images)
    names = ["features"] if checkpoint.stem == "teacher" else ["features", "f_prim", "f_fine"]
    assert len(outputs) == len(names)
    for name, got in zip(names, outputs):
        np.testing.assert_allclose(got, doc[name], rtol=0, atol=1e-4)
    if fmt == "onnx":
        import onnx

        model = onnx.load(str(out))
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta["dgnet.height"] == "32" and meta["dgnet.width"] == "16"
        assert meta["dgnet.kind"] == checkpoint.stem and meta["dgnet.resize"] == resize
        assert [o.name for o in model.graph.output][0] == "feature"


def test_search_rank_list(checkpoint, gallery_folder, tmp_path, capsys):
    feats = tmp_path / "gallery.npz"
    doc = _embed(checkpoint, gallery_folder, feats)
    query = Path(doc["paths"][3])
    out, fig = tmp_path / "search.json", tmp_path / "ranks.png"
    assert main(["search", "--features", str(feats), str(query), "--top", "30", "--out", str(out),
                 "--figure", str(fig), "--quiet"]) == 0
    (result,) = json.loads(out.read_text())["results"]
    paths = [m["path"] for m in result["matches"]]
    assert len(paths) == 30 and str(query) not in paths  # its own image is left out
    # the scores are the gallery file's q . g, best first
    want = np.delete(doc["features"] @ doc["features"][3], 3)
    np.testing.assert_allclose([m["score"] for m in result["matches"]], np.sort(want)[::-1][:30], atol=1e-5)
    with Image.open(fig) as im:  # at most 20 matches drawn, 1.1 inches at 100 dpi each
        assert im.format == "PNG" and im.width == 110 * (20 + 1)
    printed = capsys.readouterr().out
    assert str(query) in printed and "the first 20 of 30 matches" in printed
    # a folder of queries: one result per image
    assert main(["search", "--features", str(feats), str(gallery_folder / "cam1"), "--top", "3",
                 "--out", str(out), "--quiet"]) == 0
    results = json.loads(out.read_text())["results"]
    assert len(results) == len(list((gallery_folder / "cam1").rglob("*.jpg")))


def test_toolkit_errors_are_one_line(checkpoint, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["embed", "--checkpoint", str(checkpoint), str(empty), "--out", str(tmp_path / "x.npz")]) == 2
    assert "no image files" in capsys.readouterr().err
    assert main(["search", "--features", str(tmp_path / "missing.npz"), str(empty)]) == 2
    assert "dgnet embed" in capsys.readouterr().err
    np.savez(tmp_path / "other.npz", features=np.zeros((2, 3)))
    assert main(["search", "--features", str(tmp_path / "other.npz"), str(empty)]) == 2
    assert "not a dgnet feature file" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(tmp_path / "none.pt"), "--format", "onnx",
                 "--out", str(tmp_path / "m.onnx")]) == 2
    assert "none.pt" in capsys.readouterr().err and not (tmp_path / "m.onnx").exists()


def test_evaluate_in_domain_and_targets_in_one_call(checkpoint, micro_data, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--data-root", str(micro_data),
                 "--layout", "synthetic", "--target", f"synthetic={micro_data}", "--out", str(out),
                 "--device", "cpu", "--quiet"]) == 0
    doc = json.loads(out.read_text())
    (target,) = doc["targets"]
    assert target["layout"] == "synthetic" and target["data_root"] == str(micro_data)
    assert doc["resize"] == "bicubic"  # the micro preset's train.fidelity: reference
    # the same data set as a target gives the in-domain numbers
    assert target["features"] == doc["features"]
    for m in doc["features"].values():
        assert 0 < m["mINP"] <= 1
    printed = capsys.readouterr().out
    assert "mINP" in printed and "cross domain" in printed
    with pytest.raises(SystemExit):
        main(["evaluate", "--checkpoint", str(checkpoint), "--data-root", str(micro_data),
              "--target", "market=/nowhere"])
    assert "unknown layout 'market'" in capsys.readouterr().err
