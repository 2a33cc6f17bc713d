"""The joint DG-Net step timed alone: the yardstick that makes times comparable across machines.

    default_step_seconds()   # median seconds of the default configuration's step, this machine

One step is the D step and the E_a/E_s/G step with every loss on (past the
warm-up), on batches from an in-memory cache of random uint8 images, so no
decoding is timed. ``benchmarks/train_speed.py`` prints and records the same
figure ("default"); the ``timings`` stage divides the graph's seconds by it.
"""

from __future__ import annotations

import contextlib
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from dgnet.config import Config, preset_config, replace
from dgnet.data.loading import on_device
from dgnet.models import build_dgnet, build_teacher
from dgnet.train.batches import BatchSampler, dgnet_batch, iteration_generator
from dgnet.train.dgnet_step import dis_step, gen_step, generate
from dgnet.train.loop import build_optimizers, compile_networks
from dgnet.train.schedules import loss_weights


class HostReads(TorchDispatchMode):
    """Counts device-to-host reads while ``counting``: scalar reads (``.item()``, ``float()``, ``bool()``
    of a tensor) and the ones that boolean-mask indexing and ``nonzero`` hide. ``reads`` holds
    ``(op, id of the tensor read)``. On a GPU ``torch.cuda.set_sync_debug_mode`` sees the rest (blocking
    copies); on the CPU this is how a step's reads are counted."""

    SCALAR = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.is_nonzero.default,
              torch.ops.aten.item.default, torch.ops.aten.nonzero.default, torch.ops.aten.masked_select.default}
    INDEXING = {torch.ops.aten.index.Tensor, torch.ops.aten.index_put.default, torch.ops.aten.index_put_.default}

    def __init__(self) -> None:
        super().__init__()
        self.counting = False
        self.reads: list[tuple[str, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self.counting:
            indices = args[1] if func in self.INDEXING and len(args) > 1 else ()
            if func in self.SCALAR or any(isinstance(i, torch.Tensor) and i.dtype == torch.bool
                                          for i in indices or ()):
                self.reads.append((str(func), id(args[0])))
        return func(*args, **(kwargs or {}))


def timed_steps(cfg: Config, iterations: int, warmup: int, classes: int = 100, profiler=None,
                reads: HostReads | None = None, sync_warnings: bool = False) -> list[float]:
    """Seconds of each of ``iterations`` steps after ``warmup`` untimed ones (random weights and images).
    ``profiler`` (a ``torch.profiler.profile``) is started after the warm-up and left running; ``reads``
    counts the timed steps' host reads (:class:`HostReads`); ``sync_warnings`` has CUDA warn of every
    synchronising call in the timed steps (``torch.cuda.set_sync_debug_mode``), the timing's own
    end-of-step synchronisation excepted."""
    device = torch.device(cfg.runtime.device)
    torch.manual_seed(0)
    nets = {k: v.to(device) for k, v in build_dgnet(cfg.model, classes).items()}
    if cfg.runtime.channels_last:
        nets = {k: v.to(memory_format=torch.channels_last) for k, v in nets.items()}
    teacher = build_teacher(cfg.model, classes).to(device).eval()
    opts = build_optimizers(cfg, nets)
    compile_networks(cfg, nets)
    images = torch.randint(0, 256, (max(64, 4 * cfg.train.batch_size), 3, cfg.data.height, cfg.data.width),
                           dtype=torch.uint8)
    images = on_device(images, device)
    labels = torch.arange(len(images)) % classes
    sampler = BatchSampler(labels, cfg.train.batch_size, seed=0)
    sw = cfg.switches
    weights = loss_weights(cfg.train.warm_iter + 2 * cfg.train.ramp_iters, cfg.train, sw)  # every loss on
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.runtime.autocast_bf16)
    times = []
    counting = reads if reads is not None else contextlib.nullcontext()
    for it in range(warmup + iterations):
        if profiler is not None and it == warmup:
            profiler.start()
        timed = it >= warmup
        began = time.perf_counter()
        if reads is not None:
            reads.counting = timed
        if sync_warnings and timed:
            torch.cuda.set_sync_debug_mode("warn")
        with counting:
            batch = dgnet_batch(images, sampler, it, 2, device, sw.pad_mode)
            g = iteration_generator(0, it)
            with autocast:
                gen = generate(nets, batch, cfg.data.random_erasing, g, sw)
                dis_step(nets["discriminator"], opts["discriminator"], batch.images, gen.cross, cfg.train.gp_weight,
                         sw.groups)
                gen_step(nets, teacher, opts["generator"], opts["appearance"], batch, gen, weights, g, sw)
        if sync_warnings:
            torch.cuda.set_sync_debug_mode("default")
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


__all__ = ["HostReads", "default_step_seconds", "median", "timed_steps", "yardstick_config"]
