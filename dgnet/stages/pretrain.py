"""Backbone pre-training: the synthetic world's ImageNet.

The paper starts the Baseline and E_a from ImageNet weights; nothing can be
downloaded here, so the default pre-trains the trunk on a large, separate
synthetic set (style P: both domains' clothing colours and its own cameras,
identities from ``pretrain.seed``, no identity shared with the re-id sets) as
an identity classifier, then keeps the trunk's weights only::

    run_pretrain(cfg, "data/pretrain", "models/pretrained_backbone.pth", "reports/metrics/pretrain.json")

``model.backbone.pretrained: models/pretrained_backbone.pth`` then starts
both the teacher and E_a from it.

The generator's pre-training (stage ``pretrain_generator``) then trains E_s,
G and D on the same set with the joint training's image losses (self- and
same-identity reconstruction, code reconstruction, adversarial), E_a frozen
at that trunk and no identity loss, so that the joint training starts with a
generator that already swaps appearance and structure::

    run_pretrain_generator(cfg, "data/pretrain", "models/pretrained_generator.pt", ...)

``train.generator_init: models/pretrained_generator.pt`` starts every joint
training's E_s, G and D from it; ``scratch`` is the paper's start. The two
runs' configs are :mod:`dgnet.train.pretrain`'s.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace as dc_replace
from pathlib import Path

import torch

from dgnet import io, stage_seconds, tracking
from dgnet.checkpoint import load as load_checkpoint_state
from dgnet.config import Config, config_to_dict
from dgnet.data.loading import load_training_set
from dgnet.data.synth import write_synthetic
from dgnet.train.loop import GENERATOR_PARTS, train_dgnet
from dgnet.train.pretrain import generator_pretrain_config, pretrain_config
from dgnet.train.samples import save_rows, swap_images
from dgnet.train.teacher import train_teacher


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
    data = load_training_set(run_cfg.data, progress=progress, resize=run_cfg.switches.resize)
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
    stage_seconds.write_metrics(metrics_path, metrics)
    return metrics


def run_pretrain_generator(cfg: Config, data_root: str | Path, weights_path: str | Path,
                           metrics_path: str | Path, figure_path: str | Path, progress: bool = True) -> dict:
    """Train E_s, G and D on the pre-training set (E_a frozen at ``model.backbone.pretrained``);
    save them (kind ``pretrained_generator``), a swap grid and the metrics."""
    io.require_writable(weights_path, metrics_path, figure_path)
    if cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    run_cfg = generator_pretrain_config(cfg, data_root)
    data = load_training_set(run_cfg.data, progress=progress, resize=run_cfg.switches.resize)
    with tracking.start_run(cfg.tracking, "pretrain_generator", params=config_to_dict(run_cfg),
                            tags={"config": cfg.name}) as run, tempfile.TemporaryDirectory() as tmp:
        result = train_dgnet(run_cfg, data.images, data.labels, data.num_classes, None, tmp, run,
                             progress=progress, desc="pretrain_generator", freeze_appearance=True)
        run.log_metrics({"train_seconds": result.seconds})
        state = load_checkpoint_state(result.checkpoint, "dgnet")
    models = {name: state["models"][name] for name in GENERATOR_PARTS}
    io.save_checkpoint(weights_path, {"kind": "pretrained_generator", "models": models,
                                      "iterations": result.iterations, "backbone": cfg.model.backbone.pretrained})
    _save_swaps(run_cfg, state, data, figure_path)
    metrics = {"ids": data.num_classes, "images": int(data.images.shape[0]), "iterations": result.iterations,
               "train_seconds": round(result.seconds, 1), "step_seconds_median": result.step_seconds_median,
               **result.last_losses, "weights": str(weights_path)}
    stage_seconds.write_metrics(metrics_path, metrics)
    return metrics


def _save_swaps(cfg: Config, state: dict, data, figure_path: str | Path) -> None:
    """The swap grid of the first image of 8 + 8 identities (as the joint training's sample grids)."""
    from dgnet.data.transforms import normalize
    from dgnet.models import build_dgnet

    nets = build_dgnet(cfg.model, data.num_classes)
    for name, net in nets.items():
        net.load_state_dict(state["models"][name])
    first: dict[int, int] = {}
    for i, label in enumerate(data.labels.tolist()):
        first.setdefault(label, i)
    ids = list(first.values())
    n = min(8, len(ids) // 2)
    save_rows(swap_images(nets, normalize(data.images[ids[:n]]), normalize(data.images[ids[n:2 * n]])), figure_path)


__all__ = ["run_pretrain", "run_pretrain_generator"]
