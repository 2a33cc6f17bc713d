"""The generated set, the generation figures and the generation_eval stage end to end (micro config)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from dgnet import checkpoint
from dgnet.config import replace
from dgnet.data.dataset import ImageCache
from dgnet.data.layouts import load_layout
from dgnet.data.transforms import normalize
from dgnet.errors import UserError
from dgnet.eval import disentangle, generation
from dgnet.models import build_dgnet, build_teacher
from dgnet.reports import generation_figures as figures
from dgnet.stages import generation as generation_stage

ROOT = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def micro_train(micro_data):
    train = load_layout("synthetic", micro_data).train
    return train, ImageCache([s.path for s in train], 32, 16, progress=False).images


def _nets(cfg, k: int, seed: int = 0):
    torch.manual_seed(seed)
    return build_dgnet(cfg.model, k)


def _save_dgnet(cfg, path: Path, k: int, seed: int = 0) -> dict:
    nets = _nets(cfg, k, seed)
    checkpoint.save(path, checkpoint.make_state("dgnet", cfg, k, 0, nets))
    return nets


def test_load_generator_rebuilds_the_checkpoint_in_eval_mode(micro_cfg, tmp_path, micro_train):
    nets = _save_dgnet(micro_cfg, tmp_path / "last.pt", 8)
    loaded = generation.load_generator(tmp_path / "last.pt", "cpu")
    assert set(loaded) == {"appearance", "structure", "decoder", "discriminator"}
    assert not any(net.training for net in loaded.values())
    x = normalize(micro_train[1][:4])
    for net in nets.values():
        net.eval()
    assert torch.allclose(generation.generate(loaded, x, x.flip(0)), generation.generate(nets, x, x.flip(0)))
    with pytest.raises(Exception, match="not found"):
        generation.load_generator(tmp_path / "missing.pt")


def test_generated_set_layout_sources_and_seed(micro_cfg, tmp_path, micro_train):
    train, images = micro_train
    nets = _nets(micro_cfg, 8)
    out = tmp_path / "generated" / "dgnet"
    rows = generation.write_generated_set(nets, train, 32, 16, out, seed=3, batch_size=5, progress=False)
    assert len(rows) == len(train)
    assert rows.equals(generation.read_generated_set(out))
    assert sorted(rows["structure_index"]) == list(range(len(train)))  # a permutation of the training set
    assert list(rows["appearance_index"]) == list(range(len(train)))  # every image gives its appearance once
    for _, r in rows.iterrows():
        a, s = train[r["appearance_index"]], train[r["structure_index"]]
        assert (r["appearance_source"], r["structure_source"]) == (a.path, s.path)
        assert r["file"].startswith(f"by_appearance/{a.pid:04d}/{s.pid:04d}_{a.pid:04d}_gen")
        assert r["structure_file"].startswith(f"by_structure/{s.pid:04d}/")
        assert (out / r["file"]).read_bytes() == (out / r["structure_file"]).read_bytes()
    with Image.open(out / rows["file"][0]) as im:
        assert im.format == "JPEG" and im.size == (16, 32)
    # the files hold G(a_i, s_j), up to JPEG: far closer to it than to G(a_i, s_k) for another k
    back = generation.load_generated_images(out, rows.head(8), 32, 16).float()
    x = normalize(images)
    j = torch.tensor(rows["structure_index"][:8].tolist())
    right = generation.to_uint8(generation.generate(nets, x[:8], x[j])).float()
    wrong = generation.to_uint8(generation.generate(nets, x[:8], x[j.roll(1)])).float()
    assert (back - right).abs().mean() < 0.6 * (back - wrong).abs().mean()
    # seeded: same seed same pairs, another seed other pairs (batch size does not matter)
    again = generation.write_generated_set(nets, train, 32, 16, tmp_path / "again", seed=3, batch_size=64,
                                           progress=False, images=images)
    assert list(again["structure_index"]) == list(rows["structure_index"])
    other = generation.write_generated_set(nets, train, 32, 16, tmp_path / "other", seed=4, progress=False)
    assert list(other["structure_index"]) != list(rows["structure_index"])


def test_a_crash_leaves_the_previous_set_untouched(micro_cfg, tmp_path, micro_train, monkeypatch):
    train, images = micro_train
    nets = _nets(micro_cfg, 8)
    out = tmp_path / "dgnet"
    first = generation.write_generated_set(nets, train, 32, 16, out, seed=1, progress=False, images=images)
    calls = {"n": 0}
    real_generate = generation.generate

    def crash_on_second_batch(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("killed")
        return real_generate(*args)

    monkeypatch.setattr(generation, "generate", crash_on_second_batch)
    with pytest.raises(RuntimeError, match="killed"):
        generation.write_generated_set(nets, train, 32, 16, out, seed=2, batch_size=4, progress=False, images=images)
    assert generation.read_generated_set(out).equals(first)
    assert sorted(os.listdir(tmp_path)) == ["dgnet"]  # no temporary folder left behind
    monkeypatch.setattr(generation, "generate", real_generate)
    second = generation.write_generated_set(nets, train, 32, 16, out, seed=2, progress=False, images=images)
    assert generation.read_generated_set(out).equals(second) and not second.equals(first)
    assert sorted(os.listdir(tmp_path)) == ["dgnet"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("not a generated set")
    with pytest.raises(Exception, match="not a generated set"):
        generation.write_generated_set(nets, train, 32, 16, tmp_path / "mine", progress=False, images=images)
    assert (tmp_path / "mine" / "thesis.tex").is_file()


def test_figure_cells(micro_cfg, micro_train, tmp_path):
    _, images = micro_train
    nets = _nets(micro_cfg, 8)
    x = normalize(images[:6])
    rows = figures.swap_cells(nets, x[:3], x[3:])
    assert len(rows) == 4 and all(len(r) == 4 for r in rows)
    assert rows[0][0] is None and torch.equal(rows[0][1], x[3]) and torch.equal(rows[2][0], x[1])
    assert torch.allclose(rows[2][3], generation.generate(nets, x[1:2], x[5:6])[0], atol=1e-5)  # G(a_1, s_5)

    steps = 5
    rows = figures.interpolation_cells(nets, x[:2], x[2:4], steps, "appearance")
    assert len(rows) == 2 and len(rows[0]) == steps + 2
    assert torch.allclose(rows[0][1], generation.generate(nets, x[0:1], x[0:1])[0], atol=1e-5)  # t=0: x_0 itself
    assert torch.allclose(rows[0][-2], generation.generate(nets, x[2:3], x[0:1])[0], atol=1e-5)  # t=1: a_2, s_0
    rows = figures.interpolation_cells(nets, x[:2], x[2:4], steps, "structure")
    assert torch.allclose(rows[1][-2], generation.generate(nets, x[1:2], x[3:4])[0], atol=1e-5)  # t=1: a_1, s_3
    assert not torch.allclose(rows[1][1], rows[1][-2])

    other = _nets(micro_cfg, 8, seed=1)
    rows, labels = figures.ablation_cells({"full": nets, "w/o feed": None, "w/o id": other}, x[:3], x[3:])
    assert labels == ["appearance input", "structure input", "full", "w/o id"]
    assert torch.allclose(rows[3][0], generation.generate(other, x[0:1], x[3:4])[0], atol=1e-5)
    with pytest.raises(ValueError):
        figures.ablation_cells({"w/o feed": None}, x[:3], x[3:])

    image = figures.mosaic([[None, x[0]], [x[1], x[2]]], pad=2)  # (2 * (32 + 2) + 2, 2 * (16 + 2) + 2, 3)
    assert image.shape == (70, 38, 3)
    assert (image[2:34, 2:18] == 1).all()  # the empty cell stays white
    from dgnet.data.transforms import denormalize

    assert torch.allclose(torch.from_numpy(image[36:68, 20:36]), denormalize(x[2]).permute(1, 2, 0), atol=1e-6)

    for name, draw in {
        "fig1.png": lambda p: figures.swap_grid(nets, x[:3], x[3:], p, title="t"),
        "fig4.png": lambda p: figures.ablation_grid({"full": nets, "w/o id": other}, x[:3], x[3:], p),
        "fig5.png": lambda p: figures.appearance_interpolation(nets, x[:2], x[2:4], p),
        "fig9.png": lambda p: figures.structure_interpolation(nets, x[:2], x[2:4], p),
    }.items():
        path = draw(tmp_path / "figs" / name)
        with Image.open(path) as im:
            assert im.format == "PNG" and im.width > 100 and im.height > 100
    assert sorted(os.listdir(tmp_path / "figs")) == ["fig1.png", "fig4.png", "fig5.png", "fig9.png"]


@pytest.mark.slow
def test_generation_eval_stage_end_to_end(micro_cfg, micro_data, tmp_path, monkeypatch):
    from dgnet.eval import fid

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no Inception weights here
    monkeypatch.delenv(fid.ENV_VAR, raising=False)
    k = len({s.pid for s in load_layout("synthetic", micro_data).train})
    _save_dgnet(micro_cfg, Path("models/dgnet/last.pt"), k)
    _save_dgnet(micro_cfg, Path("models/dgnet_noid/last.pt"), k, seed=1)  # w/o feed is absent: skipped
    torch.manual_seed(0)
    teacher = build_teacher(micro_cfg.model, k)
    checkpoint.save("models/teacher.pt", checkpoint.make_state("teacher", micro_cfg, k, 0, {"teacher": teacher}))

    with pytest.raises(UserError, match="attribute probe not found .*dvc repro probe"):
        generation_stage.run_generation_eval(micro_cfg, progress=False)
    probe = disentangle.build_probe(micro_cfg.data.synth, micro_cfg.data.height, micro_cfg.data.width,
                                    seed=generation.GENERATION_SEED, epochs=1, probe_ids=20)
    disentangle.save_probe(probe, "models/attribute_probe.pt")  # what the probe stage writes
    metrics = generation_stage.run_generation_eval(micro_cfg, progress=False)

    assert set(metrics["table2"]) == {"Real", "DG-Net", "DG-Net w/o id"}
    for row in metrics["table2"].values():
        assert row["fid_inception"] is None and row["fid_inception_note"].startswith("not computed: weights file")
        assert row["frechet_teacher"] >= 0 and 0 <= row["ssim"] <= 1
    table = pd.read_csv("reports/table2.csv")
    measured = table[table["source"] == "measured"]
    assert list(measured["Method"]) == ["Real", "DG-Net", "DG-Net w/o id"]
    assert "Fréchet distance (teacher features)" in table.columns
    quoted = table[table["source"] == "paper (quoted)"].set_index("Method")
    assert quoted.loc["Real", "Realism (FID)"] == 7.22 and quoted.loc["DG-Net (Ours)", "Realism (FID)"] == 18.24
    md = Path("reports/table2.md").read_text()
    assert "Measured here" in md and "Quoted from the paper" in md and "not computed: weights file" in md
    dis = pd.read_csv("reports/disentanglement.csv")
    assert set(dis["model"]) == {"DG-Net", "DG-Net w/o id"} and "follows structure source" in dis
    saved = json.loads(Path("reports/metrics/generation.json").read_text())
    assert saved["table2"]["DG-Net"]["ssim"] == pytest.approx(metrics["table2"]["DG-Net"]["ssim"])
    for name in generation_stage.FIGURE_FILES.values():
        assert (Path("reports/figures") / name).is_file()
    for folder in ("data/generated/dgnet", "data/generated/dgnet_noid"):
        assert len(generation.read_generated_set(folder)) == metrics["table2"]["Real"]["images"]
    absent = Path("data/generated/dgnet_nofeed")  # a declared output of the stage: there, saying why it is empty
    assert os.listdir(absent) == ["README.txt"] and "not found (not trained)" in (absent / "README.txt").read_text()

    # the stage script on a real layout (the same tree read as Market-1501): no ground-truth attributes
    import yaml

    from dgnet.config import config_to_dict

    real = replace(micro_cfg, **{"data.layout": "market1501"})
    Path("params.yaml").write_text(yaml.safe_dump(config_to_dict(real)))
    spec = importlib.util.spec_from_file_location("generation_eval", ROOT / "pipelines" / "generation_eval.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    assert stage.main(["--quiet"]) == 0
    assert "not available: no ground-truth attributes" in Path("reports/disentanglement.md").read_text()
    Path("models/teacher.pt").unlink()
    from dgnet.entry import run_guarded

    # a missing input is one clear error line, not a traceback (the stage script runs main this way)
    assert run_guarded(lambda: stage.main(["--quiet"])) == 2
