"""DVC stages ``teacher`` and ``teacher_b``: train the teacher / baseline and evaluate it.

    python pipelines/teacher.py                                  # models/teacher.pt (Table 3 "Baseline")
    python pipelines/teacher.py --name teacher_b --set data.root=data/prepared/synth_b
"""

import argparse
import sys

from dgnet.config import apply_overrides, load_config
from dgnet.errors import run_guarded
from dgnet.train.runs import run_teacher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="teacher")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    cfg = apply_overrides(load_config("params.yaml"), args.set)
    run_teacher(cfg, f"models/{args.name}.pt", f"reports/metrics/{args.name}.json", run_name=args.name)


if __name__ == "__main__":
    sys.exit(run_guarded(main))
