"""Independent trainings side by side, each in its own process on its share of the CPU threads.

    results = run_side_by_side([Job(run_dgnet, cfg, args, kwargs), Job(run_dgnet, other_cfg, ...)])

The joint step's convolutions are small, so torch uses two threads poorly: on
this project's 2-core CPU one iteration takes 0.95 s on 2 threads and 1.26 s
on 1, so two single-thread trainings at once finish two models about 1.5x
sooner than one after the other. ``runtime.parallel_trainings`` sets how many
run at once (1: one after the other in this process, as before); on a GPU
they always run one after the other. A process's thread count changes the
order of floating-point sums, so a model trained side by side is not
bit-identical to one trained alone (it is identical from run to run).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from dgnet.config import Config, replace


@dataclass
class Job:
    """One training: ``function(cfg, *args, **kwargs)`` (a module-level function, so a process can import it)."""

    function: Callable[..., Any]
    cfg: Config
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


def workers_for(cfg: Config, jobs: int) -> int:
    """How many processes: ``runtime.parallel_trainings`` on the CPU, capped by the jobs; 1 on a GPU."""
    if not cfg.runtime.device.startswith("cpu"):
        return 1
    return max(1, min(cfg.runtime.parallel_trainings, jobs))


def threads_per_worker(cfg: Config, workers: int) -> int:
    """``runtime.threads`` when set, otherwise the machine's cores shared out."""
    return cfg.runtime.threads or max(1, (os.cpu_count() or 1) // workers)


def _call(job: Job) -> Any:
    if job.cfg.runtime.threads:
        torch.set_num_threads(job.cfg.runtime.threads)
    return job.function(job.cfg, *job.args, **job.kwargs)


def in_order(jobs: list[Job]) -> Job:
    """One job that runs ``jobs`` one after the other in its process (e.g. a warm-up, then its
    continuation, beside another training); its result is the list of theirs."""
    return Job(_call_in_order, jobs[0].cfg, (tuple(jobs),))


def _call_in_order(cfg: Config, jobs: tuple[Job, ...]) -> list[Any]:
    threads = {"runtime.threads": cfg.runtime.threads}  # the share run_side_by_side gave this process
    return [_call(Job(job.function, replace(job.cfg, **threads), job.args, job.kwargs)) for job in jobs]


def run_side_by_side(jobs: list[Job]) -> list[Any]:
    """Run ``jobs``, up to ``runtime.parallel_trainings`` at once; return their results in order.

    The first job's config decides the number of processes. An error in any job
    (a :class:`~dgnet.errors.UserError` keeps its type and message) is raised
    here once the jobs already running have finished; jobs not yet started are
    cancelled.
    """
    if not jobs:
        return []
    workers = workers_for(jobs[0].cfg, len(jobs))
    if workers == 1:
        return [_call(job) for job in jobs]
    threads = threads_per_worker(jobs[0].cfg, workers)
    pinned = [Job(job.function, replace(job.cfg, **{"runtime.threads": threads}), job.args, job.kwargs)
              for job in jobs]
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch thread pools
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(_call, job) for job in pinned]
        wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            if future.done() and future.exception() is not None:
                for other in futures:
                    other.cancel()
                raise future.exception()
        return [future.result() for future in futures]
