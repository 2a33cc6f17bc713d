"""Speed and memory of the full joint DG-Net step (D step + E_a/E_s/G step).

    python -m benchmarks.train_speed [--iterations 20] [--paper-iterations 3] [--device cpu|cuda] [--skip-side-by-side]
    python -m benchmarks.train_speed --alternatives [--iterations 20]

Times the step at the ``default`` configuration (the CPU pipeline's) and at
the ``paper`` configuration (256x128, ResNet-50, batch 16; a few iterations,
on the GPU when one is present), after all losses are on (past warm-up). The
batches come from an in-memory uint8 cache of random images, as in training,
so JPEG decoding is not timed. On the CPU it also times the default step on
one thread, and two single-thread trainings side by side (two processes, as
``runtime.parallel_trainings: 2`` runs them), which gives the throughput the
pipeline's paired trainings get. Prints the figures and writes
``benchmarks/results/train_speed.json``. With ``--device cuda`` both configurations
run on the GPU, the paper configuration in fp32 and in bf16 autocast, and the
figures (with the GPU's peak memory) go to ``benchmarks/results/train_speed_cuda.json``.

``--alternatives`` answers "which cheaper model or input would make the
default step fast enough?" instead: it times the default step and each of
``ALTERNATIVES`` (one config change each, same iterations, this process's
threads), and the share of the default step's CPU time spent in convolutions
(forward and backward, from the PyTorch profiler). It writes
``benchmarks/results/train_speed_alternatives.json``.
"""

from __future__ import annotations

import argparse
import platform
import resource
from pathlib import Path

import torch

from dgnet import io
from dgnet.config import replace
from dgnet.train import speed
from dgnet.train.speed import timed_steps, yardstick_config

OUT = Path(__file__).resolve().parent / "results" / "train_speed.json"
OUT_ALTERNATIVES = OUT.with_name("train_speed_alternatives.json")
OUT_CUDA = OUT.with_name("train_speed_cuda.json")
ALTERNATIVES = {  # name -> config changes; each makes the model or its input cheaper
    "input 48x24": {"data.height": 48, "data.width": 24},
    "input 32x16": {"data.height": 32, "data.width": 16},
    "batch 4": {"train.batch_size": 4},
    "structure code 32 channels": {"model.structure.code_channels": 32},
    "discriminator 2 scales": {"model.discriminator.scales": 2},
    "input 32x16, discriminator 2 scales": {"data.height": 32, "data.width": 16, "model.discriminator.scales": 2},
}


def bench(name: str, cfg, iterations: int, warmup: int, classes: int = 100, profile: bool = False) -> dict:
    device = torch.device(cfg.runtime.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    activities = [torch.profiler.ProfilerActivity.CPU] + (
        [torch.profiler.ProfilerActivity.CUDA] if device.type == "cuda" else [])
    profiler = torch.profiler.profile(activities=activities) if profile else None
    times = timed_steps(cfg, iterations, warmup, classes, profiler)
    median = speed.median(times)
    conv_share, gpu = None, {}
    if profiler is not None:
        profiler.stop()
        ops = profiler.key_averages()
        total = sum(op.self_cpu_time_total for op in ops)
        conv = sum(op.self_cpu_time_total for op in ops if "convolution" in op.key)
        conv_share = conv / total
        if device.type == "cuda":
            gpu = _gpu_shares(ops, iterations, sum(times))
    result = {
        "config": name, "device": str(device), "batch_size": cfg.train.batch_size,
        "input": f"{cfg.data.height}x{cfg.data.width}", "backbone": cfg.model.backbone.arch,
        "bf16": cfg.runtime.autocast_bf16, "iterations_timed": iterations,
        "seconds_per_iteration": median, "iterations_per_second": 1.0 / median,
        "images_per_second": cfg.train.batch_size / median,
        "process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if conv_share is not None:
        result["convolution_share_of_cpu_time"] = conv_share
    result.update(gpu)
    if device.type == "cuda":
        result["gpu_peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def _gpu_shares(ops, iterations: int, wall_seconds: float, top: int = 8) -> dict:
    """Where a profiled GPU step's time goes: kernel time against wall time, the busiest ops on each side."""
    def device_us(op) -> float:
        return getattr(op, "self_device_time_total", None) or getattr(op, "self_cuda_time_total", 0.0)

    # the kernels' own rows: an operator's row repeats the time of the kernels it launched
    kernel = sum(device_us(op) for op in ops if op.device_type == torch.autograd.DeviceType.CUDA) / 1e6
    by_cpu = sorted(ops, key=lambda op: op.self_cpu_time_total, reverse=True)[:top]
    by_gpu = sorted((op for op in ops if op.device_type != torch.autograd.DeviceType.CUDA), key=device_us,
                    reverse=True)[:top]  # operators, by the kernel time they launched
    return {
        "profiled_seconds_per_iteration": wall_seconds / iterations,
        "gpu_kernel_seconds_per_iteration": kernel / iterations,
        "gpu_busy_share": kernel / wall_seconds,
        "top_ops_by_cpu_ms_per_iteration": {op.key: op.self_cpu_time_total / 1e3 / iterations for op in by_cpu},
        "top_ops_by_gpu_ms_per_iteration": {op.key: device_us(op) / 1e3 / iterations for op in by_gpu},
    }


def _default_on_threads(cfg, iterations: int) -> dict:
    """One process's figure (a ``run_side_by_side`` job: ``cfg.runtime.threads`` is already set)."""
    return bench(f"default, {cfg.runtime.threads} thread(s)", cfg, iterations, warmup=3)


def side_by_side(default, iterations: int) -> list[dict]:
    """The default step on one thread alone, then two single-thread processes at once."""
    from dgnet.train.parallel import Job, run_side_by_side

    threads = torch.get_num_threads()
    one = replace(default, **{"runtime.threads": 1, "runtime.parallel_trainings": 1})
    alone = run_side_by_side([Job(_default_on_threads, one, (iterations,))])[0]  # in this process
    torch.set_num_threads(threads)
    alone["config"] = "default, 1 thread alone"
    two = replace(default, **{"runtime.threads": 1, "runtime.parallel_trainings": 2})
    pair = run_side_by_side([Job(_default_on_threads, two, (iterations,))] * 2)
    slowest = max(r["seconds_per_iteration"] for r in pair)
    for r in pair:
        r["config"] = "default, 1 thread, 2 processes side by side"
        r["pair_iterations_per_second"] = 2.0 / slowest  # both processes together
    return [alone, *pair]


def alternatives(default, iterations: int) -> None:
    """Time the default step, then each cheaper alternative; profile the default apart for its convolution share."""
    base = bench("default", default, iterations, warmup=3)
    profiled = bench("default, profiled", default, max(3, iterations // 4), warmup=3, profile=True)
    base["convolution_share_of_cpu_time"] = profiled["convolution_share_of_cpu_time"]  # not timed: the profiler slows
    rows = [base]
    print(f"default: {base['seconds_per_iteration']:.3f} s/iteration, "
          f"{100 * base['convolution_share_of_cpu_time']:.0f}% of the CPU time in convolutions", flush=True)
    for name, changes in ALTERNATIVES.items():
        r = bench(name, replace(default, **changes), iterations, warmup=3)
        r["changes"] = changes
        r["speedup_vs_default"] = base["seconds_per_iteration"] / r["seconds_per_iteration"]
        rows.append(r)
        print(f"{name}: {r['seconds_per_iteration']:.3f} s/iteration, {r['speedup_vs_default']:.2f}x the default",
              flush=True)
    io.write_json(OUT_ALTERNATIVES, {"machine": platform.processor() or platform.machine(),
                                     "threads": torch.get_num_threads(), "torch": torch.__version__,
                                     "results": rows})
    print(f"wrote {OUT_ALTERNATIVES}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20, help="timed iterations at the default config")
    parser.add_argument("--paper-iterations", type=int, default=3, help="timed iterations at the paper config")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-paper", action="store_true")
    parser.add_argument("--profile", action="store_true",
                        help="on a GPU, also profile the paper step: kernel time against wall time, busiest ops")
    parser.add_argument("--skip-side-by-side", action="store_true", help="skip the 1-thread and 2-process figures")
    parser.add_argument("--alternatives", action="store_true",
                        help="time cheaper models/inputs against the default instead (train_speed_alternatives.json)")
    args = parser.parse_args()

    results = []
    default = yardstick_config("default")  # random starting weights: speed only
    if args.alternatives:
        alternatives(default, args.iterations)
        return
    on_gpu = args.device.startswith("cuda")
    if on_gpu:
        default = replace(default, **{"runtime.device": args.device})
    results.append(bench("default", default, args.iterations, warmup=3))
    if not args.skip_side_by_side and not on_gpu:
        results.extend(side_by_side(default, args.iterations))
    if not args.skip_paper:
        paper = replace(yardstick_config("paper"), **{
            "runtime.device": args.device,
            "runtime.channels_last": on_gpu,
        })
        for bf16 in ([False, True] if on_gpu else [False]):  # the GPU is timed in fp32 and in bf16 autocast
            name = "paper, bf16" if bf16 else "paper"
            results.append(bench(name, replace(paper, **{"runtime.autocast_bf16": bf16}), args.paper_iterations,
                                 warmup=2 if on_gpu else 1, classes=751))
        if on_gpu and args.profile:  # a separate run: the profiler slows the step it watches
            results.append(bench("paper, profiled", paper, 10, warmup=2, classes=751, profile=True))
    for r in results:
        line = (f"{r['config']:>8} on {r['device']}: {r['seconds_per_iteration']:.3f} s/iteration "
                f"({r['iterations_per_second']:.2f} it/s, {r['images_per_second']:.1f} images/s, batch "
                f"{r['batch_size']} at {r['input']}), peak RSS {r['process_peak_rss_mb']:.0f} MB")
        if "pair_iterations_per_second" in r:
            line += f"; the pair: {r['pair_iterations_per_second']:.2f} it/s together"
        if "gpu_peak_memory_mb" in r:
            line += f", GPU peak {r['gpu_peak_memory_mb']:.0f} MB"
        if "gpu_busy_share" in r:
            line += (f"; profiled: kernels {r['gpu_kernel_seconds_per_iteration']:.3f} of "
                     f"{r['profiled_seconds_per_iteration']:.3f} s per iteration (GPU busy "
                     f"{100 * r['gpu_busy_share']:.0f}%); busiest on the CPU: "
                     + ", ".join(f"{k} {v:.0f} ms" for k, v in list(r["top_ops_by_cpu_ms_per_iteration"].items())[:4]))
        print(line)
    out = OUT_CUDA if on_gpu else OUT
    machine = torch.cuda.get_device_name(args.device) if on_gpu else platform.processor() or platform.machine()
    io.write_json(out, {"machine": machine, "threads": torch.get_num_threads(), "torch": torch.__version__,
                        "results": results})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
