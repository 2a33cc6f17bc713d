"""Which `train.fidelity` suits the CPU default: validation mAP of `reference` vs `paper`, over seeds.

    python -m benchmarks.fidelity_default [--seeds 0 1] [--config default] [--iterations N]
    python -m benchmarks.fidelity_default --variants reference+whole_batch_bn --seeds 0 --out FILE

Trains one teacher on the training identities minus the validation identities
(``data.val_ids``), then DG-Net once per (fidelity, seed), and scores E_a on
the held-out validation identities (never the test set). Prints the table and
writes ``benchmarks/results/fidelity_default.json`` with every per-seed value
and the paired difference (reference - paper) with its standard error.

``--variants`` trains other fidelity settings instead (names in ``VARIANTS``):
``reference`` with one of its switches set as ``paper`` has it, to find which
switch makes ``reference`` collapse on the default's batch of 8.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from dgnet import io
from dgnet.config import preset_config, replace
from dgnet.tracking import Run
from dgnet.data.loading import load_training_set, test_sets
from dgnet.train.loop import train_dgnet
from dgnet.train.teacher import train_teacher
from dgnet.eval.validation import ValidationScorer

RESULTS = Path(__file__).resolve().parent / "results" / "fidelity_default.json"
VARIANTS = {  # name -> config changes
    "reference": {"train.fidelity": "reference"},
    "paper": {"train.fidelity": "paper"},
    # E_a's batch norm on the whole batch and the teacher's on its running statistics (reference: per half-batch)
    "reference+whole_batch_bn": {"train.fidelity": "reference", "train.appearance_bn": "whole_batch",
                                 "train.teacher_bn": "running"},
    # each loss the mean over the batch (reference: the sum of the half-batches' means)
    "reference+batch_mean": {"train.fidelity": "reference", "train.loss_sums": "batch_mean"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--iterations", type=int, default=None, help="default: the config's train.iterations")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the result does not depend on it)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["reference", "paper"])
    args = parser.parse_args()

    cfg = preset_config(args.config)
    if args.iterations:
        cfg = replace(cfg, **{"train.iterations": args.iterations})
    torch.set_num_threads(args.threads)
    data = load_training_set(cfg.data, hold_out_validation=True, progress=False)
    query, gallery, _ = test_sets(cfg.data, validation=True)
    scorer = ValidationScorer(query, gallery, cfg.eval, torch.device(cfg.runtime.device), (cfg.eval.beta,))
    results: dict[str, dict[int, dict]] = {name: {} for name in args.variants}
    with tempfile.TemporaryDirectory() as tmp:
        teacher = train_teacher(cfg, data.images, data.labels, data.num_classes, Path(tmp) / "teacher.pt",
                                Run(None, None), progress=False)
        for seed in args.seeds:
            for fidelity in results:
                run_cfg = replace(cfg, **{**VARIANTS[fidelity], "train.seed": seed})
                began = time.perf_counter()
                scores = {}

                def score_last(nets, iteration, last=run_cfg.train.iterations, scores=scores):
                    if iteration == last:
                        scores.update(scorer.score(nets["appearance"]))

                train_dgnet(run_cfg, data.images, data.labels, data.num_classes, teacher,
                            Path(tmp) / f"{fidelity}-{seed}", Run(None, None), progress=False,
                            iteration_hook=score_last)
                score = scores
                results[fidelity][seed] = {"mAP": score["mAP"], "rank1": score["rank1"],
                                           "seconds": round(time.perf_counter() - began, 1)}
                print(f"{fidelity:9s} seed {seed}: val mAP {score['mAP']:.4f}  Rank@1 {score['rank1']:.4f}  "
                      f"({results[fidelity][seed]['seconds']} s)", flush=True)
    summary = {"config": cfg.name, "iterations": cfg.train.iterations, "seeds": args.seeds,
               "variants": {name: VARIANTS[name] for name in args.variants}, "per_seed": results}
    if {"reference", "paper"} <= set(results):
        diffs = [results["reference"][s]["mAP"] - results["paper"][s]["mAP"] for s in args.seeds]
        summary["mAP_difference_reference_minus_paper"] = {
            "mean": statistics.mean(diffs),
            "stderr": statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else None,
            "values": diffs,
        }
        print(json.dumps(summary["mAP_difference_reference_minus_paper"], indent=1))
    io.write_json(args.out, summary)


if __name__ == "__main__":
    main()
