"""Validation mAP of the Baseline (the teacher) trained for more epochs, over seeds.

    python -m benchmarks.baseline_length [--epochs 20 40 60] [--seeds 0 1 2] [--set KEY=VALUE ...] [--label NAME]

Answers "does the Baseline also gain from a longer schedule?", the question
the longer DG-Net curves (``training_curves.py``) leave open: there only
DG-Net was trained longer. Trains the teacher on the training identities
minus the validation identities (``data.val_ids``) once per (epochs, seed),
with the learning-rate steps kept at their fraction of the run (the default:
epoch 15 of 20), and scores it on the held-out validation identities (never
the test set), as ``training_curves.py`` scores its Baseline. Prints the table
and writes ``benchmarks/results/baseline_length[_LABEL].{json,png}``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from dgnet import io
from dgnet.config import apply_overrides, preset_config, replace
from dgnet.tracking import Run
from dgnet.data.loading import load_training_set
from dgnet.stages.runs import evaluate_teacher
from dgnet.train.teacher import train_teacher

RESULTS = Path(__file__).resolve().parent / "results"


def stretched(cfg, epochs: int, seed: int):
    """The teacher schedule at ``epochs``, its lr steps at the same fractions of the run."""
    t = cfg.teacher
    steps = [max(1, round(s * epochs / t.epochs)) for s in t.lr_step_epochs]
    return replace(cfg, **{"teacher.epochs": epochs, "teacher.lr_step_epochs": steps, "teacher.seed": seed})


def plot(path: Path, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    for seed in result["seeds"]:
        rows = [r for r in result["runs"] if r["seed"] == seed]
        ax.plot([r["epochs"] for r in rows], [100 * r["mAP"] for r in rows], "o-", label=f"seed {seed}")
    ax.set(xlabel="teacher epochs", ylabel="validation mAP (%)", title="Baseline trained longer")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    io.save_figure(fig, path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default")
    parser.add_argument("--epochs", type=int, nargs="+", default=[20, 40, 60])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config change")
    parser.add_argument("--label", default="", help="suffix of the output files")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = apply_overrides(preset_config(args.config), args.set)
    data = load_training_set(cfg.data, hold_out_validation=True, progress=False, resize=cfg.switches.resize)
    out = RESULTS / f"baseline_length{'_' + args.label if args.label else ''}.json"
    result = {"config": cfg.name, "changes": args.set, "seeds": args.seeds, "epochs": args.epochs,
              "images_per_epoch": len(data.labels), "default_lr_step_epochs": cfg.teacher.lr_step_epochs,
              "split": "validation identities (data.val_ids), training ids minus those for training", "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for epochs in args.epochs:
                run_cfg = stretched(cfg, epochs, seed)
                began = time.perf_counter()
                teacher = train_teacher(run_cfg, data.images, data.labels, data.num_classes,
                                        Path(tmp) / "teacher.pt", Run(None, None), progress=False)
                scored = evaluate_teacher(run_cfg, teacher, validation=True, progress=False)
                row = {"seed": seed, "epochs": epochs, "lr_step_epochs": run_cfg.teacher.lr_step_epochs,
                       "mAP": float(scored["mAP"]), "rank1": float(scored["rank1"]),
                       "seconds": round(time.perf_counter() - began, 1)}
                result["runs"].append(row)
                io.write_json(out, result)
                print(f"seed {seed}, {epochs:3d} epochs: val mAP {100 * row['mAP']:.1f}  "
                      f"Rank@1 {100 * row['rank1']:.1f}  ({row['seconds']:.0f} s)", flush=True)
    for epochs in args.epochs:
        maps = [100 * r["mAP"] for r in result["runs"] if r["epochs"] == epochs]
        spread = f" ± {statistics.stdev(maps):.1f}" if len(maps) > 1 else ""
        print(f"{epochs:3d} epochs: mean val mAP {statistics.mean(maps):.1f}{spread} over {len(maps)} seed(s)")
    plot(out.with_suffix(".png"), result)
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
