"""DVC stage ``pretrain``: the backbone's pre-training on a separate synthetic set (this world's ImageNet).

    python pipelines/pretrain.py

Writes ``data/pretrain`` (style P, ``pretrain.ids`` identities, seed
``pretrain.seed``), trains an identity classifier on it and saves the trunk to
``models/pretrained_backbone.pth`` (what ``model.backbone.pretrained`` points
at on the default); ``reports/metrics/pretrain.json`` has its size and time.
"""

import sys
from dgnet.config import load_config
from dgnet.errors import run_guarded
from dgnet.train.pretrain import run_pretrain


def main() -> None:
    run_pretrain(load_config("params.yaml"), "data/pretrain", "models/pretrained_backbone.pth",
                 "reports/metrics/pretrain.json")


if __name__ == "__main__":
    sys.exit(run_guarded(main))
