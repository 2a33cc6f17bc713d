"""The joint DG-Net step timed alone: the yardstick that makes times comparable across machines.

    default_step_seconds()   # median seconds of the default configuration's step, this machine

One step is the D step and the E_a/E_s/G step with every loss on (past the
warm-up), on batches from an in-memory cache of random uint8 images, so no
decoding is timed. ``benchmarks/train_speed.py`` prints and records the same
figure ("default"); the ``timings`` stage divides the graph's seconds by it.
"""

from __future__ import annotations

import time

import torch

from dgnet.config import Config, preset_config, replace
from dgnet.models import build_dgnet, build_teacher
from dgnet.train.batches import BatchSampler, dgnet_batch, iteration_generator
from dgnet.train.dgnet_step import dis_step, gen_step, generate
from dgnet.train.loop import build_optimizers
from dgnet.train.schedules import loss_weights


def timed_steps(cfg: Config, iterations: int, warmup: int, classes: int = 100, profiler=None) -> list[float]:
    """Seconds of each of ``iterations`` steps after ``warmup`` untimed ones (random weights and images).
    ``profiler`` (a ``torch.profiler.profile``) is started after the warm-up and left running."""
    device = torch.device(cfg.runtime.device)
    torch.manual_seed(0)
    nets = {k: v.to(device) for k, v in build_dgnet(cfg.model, classes).items()}
    if cfg.runtime.channels_last:
        nets = {k: v.to(memory_format=torch.channels_last) for k, v in nets.items()}
    teacher = build_teacher(cfg.model, classes).to(device).eval()
    opts = build_optimizers(cfg, nets)
    images = torch.randint(0, 256, (max(64, 4 * cfg.train.batch_size), 3, cfg.data.height, cfg.data.width),
                           dtype=torch.uint8)
    labels = torch.arange(len(images)) % classes
    sampler = BatchSampler(labels, cfg.train.batch_size, seed=0)
    sw = cfg.switches
    weights = loss_weights(cfg.train.warm_iter + 2 * cfg.train.ramp_iters, cfg.train, sw)  # every loss on
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.runtime.autocast_bf16)
    times = []
    for it in range(warmup + iterations):
        if profiler is not None and it == warmup:
            profiler.start()
        began = time.perf_counter()
        batch = dgnet_batch(images, sampler, it, 2, device, sw.pad_mode)
        g = iteration_generator(0, it)
        with autocast:
            gen = generate(nets, batch, cfg.data.random_erasing, g, sw)
            dis_step(nets["discriminator"], opts["discriminator"], batch.images, gen.cross, cfg.train.gp_weight,
                     sw.groups)
            gen_step(nets, teacher, opts["generator"], opts["appearance"], batch, gen, weights, g, sw)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if it >= warmup:
            times.append(time.perf_counter() - began)
    return times


def yardstick_config(name: str = "default") -> Config:
    """The preset ``name`` with random starting weights: the step's cost does not depend on them."""
    return replace(preset_config(name), **{"model.backbone.pretrained": "none", "train.generator_init": "scratch"})


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def default_step_seconds(iterations: int = 20, warmup: int = 3) -> float:
    """The default configuration's median step seconds on this machine, this process's threads."""
    return median(timed_steps(yardstick_config("default"), iterations, warmup))


__all__ = ["default_step_seconds", "median", "timed_steps", "yardstick_config"]
