"""DVC stages ``train_*``: joint DG-Net training, the main model and its variants.

    python pipelines/train_dgnet.py --name dgnet_warm --warm-only
    python pipelines/train_dgnet.py --name dgnet --warm-start models/dgnet_warm/last.pt
    python pipelines/train_dgnet.py --name dgnet_nofeed --set train.feed_generated=false --warm-start ...
    python pipelines/train_dgnet.py --name dgnet_noid --set train.id_supervision=false

Writes ``models/NAME/last.pt``, ``reports/figures/samples_NAME.png``,
``reports/metrics/train_NAME.json`` and the training curves
``reports/curves/NAME.csv``; logs the MLflow run ``NAME``. Variants
that differ only in keys acting after ``train.warm_iter`` start from the
shared warm-up checkpoint, which equals their own first ``warm_iter``
iterations (the training is seeded per iteration; the check is in
``dgnet.train.loop.check_warm_start``).
"""

import argparse
import sys

from dgnet.config import apply_overrides, load_config, replace
from dgnet.errors import run_guarded
from dgnet.train.runs import run_dgnet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="dgnet")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--warm-start", help="shared warm-up checkpoint to continue from")
    parser.add_argument("--warm-only", action="store_true", help="stop at train.warm_iter")
    parser.add_argument("--teacher", default="models/teacher.pt")
    args = parser.parse_args()
    cfg = apply_overrides(load_config("params.yaml"), args.set)
    if args.warm_only:
        cfg = replace(cfg, **{"train.iterations": max(1, cfg.train.warm_iter)})
    run_dgnet(cfg, args.teacher, f"models/{args.name}", f"reports/figures/samples_{args.name}.png",
              f"reports/metrics/train_{args.name}.json", run_name=args.name, init_from=args.warm_start,
              curve_path=f"reports/curves/{args.name}.csv")


if __name__ == "__main__":
    sys.exit(run_guarded(main))
