"""Backbone pre-training: the synthetic world's ImageNet.

The paper starts the Baseline and E_a from ImageNet weights; nothing can be
downloaded here, so the default pre-trains the trunk on a large, separate
synthetic set (style P: both domains' clothing colours and its own cameras,
identities from ``pretrain.seed``, no identity shared with the re-id sets) as
an identity classifier, then keeps the trunk's weights only::

    run_pretrain(cfg, "data/pretrain", "models/pretrained_backbone.pth", "reports/metrics/pretrain.json")

``model.backbone.pretrained: models/pretrained_backbone.pth`` then starts
both the teacher and E_a from it.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace as dc_replace
from pathlib import Path

import torch

from dgnet import io, tracking
from dgnet.config import Config, config_to_dict, replace
from dgnet.data.synth import write_synthetic
from dgnet.train.data import load_training_set
from dgnet.train.teacher import train_teacher
from dgnet.train.fidelity import resolve


def pretrain_config(cfg: Config, data_root: str | Path) -> Config:
    """The config of the pre-training run: the teacher's recipe on the pre-training set, from scratch."""
    p = cfg.pretrain
    return replace(cfg, **{
        "data.layout": "synthetic", "data.root": str(data_root), "data.val_ids": 0,
        "model.backbone.pretrained": "none",
        "teacher.epochs": p.epochs, "teacher.batch_size": p.batch_size, "teacher.lr": p.lr,
        "teacher.lr_step_epochs": (max(1, p.epochs * 3 // 4),), "teacher.seed": p.seed,
    })


def run_pretrain(cfg: Config, data_root: str | Path, weights_path: str | Path, metrics_path: str | Path,
                 progress: bool = True) -> dict:
    """Write the pre-training set, train the classifier, save its trunk's state_dict; return the metrics."""
    io.require_writable(weights_path, metrics_path)
    if cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    p = cfg.pretrain
    synth = dc_replace(cfg.data.synth, train_ids=p.ids, test_ids=2, distractors=0, junk=0,
                       images_per_camera=p.images_per_camera, seed=p.seed, style="P")
    write_synthetic(data_root, synth, overwrite=True)
    run_cfg = pretrain_config(cfg, data_root)
    data = load_training_set(run_cfg.data, progress=progress, resize=resolve(run_cfg).resize)
    began = time.perf_counter()
    with tracking.start_run(cfg.tracking, "pretrain", params=config_to_dict(run_cfg),
                            tags={"config": cfg.name}) as run, tempfile.TemporaryDirectory() as tmp:
        model = train_teacher(run_cfg, data.images, data.labels, data.num_classes, Path(tmp) / "classifier.pt",
                              run, progress)
        seconds = time.perf_counter() - began
        run.log_metrics({"train_seconds": seconds})
    io.save_checkpoint(weights_path, {k: v.detach().cpu() for k, v in model.backbone.state_dict().items()})
    metrics = {"ids": data.num_classes, "images": int(data.images.shape[0]), "epochs": p.epochs,
               "train_seconds": round(seconds, 1), "weights": str(weights_path)}
    io.write_json(metrics_path, metrics)
    return metrics


__all__ = ["pretrain_config", "run_pretrain"]
