"""Ground-truth disentanglement: the scores of oracle and random generators, the probe, the ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from dgnet.config import SynthConfig, preset_dict
from dgnet.data.dataset import ImageCache
from dgnet.data.layouts import load_layout
from dgnet.eval import disentangle as dis


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _labels(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = {"top_color": ["red", "blue", "green", "black"], "orientation": ["front", "back", "side/1", "side/-1"]}
    return pd.DataFrame({a: rng.choice(v, n) for a, v in values.items()})


NAMES = ("top_color", "orientation")


def test_an_oracle_generator_follows_the_right_source_every_time():
    app, st = _labels(500, 0), _labels(500, 1)
    # what an ideal G(a_i, s_j) shows: x_i's clothes in x_j's orientation
    oracle = pd.DataFrame({"top_color": app["top_color"], "orientation": st["orientation"]})
    scores = dis.score_generations(oracle, app, st, dis.marginals(app, NAMES), NAMES).set_index("attribute")
    assert scores.loc["top_color", "follows appearance source"] == 1.0
    assert scores.loc["top_color", "follows structure source"] == 0.0
    assert scores.loc["orientation", "follows structure source"] == 1.0
    assert scores.loc["orientation", "follows appearance source"] == 0.0
    assert scores.loc["top_color", "kind"] == "appearance" and scores.loc["orientation", "kind"] == "structure"
    # only pairs whose sources differ count
    assert scores.loc["top_color", "pairs"] == int((app["top_color"] != st["top_color"]).sum()) < 500
    s = dis.summary(scores.reset_index())
    assert s == {"appearance_follows_appearance": 1.0, "structure_follows_structure": 1.0}
    # the swapped generator (clothes from x_j) scores 0 where the oracle scores 1
    swapped = pd.DataFrame({"top_color": st["top_color"], "orientation": app["orientation"]})
    assert dis.summary(dis.score_generations(swapped, app, st, dis.marginals(app, NAMES), NAMES)) == {
        "appearance_follows_appearance": 0.0, "structure_follows_structure": 0.0}


def test_a_random_generator_scores_chance():
    n = 6000
    app, st = _labels(n, 2), _labels(n, 3)
    priors = dis.marginals(pd.concat([app, st]), NAMES)
    rng = np.random.default_rng(4)
    random = pd.DataFrame({a: rng.choice(list(priors[a]), n, p=list(priors[a].values())) for a in NAMES})
    scores = dis.score_generations(random, app, st, priors, NAMES)
    for _, row in scores.iterrows():
        assert row["chance"] == pytest.approx(0.25, abs=0.02)  # four values, about uniform
        assert row["follows appearance source"] == pytest.approx(row["chance"], abs=0.03)
        assert row["follows structure source"] == pytest.approx(row["chance"], abs=0.03)


def test_ground_truth_of_the_synthetic_set(micro_data):
    attributes = dis.read_attributes(micro_data)
    train = load_layout("synthetic", micro_data).train
    labels = dis.labels_for(train, attributes)
    assert len(labels) == len(train) and list(labels.columns) == ["kind", *dis.ATTRIBUTES]
    assert set(labels["kind"]) == {"person"}
    assert set(labels["orientation"]) <= {"front", "back", "side/1", "side/-1"}
    # an identity's clothes are the same in all its images, its orientation is not fixed
    per_id = labels.assign(pid=[s.pid for s in train]).groupby("pid")
    assert (per_id["top_color"].nunique() == 1).all() and (per_id["bottom_type"].nunique() == 1).all()
    assert set(dis.APPEARANCE_ATTRIBUTES).isdisjoint(dis.STRUCTURE_ATTRIBUTES)


def test_the_probe_learns_a_visible_attribute():
    # colour of the upper half decides "top_color", of the lower half "bottom_color": learnable at once
    g = torch.Generator().manual_seed(0)
    n = 160
    top, bottom = torch.randint(0, 3, (n,), generator=g), torch.randint(0, 2, (n,), generator=g)
    palette = torch.tensor([[200, 30, 30], [30, 200, 30], [30, 30, 200]], dtype=torch.uint8)
    images = torch.randint(0, 60, (n, 3, 16, 8), generator=g, dtype=torch.uint8)
    images[:, :, :8] += palette[top].view(n, 3, 1, 1) // 2
    images[:, :, 8:] += palette[bottom].view(n, 3, 1, 1) // 2
    labels = pd.DataFrame({"top_color": np.array(["r", "g", "b"])[top.numpy()],
                           "bottom_color": np.array(["r", "g"])[bottom.numpy()]})
    probe = dis.train_probe(images, labels, names=("top_color", "bottom_color"), epochs=15, batch_size=32)
    acc = dis.accuracy(probe.predict(images), labels, ("top_color", "bottom_color"))
    assert acc["top_color"] > 0.95 and acc["bottom_color"] > 0.95, acc
    state = torch.get_rng_state()
    again = dis.train_probe(images, labels, names=("top_color", "bottom_color"), epochs=1, seed=5)
    assert torch.equal(torch.get_rng_state(), state)  # seeded without touching the global RNG
    assert isinstance(again.predict(images[:3]), pd.DataFrame)


class _LookupProbe:
    """A perfect probe for the training images (found by their pixels); other images get random labels."""

    def __init__(self, images, labels, seed=0):
        self.table = {bytes(img.numpy()): i for i, img in enumerate(images)}
        self.labels = labels
        self.rng = np.random.default_rng(seed)

    def predict(self, images):
        rows = []
        for img in images:
            i = self.table.get(bytes(img.numpy()))
            rows.append(self.labels.iloc[i] if i is not None
                        else self.labels.iloc[int(self.rng.integers(len(self.labels)))])
        return pd.DataFrame(rows).reset_index(drop=True)


@pytest.mark.parametrize("generator", ["copy appearance", "copy structure"])
def test_evaluate_on_the_synthetic_set(generator, micro_data, monkeypatch):
    train = load_layout("synthetic", micro_data).train
    splits = load_layout("synthetic", micro_data)
    images = ImageCache([s.path for s in train], 32, 16, progress=False).images
    attributes = dis.read_attributes(micro_data)
    labels = dis.labels_for(train, attributes)
    monkeypatch.setattr(dis, "train_probe", lambda *a, **k: _LookupProbe(images, labels))
    partner = torch.randperm(len(train), generator=torch.Generator().manual_seed(0)).numpy()
    table = pd.DataFrame({"appearance_index": np.arange(len(train)), "structure_index": partner,
                          "appearance_pid": [s.pid for s in train], "structure_pid": [train[j].pid for j in partner]})
    fake = images if generator == "copy appearance" else images[torch.from_numpy(partner)]
    synth = SynthConfig(**preset_dict("micro")["data"]["synth"])
    result = dis.evaluate(micro_data, synth, train, images, splits.query + splits.gallery,
                          {"G": fake}, {"G": table}, 32, 16, probe_ids=2, epochs=1)
    t = result.table.set_index("attribute")
    follows = "follows appearance source" if generator == "copy appearance" else "follows structure source"
    other = "follows structure source" if generator == "copy appearance" else "follows appearance source"
    counted = t[t["pairs"] > 0]
    assert len(counted) >= 8
    assert (counted[follows] == 1.0).all() and (counted[other] == 0.0).all()
    cross = result.metrics["models"]["G"]["cross_id_images"]
    assert cross == int((table["appearance_pid"] != table["structure_pid"]).sum()) > 0
    assert t["pairs"].max() <= cross
    assert set(t["kind"]) == {"appearance", "structure"}
    assert result.metrics["test_images"] > 0 and "probe accuracy (real test images)" in result.table


def test_a_probe_of_any_width_loads_back(tmp_path):
    """``load_probe`` reads the probe's width from its weights (the pilot's wider probe, docs/synthetic_world.md)."""
    classes = {"top_color": ["red", "blue"], "bag": ["none", "backpack", "handbag"]}
    torch.manual_seed(0)
    model = dis.AttributeProbe({a: len(c) for a, c in classes.items()}, width=8).eval()
    saved = dis.Probe(model, classes, torch.device("cpu"), {"height": 32, "width": 16})
    dis.save_probe(saved, tmp_path / "probe.pt")
    loaded = dis.load_probe(tmp_path / "probe.pt", 32, 16)
    x = torch.rand(3, 3, 32, 16)
    with torch.no_grad():
        assert all(torch.equal(model(x)[a], loaded.model(x)[a]) for a in classes)
