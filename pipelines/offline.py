"""DVC stages ``offline`` (generate with the w/o-feed generator, train re-id separately) and ``evaluate_offline``.

    python pipelines/offline.py               # data/generated/offline, models/offline_reid.pt
    python pipelines/offline.py --evaluate    # reports/metrics/offline.json
"""

import argparse
import sys

from dgnet.config import load_config
from dgnet.entry import run_guarded
from dgnet.stages.runs import evaluate_offline_run, train_offline_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluate", action="store_true", help="evaluate models/offline_reid.pt")
    args = parser.parse_args()
    cfg = load_config("params.yaml")
    if args.evaluate:
        evaluate_offline_run(cfg, "models/offline_reid.pt", "reports/metrics/offline.json")
    else:
        train_offline_run(cfg, "models/dgnet_nofeed/last.pt", "models/teacher.pt", "data/generated/offline",
                          "models/offline_reid.pt", "reports/metrics/train_offline.json")


if __name__ == "__main__":
    sys.exit(run_guarded(main))
