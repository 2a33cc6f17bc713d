"""DVC stages ``replicate_train@SEED`` and ``replicate@SEED``: the central comparisons again, with another seed.

    python pipelines/replicate.py --seed 1 --train     # the models, under models/seeds/1/
    python pipelines/replicate.py --seed 1             # their evaluation, under reports/seeds/1/

The main stages (``teacher``, ``train_*``, ``offline``, ``generation_eval``...)
run with ``train.seed`` / ``teacher.seed``; this stage reruns the models the
claims scorecard compares on every seed (Baseline, DG-Net, w/o feed,
offline) with ``teacher.seed = train.seed = SEED``, through the same
functions, and evaluates them the same way (Table 9: the A -> B direction
only, the one the ``transfer`` claim reads; B -> A needs models trained on
B). The α sweep and "w/o id" run for ``train.seed`` only (the graph's cost
budget goes to the central comparisons: docs/claims_diagnosis.md section
16). As in the main stages: the warm-up alone, then DG-Net and w/o feed
from it side by side (``runtime.parallel_trainings``), then offline. The models (and their
training logs and samples) go under ``models/seeds/SEED/``, the generated sets under
``data/generated/seeds/SEED/`` and the evaluation under
``reports/seeds/SEED/``; the numbers the scorecard reads are in
``reports/seeds/SEED/metrics/``. Training and evaluation are separate stages,
so a test-time key (``eval.*``) reruns the evaluation only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dgnet import io, switches
from dgnet.config import Config, load_config, replace
from dgnet.entry import run_guarded
from dgnet.stages.generation import StagePaths, run_generation_eval
from dgnet.stages.table3 import run_table3
from dgnet.eval.variants import beta_sweep, direct_transfer, evaluate_variants, transfer_domains
from dgnet.train.loop import warm_up_config
from dgnet.train.parallel import Job, run_side_by_side
from dgnet.stages.runs import evaluate_offline_run, evaluate_teacher_run, run_dgnet, train_offline_run, train_teacher_run


def train(cfg: Config, seed: int, progress: bool) -> None:
    models = Path(f"models/seeds/{seed}")
    logs, teacher, tag = models / "train", models / "teacher.pt", f"seed{seed}"
    train_teacher_run(cfg, teacher, logs / "train_teacher.json", progress, run_name=f"{tag}/teacher")
    warm_ckpt = models / "dgnet_warm" / "last.pt"

    def dgnet_job(name: str, variant_cfg: Config, init_from: Path | None = None) -> Job:
        return Job(run_dgnet, variant_cfg, (teacher, models / name, logs / f"samples_{name}.png",
                                            logs / f"train_{name}.json"),
                   dict(progress=progress, run_name=f"{tag}/{name}", init_from=init_from, keep_progress=True))

    # the warm-up alone, then DG-Net and w/o feed from it side by side
    run_dgnet(warm_up_config(cfg), teacher, models / "dgnet_warm", logs / "samples_dgnet_warm.png",
              logs / "train_dgnet_warm.json", progress=progress, run_name=f"{tag}/dgnet_warm", keep_progress=True)
    run_side_by_side([dgnet_job("dgnet", cfg, warm_ckpt),
                      dgnet_job("dgnet_nofeed", replace(cfg, **{"train.feed_generated": False}), warm_ckpt)])
    train_offline_run(cfg, models / "dgnet_nofeed" / "last.pt", teacher, models / "generated_offline",
                      models / "offline_reid.pt", logs / "train_offline.json", progress, run_name=f"{tag}/offline_reid")


def evaluate(cfg: Config, seed: int, progress: bool) -> None:
    models, reports = Path(f"models/seeds/{seed}"), Path(f"reports/seeds/{seed}")
    metrics, figures, generated = reports / "metrics", reports / "figures", Path(f"data/generated/seeds/{seed}")
    teacher, tag = models / "teacher.pt", f"seed{seed}"
    evaluate_teacher_run(cfg, teacher, metrics / "teacher.json", run_name=f"{tag}/evaluate_teacher")
    dgnet_ckpt = models / "dgnet" / "last.pt"
    run_table3(cfg, dgnet_ckpt, metrics / "teacher.json", metrics / "table3.json", reports / "table3.md",
               reports / "table3.csv", figures / "rank_list.png", progress)
    ablations = evaluate_variants(cfg, {"w/o feed": models / "dgnet_nofeed" / "last.pt"}, progress)
    io.write_json(metrics / "ablations.json", ablations)
    betas = sorted(set(cfg.sweep.betas) | {cfg.eval.beta})
    io.write_json(metrics / "beta_sweep.json", {"points": beta_sweep(cfg, dgnet_ckpt, betas, progress)})
    if switches.transfer_off(cfg):  # data.transfer_layout: none
        switches.write_not_run(metrics / "transfer.json", switches.TRANSFER_OFF, rows=[])
    else:
        domains = transfer_domains(cfg)  # Table 9: this seed's models, trained on A, tested on B
        rows = direct_transfer(cfg, {"B": domains["B"]},
                               {"A": {"Baseline (teacher)": teacher, "DG-Net": dgnet_ckpt}}, progress)
        io.write_json(metrics / "transfer.json", {"domains": domains, "rows": rows})
    evaluate_offline_run(cfg, models / "offline_reid.pt", metrics / "offline.json", progress,
                         run_name=f"{tag}/evaluate_offline")
    run_generation_eval(
        cfg,
        models={"DG-Net": dgnet_ckpt, "DG-Net w/o feed": models / "dgnet_nofeed" / "last.pt"},
        generated_dirs={"DG-Net": generated / "dgnet", "DG-Net w/o feed": generated / "dgnet_nofeed"},
        paths=StagePaths(teacher=str(teacher), table_md=str(reports / "table2.md"),
                         table_csv=str(reports / "table2.csv"), metrics=str(metrics / "generation.json"),
                         disentangle_md=str(reports / "disentanglement.md"),
                         disentangle_csv=str(reports / "disentanglement.csv"), figures=str(figures)),
        progress=progress)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--train", action="store_true", help="train the models (default: evaluate them)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()
    base = load_config("params.yaml")
    cfg = replace(base, **{"teacher.seed": args.seed, "train.seed": args.seed})
    (train if args.train else evaluate)(cfg, args.seed, not args.quiet)


if __name__ == "__main__":
    sys.exit(run_guarded(main))
