"""Whole training and evaluation runs, shared by the ``dgnet`` commands and the DVC stage scripts.

Each function takes a validated config and output paths, logs one MLflow run
and writes its outputs atomically. This is the stage layer: it calls the
training (:mod:`dgnet.train`) and the evaluation (:mod:`dgnet.eval`), which
never import each other, and passes them a :class:`dgnet.tracking.Run`.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from dgnet import io, stage_seconds, tracking
from dgnet.checkpoint import load_teacher
from dgnet.config import Config, config_to_dict
from dgnet.data.loading import load_training_set, test_sets
from dgnet.errors import UserError
from dgnet.eval import evaluate_model
from dgnet.eval.generation import load_generated_images, load_generator, write_generated_set
from dgnet.stages.resume import InProgress, training_inputs
from dgnet.stages.table3 import evaluate_checkpoint
from dgnet.train.distributed import is_main
from dgnet.train.loop import train_dgnet
from dgnet.train.offline import train_offline_reid
from dgnet.train.samples import save_rows, swap_images
from dgnet.train.teacher import train_teacher


def evaluate_teacher(cfg: Config, model: torch.nn.Module, validation: bool = False, progress: bool = True) -> dict:
    """Table 3's "Baseline" row: the teacher's 512-d bottleneck feature."""
    device = torch.device(cfg.runtime.device)
    query, gallery, _ = test_sets(cfg.data, validation, resize=cfg.switches.resize)
    model.eval()

    @torch.no_grad()
    def embed(images):
        return {"baseline": model(images.to(device)).feature}

    return evaluate_model(embed, query, gallery, cfg.eval, device, progress=progress)["metrics"]["baseline"]


def train_teacher_run(cfg: Config, ckpt_path: str | Path, info_path: str | Path | None, progress: bool = True,
                      run_name: str = "teacher") -> dict:
    """Train the teacher and save it; ``info_path`` (if given) gets its size and time (no evaluation)."""
    io.require_writable(ckpt_path, *([info_path] if info_path else []))
    if cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    data = load_training_set(cfg.data, progress=progress, resize=cfg.switches.resize)
    began = time.perf_counter()
    with tracking.start_run(cfg.tracking, run_name, params=config_to_dict(cfg), tags={"config": cfg.name}) as run:
        train_teacher(cfg, data.images, data.labels, data.num_classes, ckpt_path, run, progress)
        run.tag_model(ckpt_path)
        info = {"train_seconds": time.perf_counter() - began, "train_images": len(data.labels),
                "train_ids": data.num_classes}
        run.log_metrics({"train_seconds": info["train_seconds"]})
    if info_path:
        stage_seconds.write_metrics(info_path, info)
    return info


def evaluate_teacher_run(cfg: Config, ckpt_path: str | Path, metrics_path: str | Path | None,
                         run_name: str = "evaluate_teacher") -> dict:
    """The Baseline row of a saved teacher (Table 3) into ``metrics_path`` (if given)."""
    io.require_writable(*([metrics_path] if metrics_path else []))
    if cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    model, _ = load_teacher(ckpt_path, torch.device(cfg.runtime.device))
    with tracking.start_run(cfg.tracking, run_name, params=config_to_dict(cfg), tags={"config": cfg.name}) as run:
        metrics = evaluate_teacher(cfg, model)
        test = {f"test/{k}": v for k, v in metrics.items() if k in ("mAP", "rank1", "rank5", "rank10", "mINP")}
        run.log_metrics(test)
        run.log_to_model_run(ckpt_path, test)
    if metrics_path:
        io.write_json(metrics_path, metrics)
    return metrics


def run_teacher(cfg: Config, ckpt_path: str | Path, metrics_path: str | Path, progress: bool = True,
                run_name: str = "teacher") -> dict:
    """``dgnet train-teacher``: train and save the teacher, then write its Baseline row with its size and time."""
    io.require_writable(ckpt_path, metrics_path)
    info = train_teacher_run(cfg, ckpt_path, None, progress, run_name)
    metrics = {**evaluate_teacher_run(cfg, ckpt_path, None, run_name=f"evaluate_{run_name}"), **info}
    stage_seconds.write_metrics(metrics_path, metrics)
    return metrics


def run_dgnet(
    cfg: Config,
    teacher_path: str | Path,
    out_dir: str | Path,
    figure_path: str | Path,
    metrics_path: str | Path,
    resume: bool = False,
    progress: bool = True,
    run_name: str = "train_dgnet",
    init_from: str | Path | None = None,
    curve_path: str | Path | None = None,
    keep_progress: bool = False,
) -> dict:
    """Joint DG-Net training with generation grids and a metrics JSON (iterations, time, losses).

    ``curve_path``: a CSV of every logged training metric by step (``dvc plots``).
    ``keep_progress`` (the DVC stages): keep each checkpoint under ``.resume/`` and continue a killed
    run from there (:mod:`dgnet.stages.resume`).
    """
    io.require_writable(Path(out_dir) / "last.pt", figure_path, metrics_path, *([curve_path] if curve_path else []))
    if cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    device = torch.device(cfg.runtime.device)
    data = load_training_set(cfg.data, progress=progress, resize=cfg.switches.resize)
    teacher, teacher_classes = load_teacher(teacher_path, device)
    if teacher_classes != data.num_classes:
        raise UserError(
            f"{teacher_path}: the teacher has {teacher_classes} classes but the training set has "
            f"{data.num_classes}; retrain the teacher on this data set"
        )
    # fixed display pairs: the first image of 8 identities and of 8 others
    first = {}
    for i, label in enumerate(data.labels.tolist()):
        first.setdefault(label, i)
    ids = list(first.values())
    n = min(8, len(ids) // 2)
    from dgnet.data.transforms import normalize

    show_a = normalize(data.images[ids[:n]]).to(device)
    show_b = normalize(data.images[ids[n : 2 * n]]).to(device)
    store = None
    if keep_progress:
        generator = None if cfg.train.generator_init == "scratch" else cfg.train.generator_init
        inputs = training_inputs(cfg, data.samples, {"teacher": teacher_path, "warm-up checkpoint": init_from,
                                                     "pre-trained generator": generator})
        store = InProgress(out_dir, inputs, run_name)
        resume = store.start() or resume

    with tracking.start_run(cfg.tracking, run_name, params=config_to_dict(cfg), tags={"config": cfg.name}) as run:
        run = tracking.Recorder(run)
        if init_from is not None:
            run.continue_from(init_from)  # the warm-up's curves, so this run's start at iteration 1
        if store is not None and resume:
            run.history.update(store.history())  # the killed run's curve up to its checkpoint

        def sample_hook(nets, iteration):
            save_rows(swap_images(nets, show_a, show_b), figure_path)
            run.log_artifact(figure_path, folder=f"samples/iter_{iteration:06d}")

        def keep_checkpoint(nets, iteration):
            if iteration % cfg.train.checkpoint_every == 0 and iteration < cfg.train.iterations and is_main():
                store.keep(iteration, run.history)

        result = train_dgnet(cfg, data.images, data.labels, data.num_classes, teacher, out_dir, run,
                             resume=resume, progress=progress, sample_hook=sample_hook, init_from=init_from,
                             desc=run_name, iteration_hook=keep_checkpoint if store is not None else None)
        metrics = {"iterations": result.iterations, "iterations_trained": result.trained,
                   "train_seconds": result.seconds,
                   "seconds_per_iteration": result.seconds / max(1, result.trained),
                   "step_seconds_median": result.step_seconds_median,
                   **result.last_losses}
        run.log_metrics({"train_seconds": result.seconds})
        run.tag_model(result.checkpoint)
    if curve_path is not None:
        io.write_text(curve_path, run.curve_csv())
    stage_seconds.write_metrics(metrics_path, metrics)
    if store is not None:
        store.finish()
    return metrics


def train_offline_run(cfg: Config, generator_path: str | Path, teacher_path: str | Path,
                      generated_dir: str | Path, ckpt_path: str | Path, info_path: str | Path,
                      progress: bool = True, run_name: str = "offline_reid") -> dict:
    """The offline baseline's training: write a generated set with a w/o-feed generator, train E_a on it."""
    io.require_writable(ckpt_path, info_path, Path(generated_dir) / "x")
    if cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    device = torch.device(cfg.runtime.device)
    data = load_training_set(cfg.data, progress=progress, resize=cfg.switches.resize)
    teacher, _ = load_teacher(teacher_path, device)
    nets = load_generator(generator_path, device)
    rows = write_generated_set(nets, data.samples, cfg.data.height, cfg.data.width, generated_dir,
                               device=device, progress=progress, images=data.images)
    gen_images = load_generated_images(generated_dir, rows, cfg.data.height, cfg.data.width)
    gen_labels = torch.tensor(rows["appearance_pid"].to_numpy(), dtype=torch.long)
    gen_struct = torch.tensor(rows["structure_pid"].to_numpy(), dtype=torch.long)
    began = time.perf_counter()
    with tracking.start_run(cfg.tracking, run_name, params=config_to_dict(cfg), tags={"config": cfg.name}) as run:
        train_offline_reid(cfg, data.images, data.labels, gen_images, gen_labels, gen_struct,
                           data.num_classes, teacher, ckpt_path, run, progress)
        run.tag_model(ckpt_path)
        info = {"train_seconds": time.perf_counter() - began, "generated_images": len(rows)}
        run.log_metrics({"train_seconds": info["train_seconds"]})
    stage_seconds.write_metrics(info_path, info)
    return info


def evaluate_offline_run(cfg: Config, ckpt_path: str | Path, metrics_path: str | Path, progress: bool = True,
                         run_name: str = "evaluate_offline") -> dict:
    """The offline re-id model's metrics (each feature) into ``metrics_path``."""
    io.require_writable(metrics_path)
    if cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    with tracking.start_run(cfg.tracking, run_name, params=config_to_dict(cfg), tags={"config": cfg.name}) as run:
        metrics = evaluate_checkpoint(cfg, ckpt_path, progress=progress)["metrics"]
        run.log_metrics(tracking.test_metrics(metrics))
        run.log_to_model_run(ckpt_path, tracking.test_metrics(metrics))
    io.write_json(metrics_path, metrics)
    return metrics
