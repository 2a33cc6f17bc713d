"""Can the attribute probe read each identity cue of a synthetic world at the default input size?

    python -m benchmarks.synth_readability --world classic
    python -m benchmarks.synth_readability --world readable [--epochs 8] [--width 16]

Writes the default synthetic set (``data.synth`` of the default preset, with
``world`` set) and the probe's own training set (1000 fresh identities,
:func:`dgnet.eval.disentangle.probe_training_set`, as the probe stage draws
it) to a temporary folder, trains the probe on those real images and
measures it on the set's real test images (query + gallery images of test
identities that show a whole person), at ``data.height`` x ``data.width``.
Prints and writes ``benchmarks/results/synth_readability_<world>.json``:
per attribute the probe's accuracy, the majority-class rate (the most
frequent training value's share of the test images), the colour-twin
identities and the seconds taken. Run one at a time (one CPU thread).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

from dgnet.config import preset_config
from dgnet.data.dataset import ImageCache
from dgnet.data.layouts import load_layout
from dgnet.data.synth import write_synthetic
from dgnet.eval.disentangle import (ATTRIBUTES, PROBE_EPOCHS, PROBE_IDS, accuracy, labels_for,
                                    probe_training_set, read_attributes, train_probe)

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = ("top_color", "bottom_color", "hair_color", "hair_long", "bag", "sleeves", "top_texture")
TARGET = 0.85


def colour_twins(attributes) -> int:
    """Identities (train and test) whose top + bottom colours another identity also wears."""
    people = attributes[attributes["pid"].astype(int) > 0].drop_duplicates("pid")
    pairs = Counter(zip(people["top_color"], people["bottom_color"]))
    return int(sum(pairs[(t, b)] > 1 for t, b in zip(people["top_color"], people["bottom_color"])))


def confusions(predicted, labels, top: int = 4) -> dict[str, list]:
    """Per attribute the most frequent (true, predicted) mistakes and their counts."""
    out = {}
    for a in ATTRIBUTES:
        wrong = Counter((t, p) for t, p in zip(labels[a], predicted[a]) if t != p)
        out[a] = [[t, p, n] for (t, p), n in wrong.most_common(top)]
    return out


def test_set(root: Path, height: int, width: int):
    attributes = read_attributes(root)
    splits = load_layout("synthetic", root)
    test = [s for s in splits.query + splits.gallery
            if attributes.at[f"{Path(s.path).parent.name}/{Path(s.path).name}", "kind"] == "person"]
    images = ImageCache([s.path for s in test], height, width, progress=False).images
    return images, labels_for(test, attributes), attributes


def measure(world: str, epochs: int, width: int, probe_ids: int, seed: int) -> dict:
    cfg = preset_config("default")
    synth = dataclasses.replace(cfg.data.synth, world=world, seed=seed)
    h, w = cfg.data.height, cfg.data.width
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="synth_readability_") as tmp:
        layout = write_synthetic(Path(tmp) / "set", synth)
        test_images, test_labels, attributes = test_set(Path(tmp) / "set", h, w)
        train_images, train_labels = probe_training_set(synth, h, w, Path(tmp) / "probe_set", probe_ids)
    drawn = time.perf_counter() - began
    probe = train_probe(train_images, train_labels, epochs=epochs, width=width)
    predicted = probe.predict(test_images)
    acc = accuracy(predicted, test_labels)
    acc_train = accuracy(probe.predict(train_images), train_labels)
    majority = {a: float((test_labels[a] == train_labels[a].value_counts().idxmax()).mean()) for a in ATTRIBUTES}
    ids = int((attributes["pid"].astype(int) > 0).groupby(attributes["pid"]).any().sum())
    return {
        "world": world, "seed": seed, "height": h, "width": w, "probe": {"epochs": epochs, "width": width, "ids": probe_ids,
                                                          "train_images": int(train_images.shape[0])},
        "layout": {k: layout[k] for k in ("train", "query", "gallery", "cameras")},
        "test_images": int(test_images.shape[0]), "identities": ids, "colour_twins": colour_twins(attributes),
        "accuracy": acc, "accuracy_probe_training_images": acc_train, "majority": majority, "confusions": confusions(predicted, test_labels),
        "targets_met": all(acc[a] >= TARGET for a in TARGETS),
        "seconds_drawing": round(drawn, 1), "seconds": round(time.perf_counter() - began, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default="classic")
    parser.add_argument("--epochs", type=int, default=PROBE_EPOCHS)
    parser.add_argument("--width", type=int, default=16, help="probe width (AttributeProbe)")
    parser.add_argument("--probe-ids", type=int, default=PROBE_IDS, help="identities of the probe's training set")
    parser.add_argument("--seed", type=int, default=0, help="data.synth.seed (the default set: 0)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = measure(args.world, args.epochs, args.width, args.probe_ids, args.seed)
    print(f"{'attribute':14s} {'probe':>6s} {'majority':>8s} {'(train)':>8s}")
    for a in ATTRIBUTES:
        mark = " *" if a in TARGETS and result["accuracy"][a] < TARGET else ""
        print(f"{a:14s} {result['accuracy'][a]:6.3f} {result['majority'][a]:8.3f} "
              f"{result['accuracy_probe_training_images'][a]:8.3f}{mark}")
    print(f"colour twins {result['colour_twins']} of {result['identities']} identities; "
          f"targets met: {result['targets_met']}; {result['seconds']} s")
    out = args.out or RESULTS / f"synth_readability_{args.world}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
