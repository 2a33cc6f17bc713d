"""The pre-training runs' configs: the backbone's (the synthetic world's ImageNet) and the generator's.

The paper starts the Baseline and E_a from ImageNet weights; nothing can be
downloaded here, so the default pre-trains the trunk on a large, separate
synthetic set (style P: both domains' clothing colours and its own cameras,
identities from ``pretrain.seed``, no identity shared with the re-id sets) as
an identity classifier, then keeps the trunk's weights only. The generator's
pre-training then trains E_s, G and D on the same set with the joint
training's image losses, E_a frozen at that trunk and no identity loss.

    run_cfg = pretrain_config(cfg, "data/pretrain")            # the teacher's recipe, from scratch
    run_cfg = generator_pretrain_config(cfg, "data/pretrain")  # the joint recipe, generation losses only

The runs themselves (write the set, train, save) are stage-level:
:mod:`dgnet.stages.pretrain`.
"""

from __future__ import annotations

from pathlib import Path

from dgnet.config import Config, replace


def pretrain_config(cfg: Config, data_root: str | Path) -> Config:
    """The config of the pre-training run: the teacher's recipe on the pre-training set, from scratch."""
    p = cfg.pretrain
    return replace(cfg, **{
        "data.layout": "synthetic", "data.root": str(data_root), "data.val_ids": 0,
        "model.backbone.pretrained": "none",
        "teacher.epochs": p.epochs, "teacher.batch_size": p.batch_size, "teacher.lr": p.lr,
        "teacher.lr_step_epochs": (max(1, p.epochs * 3 // 4),), "teacher.seed": p.seed,
    })


def generator_pretrain_config(cfg: Config, data_root: str | Path) -> Config:
    """The joint training's recipe on the pre-training set, cut to its generation losses."""
    n = cfg.pretrain.generator_iterations
    return replace(cfg, **{
        "data.layout": "synthetic", "data.root": str(data_root), "data.val_ids": 0,
        "train.iterations": n, "train.warm_iter": n, "train.id_supervision": False, "train.lr_steps": (),
        "train.seed": cfg.pretrain.seed, "train.generator_init": "scratch",
        "train.sample_every": n, "train.checkpoint_every": n,
    })


__all__ = ["generator_pretrain_config", "pretrain_config"]
