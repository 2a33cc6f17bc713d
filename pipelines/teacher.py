"""DVC stages ``teacher``, ``teacher_b`` (training) and ``evaluate_teacher`` (Table 3 "Baseline").

    python pipelines/teacher.py                                  # models/teacher.pt, reports/metrics/train_teacher.json
    python pipelines/teacher.py --evaluate                       # reports/metrics/teacher.json (the Baseline row)
    python pipelines/teacher.py --name teacher_b --set data.root=data/prepared/synth_b

Training and evaluation are separate stages, so a test-time key (``eval.*``)
reruns the evaluation only, never the training.
"""

import argparse
import sys

from dgnet.config import apply_overrides, load_config
from dgnet.errors import run_guarded
from dgnet.stages.runs import evaluate_teacher_run, train_teacher_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="teacher")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--evaluate", action="store_true", help="evaluate models/NAME.pt instead of training it")
    args = parser.parse_args()
    cfg = apply_overrides(load_config("params.yaml"), args.set)
    if args.evaluate:
        evaluate_teacher_run(cfg, f"models/{args.name}.pt", f"reports/metrics/{args.name}.json",
                             run_name=f"evaluate_{args.name}")
    else:
        train_teacher_run(cfg, f"models/{args.name}.pt", f"reports/metrics/train_{args.name}.json", run_name=args.name)


if __name__ == "__main__":
    sys.exit(run_guarded(main))
