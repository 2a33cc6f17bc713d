"""DVC stages ``train_*``: joint DG-Net training, the main model and its variants.

    python pipelines/train_dgnet.py --name dgnet_warm --warm-only
    python pipelines/train_dgnet.py --name dgnet --warm-start models/dgnet_warm/last.pt \
        --beside dgnet_nofeed --beside-set train.feed_generated=false
    python pipelines/train_dgnet.py --name dgnet_noid --set train.id_supervision=false --only-if sweep.without_id \
        --beside dgnet_b --beside-set data.root=data/prepared/synth_b --beside-teacher models/teacher_b.pt \
        --beside-only-if sweep.transfer_b_to_a

Writes ``models/NAME/last.pt``, ``reports/figures/samples_NAME.png``,
``reports/metrics/train_NAME.json`` and the training curves
``reports/curves/NAME.csv``; logs the MLflow run ``NAME``. Variants
that differ only in keys acting after ``train.warm_iter`` start from the
shared warm-up checkpoint, which equals their own first ``warm_iter``
iterations (the training is seeded per iteration; the check is in
``dgnet.train.loop.check_warm_start``). ``--beside NAME`` trains a second
model at the same time, side by side (``runtime.parallel_trainings``;
dgnet/train/parallel.py): params.yaml with ``--beside-set`` (not ``--set``),
the same warm start, and ``--beside-teacher`` (default: ``--teacher``).
A model whose settings hold ``data.layout=none`` (the domain-B model under
``data.transfer_layout: none``) is not trained: its outputs are markers
(dgnet/switches.py); so is a model whose ``--only-if`` / ``--beside-only-if``
names a boolean key of params.yaml that is false.
"""

import argparse
import sys

from dgnet import switches
from dgnet.config import Config, apply_overrides, load_config
from dgnet.entry import run_guarded
from dgnet.train.loop import warm_up_config
from dgnet.train.parallel import Job, run_side_by_side
from dgnet.stages.runs import run_dgnet


def job(cfg: Config, name: str, teacher: str, warm_start: str | None) -> Job:
    return Job(run_dgnet, cfg, (teacher, f"models/{name}", f"reports/figures/samples_{name}.png",
                                f"reports/metrics/train_{name}.json"),
               dict(run_name=name, init_from=warm_start, curve_path=f"reports/curves/{name}.csv", keep_progress=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="dgnet")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--warm-start", help="shared warm-up checkpoint to continue from")
    parser.add_argument("--warm-only", action="store_true", help="stop at train.warm_iter")
    parser.add_argument("--teacher", default="models/teacher.pt")
    parser.add_argument("--beside", metavar="NAME", help="a second variant trained at the same time")
    parser.add_argument("--beside-set", action="append", default=[], metavar="KEY=VALUE",
                        help="the second model's settings (on top of params.yaml, not of --set)")
    parser.add_argument("--beside-teacher", help="the second model's teacher (default: --teacher)")
    switch = dict(choices=list(switches.BOOLEAN_SWITCHES), metavar="KEY")
    parser.add_argument("--only-if", **switch, help="train only when this boolean key of params.yaml is true")
    parser.add_argument("--beside-only-if", **switch, help="the same for the second model")
    args = parser.parse_args()
    params = load_config("params.yaml")

    def variant(assignments: list[str]) -> Config:
        cfg = apply_overrides(params, assignments)
        return warm_up_config(cfg) if args.warm_only else cfg

    models = [(args.name, args.set, args.teacher, args.only_if)]
    if args.beside:
        models.append((args.beside, args.beside_set, args.beside_teacher or args.teacher, args.beside_only_if))
    jobs = []
    for name, assignments, teacher, only_if in models:
        off = switches.training_off(params, assignments, only_if)
        if off:  # switched off: markers, no training
            switches.write_not_trained(off, f"reports/metrics/train_{name}.json",
                                       folder=f"models/{name}", figure=f"reports/figures/samples_{name}.png",
                                       curve=f"reports/curves/{name}.csv")
        else:
            jobs.append(job(variant(assignments), name, teacher, args.warm_start))
    run_side_by_side(jobs)


if __name__ == "__main__":
    sys.exit(run_guarded(main))
