"""``dgnet tune``: Optuna studies on held-out validation ids (experiments/, mapped in its README).

    dgnet tune alpha-beta --trials 20 [--storage sqlite:///optuna.db] [--study NAME] [--iterations N]
    dgnet tune schedule --trials 30 --iterations 600 --report-every 100
    dgnet tune report --study alpha-beta-default      # best-params YAML + figures from the storage
    dgnet tune apply reports/tuning/alpha-beta-default_best_params.yaml [--params params.yaml]

Re-running a study command resumes the study (``--trials`` more trials);
several workers (processes or machines) run the same command against one
storage URL. experiments/README.md has the details.
"""

from __future__ import annotations

import argparse


def _betas(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(b) for b in text.split(",") if b.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _study(args) -> int:
    from dgnet.config import load_config
    from experiments.objective import StudySettings
    from experiments.spaces import DEFAULT_BETAS
    from experiments.tuning import run_study

    cfg = load_config(args.params)
    settings = StudySettings(
        space=args.space, study_name=args.study or f"{args.space}-{cfg.name}", storage=args.storage,
        trials=args.trials, iterations=args.iterations, report_every=args.report_every, seed=args.seed,
        pruner=args.pruner, pruner_startup_trials=args.pruner_startup, betas=args.betas or DEFAULT_BETAS,
        timeout=args.timeout, work_dir=args.work_dir, reports_dir=args.reports_dir, figures_dir=args.figures_dir,
        keep_checkpoints=args.keep_checkpoints, progress=not args.quiet,
        enqueue_config=args.params if args.enqueue_config else None, heartbeat=args.heartbeat,
    )
    _print_outputs(run_study(cfg, settings))
    return 0


def _print_outputs(out) -> None:
    counts = ", ".join(f"{n} {state.lower()}" for state, n in out.counts.items() if n)
    print(f"study {out.study_name}: {counts or 'no trials'}")
    if out.best_params_path is not None:
        print(f"best validation mAP {out.best_value:.4f} -> {out.best_params_path}")
    if out.trials_path is not None:
        print(f"trials: {out.trials_path}")
    for path in out.figures.values():
        print(f"figure: {path}")
    for note in out.notes:
        print(f"note: {note}")


def _report(args) -> int:
    from experiments.outputs import write_study_outputs
    from experiments.storage import load_study

    study = load_study(args.study, args.storage)
    _print_outputs(write_study_outputs(study, args.reports_dir, args.figures_dir))
    return 0


def _apply(args) -> int:
    from experiments.merge import apply_best_params

    changes = apply_best_params(args.file, args.params, write=not args.dry_run)
    verb = "would set" if args.dry_run else "set"
    print(f"{args.params}: {verb} " + ", ".join(f"{k} = {v}" for k, v in changes.items()))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", default="sqlite:///optuna.db",
                   help="any SQLAlchemy URL, e.g. postgresql+psycopg2://user:pass@host/db (default %(default)s)")
    p.add_argument("--reports-dir", default="reports/tuning", help="best-params YAML (default %(default)s)")
    p.add_argument("--figures-dir", default="reports/figures", help="figures (default %(default)s)")


def add_commands(sub) -> None:
    parser = sub.add_parser("tune", help="Optuna studies (alpha/beta, lambda schedule) on validation ids",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    tsub = parser.add_subparsers(dest="tune_command", required=True, metavar="ACTION")
    for space, help_text in (("alpha-beta", "search alpha (trained) and beta (scored on a grid per model)"),
                             ("schedule", "search warm-up, ramp, lambda_prim max, lambda_id, lambda_img")):
        p = tsub.add_parser(space, help=help_text)
        p.add_argument("--trials", type=int, required=True, help="trials this process runs")
        p.add_argument("--study", help="study name (default SPACE-CONFIG, e.g. alpha-beta-default)")
        p.add_argument("--params", default="params.yaml")
        p.add_argument("--iterations", type=int,
                       help="iterations per trial (default train.iterations; the schedule scales along)")
        p.add_argument("--report-every", type=int,
                       help="validate and report every N iterations (default iterations // 4)")
        p.add_argument("--pruner", choices=["median", "none"], default="median")
        p.add_argument("--pruner-startup", type=int, default=5, help="trials before pruning starts")
        p.add_argument("--seed", type=int, default=0, help="sampler seed (per trial: seed and trial number)")
        p.add_argument("--betas", type=_betas, help="beta grid of alpha-beta (default 0,0.25,0.5,0.75,1,1.5,2)")
        p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
        p.add_argument("--work-dir", default="models/tuning", help="teacher cache and trial checkpoints")
        p.add_argument("--keep-checkpoints", action="store_true", help="keep every trial's last.pt")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        p.add_argument("--heartbeat", type=float, default=60.0,
                       help="seconds between a running trial's heartbeats; a trial silent for 3x as long "
                            "(its worker was killed) is marked failed and retried once (default %(default)s)")
        p.add_argument("--enqueue-config", action="store_true",
                       help="first run the params file's own values as a trial (a comparison point)")
        _common(p)
        p.set_defaults(func=_study, space=space)

    p = tsub.add_parser("report", help="write a study's best-params YAML and figures again")
    p.add_argument("--study", required=True)
    _common(p)
    p.set_defaults(func=_report)

    p = tsub.add_parser("apply", help="merge a best-params YAML into params.yaml (validated)")
    p.add_argument("file", help="e.g. reports/tuning/alpha-beta-default_best_params.yaml")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--dry-run", action="store_true", help="check and print, write nothing")
    p.set_defaults(func=_apply)
