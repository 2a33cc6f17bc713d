"""DVC stage ``pretrain``: the backbone's pre-training on a separate synthetic set (this world's ImageNet).

    python pipelines/pretrain.py

Writes ``data/pretrain`` (style P, ``pretrain.ids`` identities, seed
``pretrain.seed``), trains an identity classifier on it and saves the trunk to
``models/pretrained_backbone.pth`` (what ``model.backbone.pretrained`` points
at on the default); ``reports/metrics/pretrain.json`` has its size and time.
When the backbone starts elsewhere (``imagenet``, ``none``), nothing reads the
trunk: the stage trains nothing and writes markers saying why.
"""

import shutil
import sys

from dgnet import io
from dgnet.config import load_config
from dgnet.errors import run_guarded
from dgnet.train.pretrain import run_pretrain


DATA, WEIGHTS, METRICS = "data/pretrain", "models/pretrained_backbone.pth", "reports/metrics/pretrain.json"


def main() -> None:
    cfg = load_config("params.yaml")
    if cfg.model.backbone.pretrained != WEIGHTS:  # ImageNet weights or none: nothing reads this stage's trunk
        skip_pretrain(cfg.model.backbone.pretrained)
        return
    run_pretrain(cfg, DATA, WEIGHTS, METRICS)


def skip_pretrain(pretrained: str) -> None:
    """The stage's outputs as markers, so that DVC's graph stays the same and nothing is trained."""
    reason = f"not trained: model.backbone.pretrained is {pretrained!r}, not {WEIGHTS}"
    io.require_writable(WEIGHTS, METRICS)
    io.save_checkpoint(WEIGHTS, {"kind": "not_trained", "reason": reason})
    shutil.rmtree(DATA, ignore_errors=True)
    io.write_text(f"{DATA}/README.txt", reason + "\n")
    io.write_json(METRICS, {"trained": False, "reason": reason, "train_seconds": 0.0})
    print(f"{WEIGHTS}: {reason}")


if __name__ == "__main__":
    sys.exit(run_guarded(main))
