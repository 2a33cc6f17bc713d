"""DVC stages ``teacher``, ``teacher_b`` (training) and ``evaluate_teacher`` (Table 3 "Baseline").

    python pipelines/teacher.py                                  # models/teacher.pt, reports/metrics/train_teacher.json
    python pipelines/teacher.py --evaluate                       # reports/metrics/teacher.json (the Baseline row)
    python pipelines/teacher.py --name teacher_b --set data.root=data/prepared/synth_b \
        --only-if sweep.transfer_b_to_a

Training and evaluation are separate stages, so a test-time key (``eval.*``)
reruns the evaluation only, never the training. ``--set data.layout=none``
(``teacher_b`` under ``data.transfer_layout: none``) trains nothing and writes
markers (dgnet/switches.py), as does ``--only-if KEY`` when that boolean key
of params.yaml is false; a second domain whose folder is missing is one
line naming ``data.transfer_root``.
"""

import argparse
import sys

from dgnet import switches
from dgnet.config import apply_overrides, load_config
from dgnet.entry import run_guarded
from dgnet.stages.runs import evaluate_teacher_run, train_teacher_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="teacher")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--evaluate", action="store_true", help="evaluate models/NAME.pt instead of training it")
    parser.add_argument("--only-if", choices=list(switches.BOOLEAN_SWITCHES), metavar="KEY",
                        help="train only when this boolean key of params.yaml is true (else: markers)")
    args = parser.parse_args()
    params = load_config("params.yaml")
    off = switches.training_off(params, args.set, args.only_if)
    if off:
        switches.write_not_trained(off, f"reports/metrics/train_{args.name}.json", checkpoint=f"models/{args.name}.pt")
        return
    cfg = apply_overrides(params, args.set)
    if cfg.data.root != params.data.root and cfg.data.root == params.data.transfer_root:
        switches.require_transfer_root(params)
    if args.evaluate:
        evaluate_teacher_run(cfg, f"models/{args.name}.pt", f"reports/metrics/{args.name}.json",
                             run_name=f"evaluate_{args.name}")
    else:
        train_teacher_run(cfg, f"models/{args.name}.pt", f"reports/metrics/train_{args.name}.json", run_name=args.name)


if __name__ == "__main__":
    sys.exit(run_guarded(main))
