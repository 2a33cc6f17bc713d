"""DVC stages ``pretrain`` and ``pretrain_generator``: pre-training on a separate synthetic set.

    python pipelines/pretrain.py               # the backbone (this world's ImageNet)
    python pipelines/pretrain.py --generator   # E_s, G and D, before the joint training

Writes ``data/pretrain`` (style P, ``pretrain.ids`` identities, seed
``pretrain.seed``), trains an identity classifier on it and saves the trunk to
``models/pretrained_backbone.pth`` (what ``model.backbone.pretrained`` points
at on the default); ``reports/metrics/pretrain.json`` has its size and time.
When the backbone starts elsewhere (``imagenet``, ``none``), nothing reads the
trunk: the stage trains nothing and writes markers saying why.

``--generator`` trains E_s, G and D on the same set, E_a frozen at that trunk
(dgnet/stages/pretrain.py), and writes ``models/pretrained_generator.pt``, its
swap grid ``reports/figures/samples_pretrain_generator.png`` and
``reports/metrics/pretrain_generator.json``; where ``train.generator_init`` is
``scratch`` (the paper, the real-data presets) it trains nothing and writes
markers saying why.
"""

import argparse
import sys

from dgnet import switches
from dgnet.config import load_config
from dgnet.entry import run_guarded
from dgnet.errors import UserError
from dgnet.stages.pretrain import run_pretrain, run_pretrain_generator


DATA, WEIGHTS, METRICS = "data/pretrain", "models/pretrained_backbone.pth", "reports/metrics/pretrain.json"
GENERATOR = "models/pretrained_generator.pt"
GENERATOR_METRICS = "reports/metrics/pretrain_generator.json"
GENERATOR_FIGURE = "reports/figures/samples_pretrain_generator.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", action="store_true", help="pre-train E_s, G and D (stage pretrain_generator)")
    args = parser.parse_args()
    cfg = load_config("params.yaml")
    if args.generator:
        pretrain_generator(cfg)
        return
    if cfg.model.backbone.pretrained != WEIGHTS:  # ImageNet weights or none: nothing reads this stage's trunk
        skip_pretrain(cfg.model.backbone.pretrained)
        return
    run_pretrain(cfg, DATA, WEIGHTS, METRICS)


def pretrain_generator(cfg) -> None:
    if cfg.train.generator_init != GENERATOR:  # scratch (or another file): nothing reads this stage's output
        switches.write_not_trained(f"train.generator_init is {cfg.train.generator_init!r}, not {GENERATOR}",
                                   GENERATOR_METRICS, checkpoint=GENERATOR, figure=GENERATOR_FIGURE)
        return
    if cfg.model.backbone.pretrained != WEIGHTS:
        raise UserError(f"params.yaml: train.generator_init {GENERATOR} pre-trains the generator on the pretrain "
                        f"stage's set with E_a at its trunk, so model.backbone.pretrained must be {WEIGHTS} "
                        f"(it is {cfg.model.backbone.pretrained!r}); or set train.generator_init: scratch")
    metrics = run_pretrain_generator(cfg, DATA, GENERATOR, GENERATOR_METRICS, GENERATOR_FIGURE)
    print(f"{GENERATOR}: {metrics['iterations']} iterations on {metrics['ids']} identities, "
          f"self-reconstruction L1 {metrics.get('loss/img1', float('nan')):.3f}")


def skip_pretrain(pretrained: str) -> None:
    """The stage's outputs as markers, so that DVC's graph stays the same and nothing is trained."""
    switches.write_not_trained(f"model.backbone.pretrained is {pretrained!r}, not {WEIGHTS}", METRICS,
                               checkpoint=WEIGHTS, folder=DATA)


if __name__ == "__main__":
    sys.exit(run_guarded(main))
