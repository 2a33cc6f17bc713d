"""``dgnet train-teacher`` and ``dgnet train``.

    dgnet train-teacher --params params.yaml --out models/teacher.pt
    dgnet train --params params.yaml --teacher models/teacher.pt --out models/dgnet [--resume]
"""

from __future__ import annotations

from dgnet.config import load_config


def _train_teacher(args) -> int:
    from dgnet.stages.runs import run_teacher

    cfg = load_config(args.params)
    metrics = run_teacher(cfg, args.out, args.metrics, progress=not args.quiet)
    print(f"teacher: Rank@1 {metrics['rank1']:.4f}  mAP {metrics['mAP']:.4f}  -> {args.out}")
    return 0


def _train(args) -> int:
    from dgnet.stages.runs import run_dgnet

    cfg = load_config(args.params)
    metrics = run_dgnet(cfg, args.teacher, args.out, args.figure, args.metrics,
                        resume=args.resume, progress=not args.quiet)
    print(f"dgnet: {metrics['iterations']} iterations in {metrics['train_seconds']:.0f} s -> {args.out}/last.pt")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("train-teacher", help="train the teacher / baseline re-id model")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--out", default="models/teacher.pt")
    p.add_argument("--metrics", default="reports/metrics/teacher.json")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_train_teacher)

    p = sub.add_parser("train", help="train DG-Net jointly (E_a, E_s, G, D)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--teacher", default="models/teacher.pt")
    p.add_argument("--out", default="models/dgnet", help="checkpoint folder (last.pt)")
    p.add_argument("--figure", default="reports/figures/dgnet_samples.png")
    p.add_argument("--metrics", default="reports/metrics/train_dgnet.json")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)
