"""Ground-truth disentanglement: which source does each attribute of G(a_i, s_j) come from?

    from dgnet.eval.disentangle import evaluate
    result = evaluate("data/prepared/synth_a", cfg.data.synth, train, train_uint8, splits.query + splits.gallery,
                      {"DG-Net": generated_uint8}, {"DG-Net": generated_csv_rows}, 64, 32)
    result.table     # model, attribute, kind, probe accuracy, follows appearance / structure source, chance

Only the synthetic pedestrians know their attributes (``attributes.csv`` at
the data root). Clothing attributes (top / bottom / shoe colours, the top's
texture, sleeves, trousers or shorts) should follow the appearance provider
x_i; pose- and scene-like attributes (orientation: view, and the facing
direction of side views, which is all that shows of it; camera = background
and illumination; bag; hair length and colour, the paper's "carrying, hair,
body size" kept with the structure) should follow the structure provider x_j.

A small multi-head CNN (:class:`AttributeProbe`) predicts every attribute at
once. It is trained on a fresh synthetic set of its own (hundreds of new
identities drawn with the data set's style and cameras, another seed): the
data set has only a few dozen training identities, and a probe trained on
them learns "identity -> attributes" instead of the attributes. Its accuracy
on the real test images (never seen) says how far it can be trusted. It is
then applied to the generated images of cross-identity pairs
(``pid_i != pid_j``). For each attribute only pairs whose two sources differ
in it are counted, so "follows appearance source" + "follows structure
source" + "neither" = 1. "chance" is what a prediction drawn from the
training images' attribute distribution, independently of the image, would
score: the mean over counted pairs of ``(p(v_i) + p(v_j)) / 2``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from dgnet.progress import tqdm

from dgnet.data.layouts import Sample
from dgnet.data.transforms import normalize
from dgnet.errors import UserError

log = logging.getLogger(__name__)

APPEARANCE_ATTRIBUTES = ("top_color", "top_texture", "sleeves", "bottom_color", "bottom_type", "shoe_color")
STRUCTURE_ATTRIBUTES = ("orientation", "camid", "bag", "hair_long", "hair_color")
KIND = {**{a: "appearance" for a in APPEARANCE_ATTRIBUTES}, **{a: "structure" for a in STRUCTURE_ATTRIBUTES}}
ATTRIBUTES = APPEARANCE_ATTRIBUTES + STRUCTURE_ATTRIBUTES
PROBE_EPOCHS = 25  # the probe config's defaults (dgnet/config.py ProbeConfig; docs/synthetic_world.md)
PROBE_IDS = 4000  # identities of the probe's own training set (about 4 images each)
PROBE_WIDTH = 32
# what the probe must read on real test images for its verdicts to count (issue 25; docs/synthetic_world.md)
PROBE_TARGETS = {a: 0.85 for a in ("top_color", "bottom_color", "hair_color", "hair_long", "bag", "sleeves",
                                   "top_texture")}
PROBE_SEED_OFFSET = 7919  # the probe set's synthetic seed = data seed + this: other identities, same cameras


# ---------------------------------------------------------------- ground truth


def read_attributes(root: str | Path) -> pd.DataFrame:
    """``attributes.csv`` of a synthetic data set, all values as strings, indexed by ``file``."""
    path = Path(root) / "attributes.csv"
    if not path.is_file():
        raise UserError(f"{path}: no attributes.csv (ground-truth attributes exist for the synthetic data set only)")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [a for a in ("file", "kind", "view", "facing", *ATTRIBUTES)
               if a not in table.columns and a != "orientation"]
    if missing:
        raise UserError(f"{path}: missing columns {missing}")
    side = table["view"] == "side"
    table["orientation"] = table["view"].where(~side, "side/" + table["facing"])  # side/1, side/-1
    return table.drop_duplicates("file").set_index("file")


def _key(path: str) -> str:
    p = Path(path)
    return f"{p.parent.name}/{p.name}"  # attributes.csv names files as <split folder>/<name>


def labels_for(samples: Sequence[Sample], attributes: pd.DataFrame,
               names: Sequence[str] = ATTRIBUTES) -> pd.DataFrame:
    """One row per sample (same order) with the attribute values (strings) of ``names`` and ``kind``."""
    keys = [_key(s.path) for s in samples]
    unknown = [k for k in keys if k not in attributes.index]
    if unknown:
        raise UserError(f"{len(unknown)} images are not in attributes.csv (first: {unknown[0]}); "
                        "is data.root the synthetic set these images come from?")
    return attributes.loc[keys, ["kind", *names]].reset_index(drop=True)


# ---------------------------------------------------------------- the probe


class AttributeProbe(nn.Module):
    """A small CNN with one linear head per attribute: normalised (B, 3, H, W) -> {attr: (B, classes)}.

    Three stride-2 conv3x3 (width, 2 width, 4 width) and one stride-1 conv3x3,
    each BatchNorm + ReLU, average-pooled to 4x2 (so left / right and top /
    bottom stay apart), dropout 0.3, a linear head per attribute.
    """

    def __init__(self, num_classes: Mapping[str, int], width: int = 16):
        super().__init__()

        def block(i, o, stride):
            return [nn.Conv2d(i, o, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

        self.trunk = nn.Sequential(*block(3, width, 2), *block(width, 2 * width, 2), *block(2 * width, 4 * width, 2),
                                   *block(4 * width, 4 * width, 1), nn.AdaptiveAvgPool2d((4, 2)), nn.Flatten(),
                                   nn.Dropout(0.3))
        self.heads = nn.ModuleDict({a: nn.Linear(4 * width * 8, n) for a, n in num_classes.items()})

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        z = self.trunk(x)  # (B, 4 * width * 8)
        return {a: head(z) for a, head in self.heads.items()}


@dataclass
class Probe:
    model: AttributeProbe
    classes: dict[str, list[str]]  # attribute -> class values (index = label)
    device: torch.device
    trained_on: dict = field(default_factory=dict)  # images, ids, epochs, seed of its training (build_probe)

    @torch.no_grad()
    def predict(self, images: Tensor, batch_size: int = 256) -> pd.DataFrame:
        """Predicted attribute values (strings) of uint8 images (N, 3, H, W)."""
        self.model.eval()
        out: dict[str, list[np.ndarray]] = {a: [] for a in self.classes}
        for start in range(0, images.shape[0], batch_size):
            logits = self.model(normalize(images[start:start + batch_size]).to(self.device))
            for a in self.classes:
                out[a].append(logits[a].argmax(1).cpu().numpy())
        return pd.DataFrame({a: np.asarray(self.classes[a], dtype=object)[np.concatenate(v)]
                             for a, v in out.items()})


def train_probe(images: Tensor, labels: pd.DataFrame, names: Sequence[str] = ATTRIBUTES,
                epochs: int = PROBE_EPOCHS, batch_size: int = 64, lr: float = 3e-3, seed: int = 0,
                device: str | torch.device = "cpu", progress: bool = False, width: int = PROBE_WIDTH) -> Probe:
    """Train :class:`AttributeProbe` on uint8 images (N, 3, H, W) and their ``labels`` (strings).

    Adam with a cosine learning rate; the only augmentation is a random shift
    of up to 1/16 of the image (a flip would change "facing"). Seeded: the
    same inputs give the same probe; the global RNG state is left untouched.
    """
    device = torch.device(device)
    classes = {a: sorted(set(labels[a])) for a in names}
    targets = torch.stack([torch.tensor([classes[a].index(v) for v in labels[a]]) for a in names], 1)  # (N, A)
    n, _, h, w = images.shape
    pad_y, pad_x = max(1, h // 16), max(1, w // 16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AttributeProbe({a: len(classes[a]) for a in names}, width).to(device)
        g = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
        steps = epochs * ((n + batch_size - 1) // batch_size)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
        model.train()
        for _ in tqdm(range(epochs), desc="attribute probe", disable=not progress, leave=False):
            order = torch.randperm(n, generator=g)
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                if len(idx) < 2:
                    continue  # BatchNorm needs two images
                x = normalize(images[idx])  # (B, 3, H, W)
                x = F.pad(x, (pad_x, pad_x, pad_y, pad_y), mode="replicate")
                oy = int(torch.randint(0, 2 * pad_y + 1, (1,), generator=g))
                ox = int(torch.randint(0, 2 * pad_x + 1, (1,), generator=g))
                x = x[:, :, oy:oy + h, ox:ox + w].to(device)
                logits = model(x)
                y = targets[idx].to(device)
                loss = sum(F.cross_entropy(logits[a], y[:, k]) for k, a in enumerate(names))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    model.eval()
    return Probe(model, classes, device)


def accuracy(predicted: pd.DataFrame, labels: pd.DataFrame, names: Sequence[str] = ATTRIBUTES) -> dict[str, float]:
    return {a: float((predicted[a].to_numpy() == labels[a].to_numpy()).mean()) for a in names}


# ---------------------------------------------------------------- scoring


def marginals(labels: pd.DataFrame, names: Sequence[str] = ATTRIBUTES) -> dict[str, dict[str, float]]:
    """Attribute -> {value: frequency} over ``labels``."""
    return {a: labels[a].value_counts(normalize=True).to_dict() for a in names}


def score_generations(predicted: pd.DataFrame, appearance_labels: pd.DataFrame, structure_labels: pd.DataFrame,
                      priors: Mapping[str, Mapping[str, float]], names: Sequence[str] = ATTRIBUTES) -> pd.DataFrame:
    """Per attribute: how often the prediction on G(a_i, s_j) equals x_i's value, x_j's value, and chance.

    Row k of the three tables belongs to the same generated image. Only rows
    where the two sources differ in the attribute count (``pairs``).
    """
    rows = []
    for a in names:
        p, va, vs = (t[a].to_numpy() for t in (predicted, appearance_labels, structure_labels))
        keep = va != vs
        k = int(keep.sum())
        prior = priors[a]
        chance = (float(np.mean([(prior.get(x, 0.0) + prior.get(y, 0.0)) / 2 for x, y in zip(va[keep], vs[keep])]))
                  if k else float("nan"))
        rows.append({
            "attribute": a, "kind": KIND.get(a, "?"), "pairs": k,
            "follows appearance source": float((p[keep] == va[keep]).mean()) if k else float("nan"),
            "follows structure source": float((p[keep] == vs[keep]).mean()) if k else float("nan"),
            "chance": chance,
        })
    return pd.DataFrame(rows)


def summary(scores: pd.DataFrame) -> dict[str, float]:
    """Mean "follows the expected source" over appearance and over structure attributes."""
    app = scores[scores["kind"] == "appearance"]["follows appearance source"]
    st = scores[scores["kind"] == "structure"]["follows structure source"]
    return {"appearance_follows_appearance": float(app.mean()), "structure_follows_structure": float(st.mean())}


@dataclass
class DisentangleResult:
    table: pd.DataFrame
    metrics: dict
    note: str


def probe_training_set(synth, height: int, width: int, folder: str | Path, ids: int = PROBE_IDS,
                       ) -> tuple[Tensor, pd.DataFrame]:
    """A fresh synthetic set for the probe: ``ids`` new identities, the data set's style and cameras.

    Written to ``folder`` (which must not exist) with the seed
    ``synth.seed + PROBE_SEED_OFFSET`` and one image per identity and camera
    visited; returns its images decoded at ``height`` x ``width`` and their
    attribute labels. So many identities keep the probe from learning
    "identity -> attributes" (the data set itself has only a few dozen).
    """
    import dataclasses

    from dgnet.data.dataset import ImageCache
    from dgnet.data.layouts import load_layout
    from dgnet.data.synth import write_synthetic

    cfg = dataclasses.replace(synth, train_ids=ids, test_ids=2, distractors=0, junk=0, images_per_camera=1,
                              seed=synth.seed + PROBE_SEED_OFFSET)
    write_synthetic(folder, cfg)
    samples = load_layout("synthetic", folder).train
    labels = labels_for(samples, read_attributes(folder))
    return ImageCache([s.path for s in samples], height, width, progress=False).images, labels


def build_probe(synth, height: int, width: int, seed: int = 0, epochs: int = PROBE_EPOCHS,
                probe_ids: int = PROBE_IDS, device: str | torch.device = "cpu", progress: bool = False,
                probe_width: int = PROBE_WIDTH) -> Probe:
    """Draw the probe's own synthetic set (:func:`probe_training_set`, in a scratch folder) and train
    the probe on it. Deterministic: the same arguments give the same probe."""
    import shutil
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="dgnet_probe_"))
    try:
        images, labels = probe_training_set(synth, height, width, scratch / "probe_set", probe_ids)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    probe = train_probe(images, labels, epochs=epochs, seed=seed, device=device, progress=progress,
                        width=probe_width)
    probe.trained_on = {"images": int(images.shape[0]), "ids": probe_ids, "epochs": epochs, "seed": seed,
                        "height": height, "width": width, "probe_width": probe_width}
    return probe


def save_probe(probe: Probe, path: str | Path) -> None:
    """An atomic, byte-deterministic checkpoint of the probe (``load_probe`` reads it back)."""
    from dgnet import io

    io.save_checkpoint(path, {"kind": "attribute_probe", "state_dict": probe.model.state_dict(),
                              "classes": probe.classes, "trained_on": probe.trained_on})


def load_probe(path: str | Path, height: int, width: int, device: str | torch.device = "cpu") -> Probe:
    """The probe ``save_probe`` wrote; a clear error when the file is not one or was trained at another size."""
    from dgnet import io

    state = io.load_checkpoint(path, map_location=device)
    if not isinstance(state, dict) or state.get("kind") != "attribute_probe":
        raise io.CheckpointError(f"{path}: not an attribute-probe checkpoint (run the probe stage: dvc repro probe)")
    size = (state["trained_on"].get("height"), state["trained_on"].get("width"))
    if size != (height, width):
        raise io.CheckpointError(f"{path}: probe trained at {size[0]}x{size[1]}, the images are {height}x{width} "
                                 "(rerun the probe stage: dvc repro probe)")
    width = state["state_dict"]["trunk.0.weight"].shape[0]  # the first convolution's channels: any probe width
    model = AttributeProbe({a: len(c) for a, c in state["classes"].items()}, width)
    model.load_state_dict(state["state_dict"])
    device = torch.device(device)
    return Probe(model.to(device).eval(), state["classes"], device, state["trained_on"])


def evaluate(root: str | Path, synth, train_samples: Sequence[Sample], train_images: Tensor,
             test_samples: Sequence[Sample], generated: Mapping[str, Tensor], tables: Mapping[str, pd.DataFrame],
             height: int, width: int, device: str | torch.device = "cpu", seed: int = 0,
             epochs: int = PROBE_EPOCHS, probe_ids: int = PROBE_IDS, progress: bool = False,
             probe: Probe | None = None) -> DisentangleResult:
    """Measure the probe on real test images, score every model's cross-id generations.

    ``probe``: a trained probe (the ``probe`` stage's, :func:`load_probe`);
    without one it is built here (:func:`build_probe` with ``seed``,
    ``epochs`` and ``probe_ids``).

    ``root`` is the synthetic data set (its ``attributes.csv``) and ``synth``
    its :class:`dgnet.config.SynthConfig` (style, cameras, stored size: the
    probe's own training set is drawn alike, see :func:`probe_training_set`).
    ``generated[name]`` are the uint8 images of a generated set and
    ``tables[name]`` its ``generated.csv`` rows (``appearance_index`` /
    ``structure_index`` into ``train_samples``).
    """
    from dgnet.data.dataset import ImageCache

    attributes = read_attributes(root)
    train_labels = labels_for(train_samples, attributes)
    test = [s for s in test_samples if _key(s.path) in attributes.index
            and attributes.at[_key(s.path), "kind"] == "person"]
    test_labels = labels_for(test, attributes)
    test_images = ImageCache([s.path for s in test], height, width, progress=False).images
    if probe is None:
        probe = build_probe(synth, height, width, seed, epochs, probe_ids, device, progress)
    trained_on = probe.trained_on
    acc_real = accuracy(probe.predict(test_images), test_labels)
    acc_train = accuracy(probe.predict(train_images), train_labels)
    priors = marginals(train_labels)
    frames, metrics = [], {"probe_accuracy_test": acc_real, "probe_accuracy_train": acc_train,
                           "probe_images": trained_on.get("images"), "test_images": len(test),
                           "models": {}, "summary": {}}
    for name, images in generated.items():
        tab = tables[name]
        cross = (tab["appearance_pid"] != tab["structure_pid"]).to_numpy()
        ia = tab["appearance_index"].to_numpy()[cross]
        js = tab["structure_index"].to_numpy()[cross]
        predicted = probe.predict(images[torch.from_numpy(np.flatnonzero(cross))])
        scores = score_generations(predicted, train_labels.iloc[ia].reset_index(drop=True),
                                   train_labels.iloc[js].reset_index(drop=True), priors)
        scores.insert(0, "model", name)
        scores.insert(3, "probe accuracy (real test images)", scores["attribute"].map(acc_real))
        frames.append(scores)
        s = summary(scores)
        metrics["models"][name] = {"cross_id_images": int(cross.sum()), **s,
                                   "scores": scores.drop(columns="model").to_dict(orient="records")}
        key = name.lower().replace(" ", "_").replace("/", "").replace("-", "")
        metrics["summary"].update({f"{key}/{k}": v for k, v in s.items()})
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    for col in ("probe accuracy (real test images)", "follows appearance source", "follows structure source",
                "chance"):
        if col in table:
            table[col] = table[col].round(3)
    met = {a: bool(acc_real.get(a, 0.0) >= t) for a, t in PROBE_TARGETS.items()}
    metrics["probe_targets_met"] = met
    targets = ", ".join(f"{a} {100 * acc_real.get(a, float('nan')):.1f}% ({'met' if met[a] else 'NOT met'})"
                        for a in PROBE_TARGETS)
    note = (f"Probe: a small CNN trained ({trained_on.get('epochs')} epochs) on {trained_on.get('images')} images of "
            f"{trained_on.get('ids')} fresh synthetic identities (same style and cameras, seed + {PROBE_SEED_OFFSET}); "
            f"its accuracy is measured on {len(test)} real test images. Generated images: the cross-identity "
            "pairs of each generated set; per attribute only pairs whose two sources differ count, so the two "
            "'follows' rates and 'neither' sum to 1. Expected: clothing attributes follow the appearance "
            "source; orientation (view, and facing for side views), camera (background, illumination), bag "
            "and hair the structure source. chance = a prediction drawn from the training images' attribute "
            "frequencies, independent of the image. "
            f"The probe's accuracy on the real test images against the target of 85% (docs/synthetic_world.md): "
            f"{targets}.")
    return DisentangleResult(table, metrics, note)


__all__ = [
    "APPEARANCE_ATTRIBUTES", "ATTRIBUTES", "AttributeProbe", "DisentangleResult", "KIND", "PROBE_TARGETS", "Probe",
    "STRUCTURE_ATTRIBUTES", "accuracy", "build_probe", "evaluate", "labels_for", "load_probe", "marginals",
    "read_attributes", "probe_training_set", "save_probe", "score_generations", "summary", "train_probe",
]
