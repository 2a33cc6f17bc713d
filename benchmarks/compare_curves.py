"""Several validation curves of ``training_curves.py`` on one time axis: what each configuration buys per minute.

    python -m benchmarks.compare_curves LABEL [LABEL ...] [--out NAME]

Reads ``benchmarks/results/training_curves_LABEL.json`` for each label and
plots, against the run's seconds on its machine (the Baseline's training
included), DG-Net's validation mAP minus its own run's Baseline (f_prim +
beta f_fine) and the three ground-truth probe values. Prints one row per run
(input size, seed, iterations, final gap, first iteration at or above the
Baseline) and writes ``benchmarks/results/NAME.png`` and ``NAME.json``
(default name ``compare_curves``). Nothing is trained: the numbers are the
result files' own.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


from dgnet import io
from dgnet.entry import run_guarded
from dgnet.errors import UserError

RESULTS = Path(__file__).resolve().parent / "results"
PROBED = ("top_color", "bottom_color", "camid")


def input_size(result: dict) -> str:
    """The run's input size: recorded by newer runs, else read from its ``--set`` changes (default 64x32)."""
    if "input" in result:
        return result["input"]
    changes = dict(change.split("=", 1) for change in result.get("changes", []))
    return f"{changes.get('data.height', '64')}x{changes.get('data.width', '32')}"


def load(label: str) -> dict:
    path = RESULTS / f"training_curves_{label}.json"
    if not path.is_file():
        raise UserError(f"{path}: no such result; run python -m benchmarks.training_curves --label {label} first")
    result = json.loads(path.read_text())
    if "baseline" not in result or not result.get("points"):
        raise UserError(f"{path}: the run has no Baseline or no validation point yet; let it finish")
    return result


def summary_row(label: str, result: dict) -> dict:
    baseline = 100 * result["baseline"]["mAP"]
    gaps = [(p["iteration"], 100 * p["mAP_combined"] - baseline) for p in result["points"]]
    first_even = next((it for it, gap in gaps if gap >= 0), None)
    return {"label": label, "input": input_size(result), "seed": result["seed"],
            "iterations": result.get("stopped_at", result["iterations"]), "baseline_mAP": round(baseline, 1),
            "final_gap": round(gaps[-1][1], 1), "first_iteration_at_baseline": first_even,
            "seconds": result["points"][-1]["seconds"],
            "final_probe": {k: round(100 * v, 1) for k, v in result["points"][-1].get("probe", {}).items()}}


def plot(path: Path, results: dict[str, dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 1 + len(PROBED), figsize=(18, 3.8))
    for index, (label, result) in enumerate(results.items()):
        style = {"color": f"C{index}", "marker": "o", "ms": 3}
        points, baseline = result["points"], 100 * result["baseline"]["mAP"]
        minutes = [p["seconds"] / 60 for p in points]
        name = f"{input_size(result)}, seed {result['seed']}, {result['iterations']} it ({label})"
        axes[0].plot(minutes, [100 * p["mAP_combined"] - baseline for p in points], label=name, **style)
        for axis, attribute in zip(axes[1:], PROBED):
            if points[0].get("probe"):
                axis.plot(minutes, [100 * p["probe"][attribute] for p in points], label=name, **style)
    axes[0].axhline(0, color="k", ls="--", lw=0.8)
    axes[0].set(xlabel="minutes (Baseline + DG-Net, this machine)", ylabel="DG-Net - Baseline (mAP, pp)",
                title="Validation re-id: gap to the run's Baseline")
    axes[0].legend(fontsize=6)
    for axis, attribute in zip(axes[1:], PROBED):
        axis.axhline(60, color="k", ls="--", lw=0.8)
        axis.set(xlabel="minutes", ylabel="cross-identity pairs (%)", title=f"probe: {attribute}", ylim=(0, 100))
    fig.tight_layout()
    io.save_figure(fig, path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labels", nargs="+", metavar="LABEL")
    parser.add_argument("--out", default="compare_curves", help="name of the PNG and JSON under benchmarks/results")
    args = parser.parse_args()
    results = {label: load(label) for label in args.labels}
    rows = [summary_row(label, result) for label, result in results.items()]
    for row in rows:
        reached = "never" if row["first_iteration_at_baseline"] is None else f"it {row['first_iteration_at_baseline']}"
        probe = "  ".join(f"{k} {v:.0f}%" for k, v in row["final_probe"].items())
        print(f"{row['label']:28s} {row['input']:>6s} seed {row['seed']} {row['iterations']:5d} it  "
              f"Baseline {row['baseline_mAP']:.1f}  gap {row['final_gap']:+.1f}  "
              f"first at Baseline: {reached}  {probe}  ({row['seconds'] / 60:.0f} min)")
    io.write_json(RESULTS / f"{args.out}.json", {"runs": rows})
    plot(RESULTS / f"{args.out}.png", results)
    print(f"wrote {RESULTS / (args.out + '.json')} and {RESULTS / (args.out + '.png')}")


if __name__ == "__main__":
    sys.exit(run_guarded(main))
