"""Validation mAP and reconstruction loss of a long DG-Net run, against the Baseline's validation mAP.

    python -m benchmarks.training_curves [--config default] [--iterations 3000] [--every 150]
                                         [--stop-at N] [--set KEY=VALUE ...] [--label NAME] [--pretrain]
                                         [--probe PATH] [--no-baseline]

Answers "would the CPU default reproduce with a longer schedule?". Trains the
Baseline (teacher) once on the training identities minus the validation
identities (``data.val_ids``), then DG-Net for ``--iterations`` with the
default's schedule stretched to that length (warm-up, ramp and lr steps keep
their fractions). Every ``--every`` iterations it scores E_a on the held-out
validation identities (never the test set): f_prim alone (beta 0) and
f_prim + beta f_fine (the config's beta), records the last logged losses
(self-reconstruction L1 ``img1`` among them) and, on the synthetic data, runs
the ground-truth attribute probe on G(a_i, s_j) for cross-identity pairs of
training images (as the generation-eval stage does, without the JPEG round
trip): how often the top and bottom colour follow the appearance source and
the camera the structure source. Writes
``benchmarks/results/training_curves[_LABEL].json`` and a PNG beside it.
``--stop-at N`` ends the run after iteration N of the ``--iterations``
schedule, to compare the first part of a long run with another's.
``--pretrain`` first pre-trains the backbone as the ``pretrain`` stage does,
at this run's input size (e.g. with ``--set data.height=32 --set
data.width=16``), instead of loading ``model.backbone.pretrained``.
``--probe PATH`` loads the probe stage's probe instead of training one;
``--no-baseline`` (with ``--stop-at`` at most ``train.warm_iter``, where no
loss reads the teacher) skips the Baseline, for the swap probe at the end of
the warm-up.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dgnet import io
from dgnet.config import apply_overrides, preset_config, replace, with_iterations
from dgnet.data.transforms import normalize
from dgnet.eval import disentangle
from dgnet.models import build_teacher, without_pretrained
from dgnet.eval.generation import GENERATION_SEED, generate, random_partners, to_uint8
from dgnet.tracking import Run
from dgnet.data.loading import load_training_set, test_sets
from dgnet.train.loop import train_dgnet
from dgnet.stages.pretrain import run_pretrain
from dgnet.stages.runs import evaluate_teacher
from dgnet.train.teacher import train_teacher
from dgnet.eval.validation import ValidationScorer

RESULTS = Path(__file__).resolve().parent / "results"


class StopAt(Exception):
    """Raised by the iteration hook to end the run early (``--stop-at``)."""


class LossRecorder(Run):
    """A tracking handle that keeps the logged losses instead of sending them anywhere."""

    def __init__(self):
        super().__init__(None, None)
        self.last: dict[str, float] = {}

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.last = {k: float(v) for k, v in metrics.items() if k.startswith("loss/")}


PROBED = {"top_color": "follows appearance source", "bottom_color": "follows appearance source",
          "camid": "follows structure source"}


class SwapProbe:
    """The attribute probe on G(a_i, s_perm(i)) over the cross-identity pairs of the training images."""

    def __init__(self, cfg, samples, images: torch.Tensor, probe_path: str | None = None):
        self.images = images
        if probe_path:
            self.probe = disentangle.load_probe(probe_path, cfg.data.height, cfg.data.width)
        else:
            self.probe = disentangle.build_probe(cfg.data.synth, cfg.data.height, cfg.data.width,
                                                 epochs=cfg.probe.epochs, probe_ids=cfg.probe.ids,
                                                 probe_width=cfg.probe.width)
        labels = disentangle.labels_for(samples, disentangle.read_attributes(cfg.data.root))
        self.priors = disentangle.marginals(labels)
        partner = random_partners(len(samples), GENERATION_SEED)
        pids = np.array([s.pid for s in samples])
        self.appearance = np.flatnonzero(pids != pids[partner])
        self.structure = partner[self.appearance]
        self.appearance_labels = labels.iloc[self.appearance].reset_index(drop=True)
        self.structure_labels = labels.iloc[self.structure].reset_index(drop=True)

    def score(self, nets) -> dict[str, float]:
        fakes = []
        for start in range(0, len(self.appearance), 64):
            a, s = self.appearance[start:start + 64], self.structure[start:start + 64]
            fakes.append(to_uint8(generate(nets, normalize(self.images[a]), normalize(self.images[s]))))
        scores = disentangle.score_generations(self.probe.predict(torch.cat(fakes)), self.appearance_labels,
                                               self.structure_labels, self.priors, names=tuple(PROBED))
        return {row["attribute"]: float(row[PROBED[row["attribute"]]]) for _, row in scores.iterrows()}


def plot(path: Path, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = result["points"]
    its = [p["iteration"] for p in points]
    probed = any(p.get("probe") for p in points)
    fig, axes = plt.subplots(1, 3 if probed else 2, figsize=(15 if probed else 10, 3.6))
    left, right = axes[0], axes[1]
    model = "w/o feed" if "train.feed_generated=false" in result["changes"] else "DG-Net"
    left.plot(its, [100 * p["mAP_prim"] for p in points], "o-", label=f"{model} f_prim")
    left.plot(its, [100 * p["mAP_combined"] for p in points], "s-", label=f"{model} f_prim + {result['beta']:g} f_fine")
    left.axhline(100 * result["baseline"]["mAP"], color="k", ls="--", label="Baseline (teacher)")
    for name, at in (("warm-up ends", result["warm_iter"]), *(("lr step", s) for s in result["lr_steps"])):
        left.axvline(at, color="grey", lw=0.8, ls=":")
    left.set(xlabel="iteration", ylabel="validation mAP (%)", title="Re-id on validation identities")
    left.legend(fontsize=8)
    right.plot(its, [p["losses"].get("loss/img1", float("nan")) for p in points], "o-", label="self-recon L1 (img1)")
    right.plot(its, [p["losses"].get("loss/img2", float("nan")) for p in points], "s-", label="same-id recon L1 (img2)")
    right.set(xlabel="iteration", ylabel="L1 (normalised pixels)", title="Reconstruction")
    right.legend(fontsize=8)
    if probed:
        for attribute, source in PROBED.items():
            axes[2].plot(its, [100 * p["probe"][attribute] for p in points], "o-",
                         label=f"{attribute} {source.replace('follows ', 'follows the ')}")
        axes[2].axhline(60, color="k", ls="--", lw=0.8, label="60% (the claims issue's bar)")
        axes[2].set(xlabel="iteration", ylabel="cross-identity pairs (%)", title="Attribute probe on G(a_i, s_j)",
                    ylim=(0, 100))
        axes[2].legend(fontsize=7)
    fig.suptitle(f"{result['config']}, seed {result['seed']}, {result['iterations']} iterations "
                 f"({result['label']})", fontsize=9)
    fig.tight_layout()
    io.save_figure(fig, path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default")
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--every", type=int, default=150, help="validation every N iterations")
    parser.add_argument("--stop-at", type=int, default=0, metavar="N",
                        help="end after iteration N; the schedule stays that of --iterations")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config change")
    parser.add_argument("--label", default="", help="suffix of the output files")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--pretrain", action="store_true",
                        help="pre-train the backbone first (the pretrain stage's recipe, at this input size)")
    parser.add_argument("--probe", metavar="PATH",
                        help="the attribute probe to load (e.g. the probe stage's models/attribute_probe.pt); "
                             "default: train one as the probe stage does")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the Baseline (with --stop-at at most train.warm_iter: no loss reads the teacher)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = with_iterations(apply_overrides(preset_config(args.config), args.set), args.iterations)
    resize = cfg.switches.resize
    data = load_training_set(cfg.data, hold_out_validation=True, progress=False, resize=resize)
    query, gallery, _ = test_sets(cfg.data, validation=True, resize=resize)
    beta = cfg.eval.beta
    scorer = ValidationScorer(query, gallery, cfg.eval, torch.device(cfg.runtime.device), (0.0, beta))
    suffix = f"_{args.label}" if args.label else ""
    out = RESULTS / f"training_curves{suffix}.json"
    result = {"config": cfg.name, "label": args.label or "default", "changes": args.set, "seed": cfg.train.seed,
              "input": f"{cfg.data.height}x{cfg.data.width}",
              "iterations": cfg.train.iterations, "warm_iter": cfg.train.warm_iter, "lr_steps": cfg.train.lr_steps,
              "stopped_at": args.stop_at or cfg.train.iterations, "beta": beta, "split": "validation identities (data.val_ids), training ids minus those for training",
              "points": []}
    if args.no_baseline and not 0 < args.stop_at <= cfg.train.warm_iter:
        parser.error(f"--no-baseline needs --stop-at N with N <= train.warm_iter ({cfg.train.warm_iter})")
    probe = SwapProbe(cfg, data.samples, data.images, args.probe) if cfg.data.layout == "synthetic" else None
    recorder = LossRecorder()
    began = time.perf_counter()

    def record(nets, iteration):
        if iteration % args.every and iteration != cfg.train.iterations:
            return
        score = scorer.score(nets["appearance"])
        point = {"iteration": iteration, "mAP_prim": score["mAP_by_beta"][0.0],
                 "mAP_combined": score["mAP_by_beta"][beta], "losses": dict(recorder.last),
                 "probe": probe.score(nets) if probe else {}, "seconds": round(time.perf_counter() - began, 1)}
        result["points"].append(point)
        probed = "  ".join(f"{k} {100 * v:.0f}%" for k, v in point["probe"].items())
        print(f"it {iteration:5d}: val mAP f_prim {100 * point['mAP_prim']:.1f}  combined "
              f"{100 * point['mAP_combined']:.1f}  img1 {point['losses'].get('loss/img1', float('nan')):.3f}  "
              f"{probed}  ({point['seconds']:.0f} s)", flush=True)
        io.write_json(out, result)
        if args.stop_at and iteration >= args.stop_at:
            raise StopAt

    with tempfile.TemporaryDirectory() as tmp:
        if args.pretrain:
            weights = Path(tmp) / "pretrained_backbone.pth"
            run_pretrain(replace(cfg, **{"tracking.uri": "none"}), Path(tmp) / "pretrain", weights,
                         Path(tmp) / "pretrain.json", progress=False)
            cfg = replace(cfg, **{"model.backbone.pretrained": str(weights)})
            result["pretrained"] = f"here, at {cfg.data.height}x{cfg.data.width} (--pretrain)"
        if args.no_baseline:  # an untrained stand-in: L_prim is off until warm_iter, nothing reads it
            teacher = build_teacher(without_pretrained(cfg.model), data.num_classes)
            result["baseline"] = {"mAP": float("nan"), "rank1": float("nan"), "skipped": True}
        else:
            teacher = train_teacher(cfg, data.images, data.labels, data.num_classes, Path(tmp) / "teacher.pt",
                                    Run(None, None), progress=False)
            scored = evaluate_teacher(cfg, copy.deepcopy(teacher), validation=True, progress=False)
            result["baseline"] = {"mAP": float(scored["mAP"]), "rank1": float(scored["rank1"])}
            print(f"Baseline (teacher) val mAP {100 * result['baseline']['mAP']:.1f}", flush=True)
        try:
            train_dgnet(cfg, data.images, data.labels, data.num_classes, teacher, Path(tmp) / "dgnet", recorder,
                        progress=False, iteration_hook=record)
        except StopAt:
            pass
    io.write_json(out, result)
    plot(out.with_suffix(".png"), result)
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
