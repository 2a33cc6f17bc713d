"""The paper configuration's joint step on one GPU, four ways, in one command of at most about 8 minutes.

    python -m benchmarks.gpu_check                 # on a GPU: benchmarks/results/gpu_check_<card>.json
    python -m benchmarks.gpu_check --dry-run       # CPU, the default config, a few iterations (CI)

Variants: eager fp32 (TF32 off), eager with TF32 matmuls and convolutions, compiled
(``runtime.compile``, TF32 on) and compiled with bf16 autocast; every one with fused optimisers.
Per variant: seconds per iteration (median of the timed iterations after the warm-up, which
includes the compilation, timed apart), host syncs in one steady-state step
(``torch.cuda.set_sync_debug_mode``; on the CPU the device-to-host reads a dispatch mode counts),
the GPU's busy fraction over a few profiled iterations and the peak GPU memory.
"""

from __future__ import annotations

import argparse
import platform
import re
import time
import warnings
from pathlib import Path

import torch

from dgnet import io
from dgnet.config import replace
from dgnet.train import speed

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = {  # name -> (runtime.compile, TF32, bf16 autocast)
    "eager fp32": (False, False, False),
    "eager tf32": (False, True, False),
    "compiled": (True, True, False),
    "compiled bf16": (True, True, True),
}


def set_tf32(on: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def host_syncs(cfg, classes: int) -> int:
    """Syncs (GPU) or device-to-host reads (CPU) in one steady-state step after two others."""
    if cfg.runtime.device.startswith("cuda"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            speed.timed_steps(cfg, 1, 2, classes, sync_warnings=True)
        return sum("synchroniz" in str(w.message) for w in caught)
    reads = speed.HostReads()
    speed.timed_steps(cfg, 1, 2, classes, reads=reads)
    return len(reads.reads)


def variant(name: str, cfg, iterations: int, warmup: int, classes: int, profiled: int) -> dict:
    compiled, tf32, bf16 = VARIANTS[name]
    cfg = replace(cfg, **{"runtime.compile": compiled, "runtime.autocast_bf16": bf16,
                          "runtime.fused_optimizers": "on"})
    on_gpu = cfg.runtime.device.startswith("cuda")
    set_tf32(tf32)
    torch._dynamo.reset()
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    times = speed.timed_steps(cfg, iterations, warmup, classes)
    wall = time.perf_counter() - began
    row = {"variant": name, "compile": compiled, "tf32": tf32, "bf16_autocast": bf16, "fused_optimizers": True,
           "iterations_timed": iterations, "warmup_iterations": warmup,
           "seconds_per_iteration": speed.median(times), "warmup_seconds": wall - sum(times),
           "host_syncs_per_step": host_syncs(cfg, classes)}
    if on_gpu:
        row["gpu_peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
        profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                                      torch.profiler.ProfilerActivity.CUDA])
        ptimes = speed.timed_steps(cfg, profiled, 1, classes, profiler)
        profiler.stop()
        kernel = sum(getattr(op, "self_device_time_total", 0.0) for op in profiler.key_averages()
                     if op.device_type == torch.autograd.DeviceType.CUDA) / 1e6
        row["gpu_busy_fraction"] = kernel / sum(ptimes)
    set_tf32(False)
    print(f"{name}: {row['seconds_per_iteration']:.3f} s/iteration (warm-up {row['warmup_seconds']:.0f} s), "
          f"{row['host_syncs_per_step']} host syncs per step"
          + (f", GPU busy {100 * row['gpu_busy_fraction']:.0f}%, peak {row['gpu_peak_memory_mb']:.0f} MB"
             if on_gpu else ""), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, the default config, a few iterations")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, help="the JSON (default: benchmarks/results/gpu_check_<card>.json)")
    args = parser.parse_args()
    if args.dry_run:
        cfg, classes, iterations, warmup, profiled = speed.yardstick_config("default"), 100, 3, 2, 0
        machine = platform.processor() or platform.machine()
    else:
        if not torch.cuda.is_available():
            raise SystemExit("dgnet: error: no CUDA GPU visible; run on a GPU machine, or pass --dry-run")
        cfg = replace(speed.yardstick_config("paper"), **{"runtime.device": "cuda", "runtime.channels_last": True})
        classes, iterations, warmup, profiled = 751, max(30, args.iterations), 3, 5
        machine = torch.cuda.get_device_name()
    rows = [variant(name, cfg, iterations, warmup, classes, profiled) for name in args.variants]
    out = args.out or RESULTS / f"gpu_check_{'dry_run' if args.dry_run else re.sub(r'[^A-Za-z0-9]+', '_', machine)}.json"
    io.write_json(out, {"machine": machine, "torch": torch.__version__, "dry_run": args.dry_run,
                        "config": "default" if args.dry_run else "paper", "results": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
