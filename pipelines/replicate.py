"""DVC stage ``replicate@SEED``: the central comparisons again, with another seed.

    python pipelines/replicate.py --seed 1

The main stages (``teacher``, ``train_*``, ``offline``, ``generation_eval``...)
run with ``train.seed`` / ``teacher.seed``; this stage reruns the models the
claims scorecard compares (Baseline, DG-Net, w/o feed, offline) with
``teacher.seed = train.seed = SEED``, through the same functions, and
evaluates them the same way. Except "w/o id": it is the one ablation that
cannot share the warm-up (it differs from iteration 0), the most expensive
training of the set, so on a 2-core CPU it runs for ``train.seed`` only and
its claim has one seed. Everything goes under ``models/seeds/SEED/`` and
``reports/seeds/SEED/``; the numbers the scorecard reads are in
``reports/seeds/SEED/metrics/``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dgnet import io
from dgnet.config import load_config, replace
from dgnet.errors import run_guarded
from dgnet.eval.generation import StagePaths, run_generation_eval
from dgnet.eval.table3 import run_table3
from dgnet.eval.variants import beta_sweep, evaluate_variants
from dgnet.train.runs import run_dgnet, run_offline, run_teacher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()
    progress = not args.quiet
    base = load_config("params.yaml")
    cfg = replace(base, **{"teacher.seed": args.seed, "train.seed": args.seed})
    models, reports = Path(f"models/seeds/{args.seed}"), Path(f"reports/seeds/{args.seed}")
    metrics, figures = reports / "metrics", reports / "figures"
    teacher = models / "teacher.pt"
    tag = f"seed{args.seed}"

    run_teacher(cfg, teacher, metrics / "teacher.json", progress, run_name=f"{tag}/teacher")
    warm = replace(cfg, **{"train.iterations": max(1, cfg.train.warm_iter)})
    run_dgnet(warm, teacher, models / "dgnet_warm", figures / "samples_dgnet_warm.png",
              metrics / "train_dgnet_warm.json", progress=progress, run_name=f"{tag}/dgnet_warm")
    warm_ckpt = models / "dgnet_warm" / "last.pt"
    variants = {
        "dgnet": (cfg, warm_ckpt),
        "dgnet_nofeed": (replace(cfg, **{"train.feed_generated": False}), warm_ckpt),
    }
    for name, (variant_cfg, init_from) in variants.items():
        run_dgnet(variant_cfg, teacher, models / name, figures / f"samples_{name}.png",
                  metrics / f"train_{name}.json", progress=progress, run_name=f"{tag}/{name}", init_from=init_from)

    dgnet_ckpt = models / "dgnet" / "last.pt"
    run_table3(cfg, dgnet_ckpt, metrics / "teacher.json", metrics / "table3.json", reports / "table3.md",
               reports / "table3.csv", figures / "rank_list.png", progress)
    ablations = evaluate_variants(cfg, {"w/o feed": models / "dgnet_nofeed" / "last.pt"}, progress)
    io.write_json(metrics / "ablations.json", ablations)
    betas = sorted(set(cfg.sweep.betas) | {cfg.eval.beta})
    io.write_json(metrics / "beta_sweep.json", {"points": beta_sweep(cfg, dgnet_ckpt, betas, progress)})
    run_offline(cfg, models / "dgnet_nofeed" / "last.pt", teacher, models / "generated_offline",
                models / "offline_reid.pt", metrics / "offline.json", progress)
    run_generation_eval(
        cfg,
        models={"DG-Net": dgnet_ckpt, "DG-Net w/o feed": models / "dgnet_nofeed" / "last.pt"},
        generated_dirs={"DG-Net": models / "generated_dgnet", "DG-Net w/o feed": models / "generated_nofeed"},
        paths=StagePaths(teacher=str(teacher), table_md=str(reports / "table2.md"),
                         table_csv=str(reports / "table2.csv"), metrics=str(metrics / "generation.json"),
                         disentangle_md=str(reports / "disentanglement.md"),
                         disentangle_csv=str(reports / "disentanglement.csv"), figures=str(figures)),
        progress=progress)


if __name__ == "__main__":
    sys.exit(run_guarded(main))
