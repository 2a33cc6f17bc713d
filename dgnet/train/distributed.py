"""Data-parallel training under ``torchrun`` (gloo on CPU, nccl on GPU).

DG-Net runs E_a several times per step with different gradient routes (live,
through a frozen copy, on detached generations), which DDP's bucketed reducer
does not support. So the DDP contract is kept explicitly instead: identical
initial weights (broadcast from rank 0), each rank on its own shard of every
batch, gradients averaged with one all-reduce per network before each
optimizer step, and buffers (BatchNorm statistics) broadcast from rank 0. In a
single process every function here is a no-op, so no training code branches
on a wrapper or on the world size.

    torchrun --nproc-per-node 2 -m dgnet.cli train --params params.yaml
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def local_device(device: torch.device) -> torch.device:
    """The device of this process: under torchrun, ``cuda`` means this rank's own GPU
    (``LOCAL_RANK``), made current, not the first GPU for every rank; anything else unchanged."""
    local = os.environ.get("LOCAL_RANK")
    if device.type != "cuda" or device.index is not None or local is None:
        return device
    device = torch.device("cuda", int(local))
    torch.cuda.set_device(device)
    return device


def init_from_env(device: torch.device) -> tuple[int, int]:
    """Join the process group that torchrun describes; return (rank, world_size)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1 or dist.is_initialized():
        return rank(), world_size()
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return rank(), world_size()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def broadcast_module(module: nn.Module) -> None:
    """Make every rank's parameters and buffers equal to rank 0's."""
    if world_size() == 1:
        return
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


def broadcast_buffers(module: nn.Module) -> None:
    if world_size() == 1:
        return
    for buf in module.buffers():
        dist.broadcast(buf.data, src=0)


def average_gradients(module: nn.Module) -> None:
    """All-reduce (mean) every gradient of ``module`` in one flat buffer.

    A trained parameter without a gradient (its losses are off, e.g. the fine head during
    warm-up) gets a zero one first, in one process too: the optimizer then applies weight decay
    and momentum to it as the official code does (its losses there are multiplied by 0), and one
    run does not depend on the process count.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    if world_size() == 1:
        return
    grads = [p.grad for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
