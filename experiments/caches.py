"""Work shared by all trials of a study: the tuning teacher and the alpha-beta warm-up, trained once and cached."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from dgnet import tracking
from dgnet.config import Config, config_to_dict, with_changes
from dgnet.errors import UserError
from dgnet.locking import exclusive_lock


def teacher_key(cfg: Config) -> str:
    """Hash of the config keys the tuning teacher depends on."""
    data = config_to_dict(cfg.data)
    for key in ("num_workers", "cache_images"):
        data.pop(key)
    payload = {"data": data, "backbone": config_to_dict(cfg.model.backbone),
               "head": config_to_dict(cfg.model.head), "teacher": config_to_dict(cfg.teacher),
               "autocast_bf16": cfg.runtime.autocast_bf16, "validation_held_out": True}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def ensure_teacher(cfg: Config, data, work_dir: str | Path, progress: bool = True):
    """The tuning teacher (trained on ``data``, the training ids minus the validation
    ids): loaded from ``<work_dir>/teacher-<hash>.pt`` or trained once and cached.

    Returns ``(model, path, trained_now)``.
    """
    import torch

    from dgnet.checkpoint import load_teacher
    from dgnet.train.teacher import train_teacher

    path = Path(work_dir) / f"teacher-{teacher_key(cfg)}.pt"
    device = torch.device(cfg.runtime.device)
    with exclusive_lock(path.with_suffix(".lock")):
        if path.exists():
            model, classes = load_teacher(path, device)
            if classes != data.num_classes:
                raise UserError(f"{path}: a teacher with {classes} classes, but the tuning training set "
                                f"has {data.num_classes}; delete the file to retrain it")
            return model, path, False
        with tracking.start_run(cfg.tracking, "tune/teacher", params=config_to_dict(cfg),
                                tags={"config": cfg.name, "tuning.teacher_key": teacher_key(cfg)},
                                nested=True) as run:
            model = train_teacher(cfg, data.images, data.labels, data.num_classes, path, run, progress)
        return model, path, True


def warmup_key(cfg: Config) -> str:
    """Hash of what the first ``warm_iter`` iterations depend on (alpha does not)."""
    from dgnet.train.loop import POST_WARM_KEYS

    conf = config_to_dict(cfg)
    for key in ("name", "tracking", "eval", "sweep"):
        conf.pop(key, None)
    conf["train"] = {k: v for k, v in conf["train"].items() if k not in POST_WARM_KEYS}
    conf["teacher_key"] = teacher_key(cfg)
    return hashlib.sha256(json.dumps(conf, sort_keys=True).encode()).hexdigest()[:12]


def ensure_warmup(cfg: Config, data, teacher, work_dir: str | Path, progress: bool = True) -> Path | None:
    """The shared warm-up of the alpha-beta trials: ``<work_dir>/warmup-<hash>/last.pt``.

    alpha only acts from ``warm_iter`` on and batches and dropout are seeded by
    the iteration, so every trial would repeat the same first ``warm_iter``
    iterations; they are trained once (resumed if a worker was killed) and each
    trial starts from them (``train_dgnet(init_from=...)``), bit for bit the
    run it would have made from scratch. ``None`` when there is nothing to
    share (``warm_iter`` 0, or no iteration after it).
    """
    from dgnet import checkpoint
    from dgnet.train.loop import train_dgnet

    t = cfg.train
    if not 0 < t.warm_iter < t.iterations:
        return None
    out = Path(work_dir) / f"warmup-{warmup_key(cfg)}"
    path = out / "last.pt"
    with exclusive_lock(out.with_suffix(".lock")):
        if path.exists() and checkpoint.load(path, "dgnet")["iteration"] == t.warm_iter:
            return path
        warm_cfg = with_changes(cfg, {"train.iterations": t.warm_iter})
        with tracking.start_run(cfg.tracking, "tune/warmup", params=config_to_dict(warm_cfg),
                                tags={"config": cfg.name, "tuning.warmup_key": warmup_key(cfg)},
                                nested=True) as run:
            train_dgnet(warm_cfg, data.images, data.labels, data.num_classes, teacher, out, run,
                        resume=True, progress=progress)
    return path
