"""Fréchet distances: pytorch-fid's formula, the teacher-feature path, finding (or not) the Inception weights."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import torchvision
from pytorch_fid import inception as fid_inception
from pytorch_fid.fid_score import calculate_frechet_distance

from dgnet.data.dataset import ImageCache
from dgnet.data.layouts import load_layout
from dgnet.eval import fid
from dgnet.models import build_teacher


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")
def test_calculate_frechet_distance_matches_the_closed_form_for_diagonal_covariances():
    # N(mu1, diag(s1^2)) vs N(mu2, diag(s2^2)): |mu1 - mu2|^2 + sum (s1 - s2)^2
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 0.5, 0.5])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2)  # 1 + 6.25 + 4 + 2.25 = 13.5
    value = calculate_frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2))
    assert value == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(13.5)


def test_frechet_distance_of_samples_approaches_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal([0.0, 1.0], [1.0, 2.0], size=(40000, 2))
    b = rng.normal([1.0, 1.0], [3.0, 0.5], size=(40000, 2))
    assert fid.frechet_distance(a, b) == pytest.approx(1 + 4 + 2.25, abs=0.15)
    assert fid.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    with pytest.raises(ValueError):
        fid.frechet_distance(a[:1], b[:1])


@pytest.fixture(scope="module")
def micro_images(micro_data):
    train = load_layout("synthetic", micro_data).train
    return ImageCache([s.path for s in train], 32, 16, progress=False).images


def _noisy(images: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(images.shape, generator=g) * sigma
    return (images.float() + noise).clamp(0, 255).round().to(torch.uint8)


def test_teacher_frechet_distance_is_zero_for_a_set_against_itself_and_grows_with_noise(micro_cfg, micro_images):
    torch.manual_seed(0)
    teacher = build_teacher(micro_cfg.model, 8).eval()
    same = fid.frechet_teacher(teacher, micro_images, micro_images)
    d = [fid.frechet_teacher(teacher, micro_images, _noisy(micro_images, s)) for s in (10.0, 40.0, 120.0)]
    assert abs(same) < 1e-3 * d[0]
    assert 0 < d[0] < d[1] < d[2], d


def _empty_hub(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    hub.mkdir(exist_ok=True)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.delenv(fid.ENV_VAR, raising=False)

    def no_download(*args, **kwargs):
        raise AssertionError("pytorch-fid tried to download its weights")

    monkeypatch.setattr(fid_inception, "load_state_dict_from_url", no_download)
    return hub


def test_missing_inception_weights_give_a_note_and_a_warning_not_an_error(tmp_path, monkeypatch, caplog, micro_images):
    hub = _empty_hub(tmp_path, monkeypatch)
    user = tmp_path / "mine"
    user.mkdir()
    with caplog.at_level(logging.WARNING, logger="dgnet.eval.fid"):
        result = fid.frechet_inception(micro_images, micro_images, weights_path=user)
    assert result.value is None
    assert result.note.startswith(f"not computed: weights file {fid.FID_WEIGHTS_FILE} not found in ")
    assert str(user) in result.note and str(hub / "checkpoints") in result.note
    assert result.cell() == result.note
    assert fid_inception.FID_WEIGHTS_URL in caplog.text and "--inception-weights" in caplog.text


@pytest.fixture(scope="module")
def random_inception_state():
    """A state dict shaped like pytorch-fid's FID Inception (random weights, nothing downloaded)."""
    captured = {}
    with pytest.MonkeyPatch.context() as m:
        m.setattr(fid_inception, "load_state_dict_from_url", lambda *a, **k: None)
        m.setattr(torchvision.models.Inception3, "load_state_dict",
                  lambda self, state, *a, **k: captured.setdefault("net", self))
        fid_inception.fid_inception_v3()
    return captured["net"].state_dict()


@pytest.mark.parametrize("where", ["hub", "argument", "env"])
def test_inception_weights_are_found_and_used_without_download(where, tmp_path, monkeypatch, micro_images,
                                                               random_inception_state):
    hub = _empty_hub(tmp_path, monkeypatch)
    if where == "hub":
        target = hub / "checkpoints" / fid.FID_WEIGHTS_FILE
    else:
        target = tmp_path / "elsewhere" / "inception.pth"  # any name when the file itself is given
    target.parent.mkdir(parents=True)
    torch.save(random_inception_state, target)
    weights_path = target if where == "argument" else None
    if where == "env":
        monkeypatch.setenv(fid.ENV_VAR, str(target))
    assert fid.find_inception_weights(weights_path) == target
    if where != "argument":
        return  # the lookup is what differs; the weights are used once, below
    a, b = micro_images[:12], micro_images[12:24]
    result = fid.frechet_inception(a, b, weights_path=weights_path, dims=64, batch_size=8)
    assert result.value is not None and np.isfinite(result.value) and result.value > 0
    assert fid.frechet_inception(a, a, weights_path=weights_path, dims=64).value == pytest.approx(0, abs=1e-3)


def test_an_unreadable_weights_file_is_a_note(tmp_path, monkeypatch, micro_images):
    hub = _empty_hub(tmp_path, monkeypatch)
    bad = hub / "checkpoints" / fid.FID_WEIGHTS_FILE
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a checkpoint")
    result = fid.frechet_inception(micro_images, micro_images)
    assert result.value is None and result.note.startswith("not computed:") and str(bad) in result.note


def test_table2_rows_with_the_inception_weights(tmp_path, monkeypatch, micro_cfg, micro_data, micro_images,
                                                random_inception_state):
    import pandas as pd

    from dgnet.eval.generation import FD_TEACHER, measure_table2

    hub = _empty_hub(tmp_path, monkeypatch)
    (hub / "checkpoints").mkdir()
    torch.save(random_inception_state, hub / "checkpoints" / fid.FID_WEIGHTS_FILE)
    splits = load_layout("synthetic", micro_data)
    gallery = ImageCache([s.path for s in splits.gallery], 32, 16, progress=False).images
    fake = _noisy(micro_images, 30.0)
    rows = pd.DataFrame({"file": [s.path for s in splits.train], "appearance_pid": [s.pid for s in splits.train]})
    torch.manual_seed(0)
    teacher = build_teacher(micro_cfg.model, 8).eval()
    model = fid.InceptionFid(dims=64, batch_size=16)
    table, metrics = measure_table2(splits.train, micro_images, gallery, {"G": fake}, {"G": rows}, teacher,
                                    model, 16, torch.device("cpu"), seed=0)
    assert list(table["Method"]) == ["Real", "G"] and FD_TEACHER in table
    # each set's features computed once give the same numbers as the plain two-set call
    assert metrics["G"]["fid_inception"] == pytest.approx(model.distance(fake, micro_images).value, rel=1e-6)
    assert metrics["Real"]["fid_inception"] == pytest.approx(model.distance(micro_images, gallery).value, rel=1e-6)
    assert metrics["G"]["frechet_teacher"] == pytest.approx(fid.frechet_teacher(teacher, fake, micro_images), rel=1e-6)
    assert table.loc[1, "FID (Inception)"] == f"{metrics['G']['fid_inception']:.2f}"
