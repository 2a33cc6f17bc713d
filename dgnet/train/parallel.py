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

Memory decides too: every training records its process's peak resident
memory under ``.resume/peaks/`` (by the settings that size it: networks,
input, batch, data set), and trainings run side by side only as far as their
measured peaks fit the memory available now; otherwise one after the other,
said in one line. Without a measurement the first runs alone and is measured.
A worker the operating system kills (the out-of-memory killer sends SIGKILL)
is one error naming the training, the signal and its last measured peak.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import resource
import signal
import sys
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, Callable

import torch

from dgnet import io
from dgnet.config import Config, config_to_dict, replace
from dgnet.errors import UserError, user_message

PEAKS_DIR = Path(".resume/peaks")
MEMORY_MARGIN = 0.9  # of the memory available, what side-by-side trainings may use together


@dataclass
class Job:
    """One training: ``function(cfg, *args, **kwargs)`` (a module-level function, so a process can import it)."""

    function: Callable[..., Any]
    cfg: Config
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.kwargs.get("run_name") or self.function.__name__)


def workers_for(cfg: Config, jobs: int) -> int:
    """How many processes: ``runtime.parallel_trainings`` on the CPU, capped by the jobs; 1 on a GPU."""
    if not cfg.runtime.device.startswith("cpu"):
        return 1
    return max(1, min(cfg.runtime.parallel_trainings, jobs))


def threads_per_worker(cfg: Config, workers: int) -> int:
    """``runtime.threads`` when set, otherwise the machine's cores shared out."""
    return cfg.runtime.threads or max(1, (os.cpu_count() or 1) // workers)


# ---------------------------------------------------------------- memory


def memory_key(job: Job) -> str:
    """What sizes a training's memory: its function, networks, input, batch, data set and device."""
    c = config_to_dict(job.cfg)
    sized = {"function": f"{job.function.__module__}.{job.function.__qualname__}", "model": c["model"],
             "data": {k: c["data"][k] for k in ("layout", "root", "cuhk03_subset", "height", "width", "resize")},
             "batch_size": c["train"]["batch_size"],
             "runtime": {k: c["runtime"][k] for k in ("device", "autocast_bf16", "channels_last")}}
    return hashlib.sha256(json.dumps(sized, sort_keys=True, default=str).encode()).hexdigest()[:16]


def measured_peak_mb(job: Job) -> float | None:
    try:
        return float(json.loads((PEAKS_DIR / f"{memory_key(job)}.json").read_text())["peak_mb"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _record_peak(job: Job) -> None:
    """This process's peak resident memory so far (Linux reports KB), as the job's measurement."""
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
    try:
        io.write_json(PEAKS_DIR / f"{memory_key(job)}.json", {"name": job.name, "peak_mb": round(peak_mb, 1)})
    except OSError:
        pass  # a read-only project: no measurement, the trainings still run


def available_mb() -> float:
    import psutil

    return psutil.virtual_memory().available / 2**20


def process_peak_mb(pid: int) -> float | None:
    """A live process's peak resident memory so far (Linux's VmHWM), None where unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def fitting_workers(jobs: list[Job], workers: int, say=_say) -> tuple[int, bool]:
    """``(processes at once, measure first)``: as many of ``workers`` as the measured peaks fit in the
    memory available; without a measurement, the first job alone (``measure first``)."""
    peaks = [p for p in (measured_peak_mb(job) for job in jobs) if p is not None]
    if not peaks:
        return workers, True
    peak, free = max(peaks), available_mb()
    fit = max(1, min(workers, int(free * MEMORY_MARGIN // max(peak, 1.0))))
    if fit < workers:
        how = "one after another" if fit == 1 else f"{fit} at a time"
        say(f"trainings: {len(jobs)} run {how}, not {workers} side by side (runtime.parallel_trainings): "
            f"each needs about {peak / 1024:.1f} GB (measured peak), {free / 1024:.1f} GB of memory is available")
    return fit, False


def killed_message(what: str, exitcode: int | None, peak_mb: float | None) -> str:
    """One line for a training (or stage) whose process ended without a result: killed by a signal, or exited."""
    peak = f"; its last measured peak was {peak_mb / 1024:.1f} GB" if peak_mb is not None else ""
    if exitcode is not None and exitcode < 0:
        try:
            sig = signal.Signals(-exitcode).name
        except ValueError:
            sig = f"signal {-exitcode}"
        oom = (" (likely out of memory: the kernel's out-of-memory killer sends SIGKILL)"
               if -exitcode == signal.SIGKILL else "")
        fix = "; set runtime.parallel_trainings: 1 or free memory, then rerun" if oom else ""
        return f"{what}: its process was killed by {sig}{oom}{peak}{fix}"
    return f"{what}: its process exited with code {exitcode} without a result{peak}"


# ---------------------------------------------------------------- running


def _call(job: Job) -> Any:
    if job.cfg.runtime.threads:
        torch.set_num_threads(job.cfg.runtime.threads)
    result = job.function(job.cfg, *job.args, **job.kwargs)
    _record_peak(job)
    return result


def in_order(jobs: list[Job]) -> Job:
    """One job that runs ``jobs`` one after the other in its process (e.g. a warm-up, then its
    continuation, beside another training); its result is the list of theirs."""
    return Job(_call_in_order, jobs[0].cfg, (tuple(jobs),), {"run_name": " then ".join(j.name for j in jobs)})


def _call_in_order(cfg: Config, jobs: tuple[Job, ...], run_name: str = "") -> list[Any]:
    threads = {"runtime.threads": cfg.runtime.threads}  # the share run_side_by_side gave this process
    return [_call(Job(job.function, replace(job.cfg, **threads), job.args, job.kwargs)) for job in jobs]


class RemoteTraceback(Exception):
    """A worker's traceback, as the cause of the error it raised."""


def _worker(job: Job, conn) -> None:
    try:
        message = ("ok", _call(job))
    except BaseException as err:  # sent to the parent, which raises it
        message = ("error", err, traceback.format_exc())
    try:
        conn.send(message)
    except Exception:  # an unpicklable error: its text
        conn.send(("error", RuntimeError(str(message[1])), message[-1]))
    conn.close()


def run_side_by_side(jobs: list[Job], say=_say) -> list[Any]:
    """Run ``jobs``, up to ``runtime.parallel_trainings`` at once (as many as fit in memory); return their
    results in order.

    The first job's config decides the number of processes. An error in any job
    (a :class:`~dgnet.errors.UserError` keeps its type and message) is raised
    here once the jobs already running have finished; jobs not yet started are
    not started. A worker killed by the system is a UserError (:func:`killed_message`).
    """
    if not jobs:
        return []
    workers = workers_for(jobs[0].cfg, len(jobs))
    if workers == 1:
        return [_call(job) for job in jobs]
    threads = threads_per_worker(jobs[0].cfg, workers)
    pinned = [Job(job.function, replace(job.cfg, **{"runtime.threads": threads}), job.args, job.kwargs)
              for job in jobs]
    at_once, measure_first = fitting_workers(pinned, workers, say)
    results: list[Any] = [None] * len(jobs)
    if measure_first:  # no measured peak yet: the first alone, measured; then as many as fit
        results[0] = _run_processes(pinned[:1], 1)[0]
        at_once, _ = fitting_workers(pinned[1:], min(workers, len(jobs) - 1), say)
        return results[:1] + _run_processes(pinned[1:], at_once)
    return _run_processes(pinned, at_once)


def _run_processes(jobs: list[Job], at_once: int) -> list[Any]:
    """Each job in its own fresh process (spawned: no forked torch thread pools), ``at_once`` at a time."""
    context = multiprocessing.get_context("spawn")
    results: list[Any] = [None] * len(jobs)
    waiting = list(range(len(jobs)))
    running: dict[Any, tuple[int, Any]] = {}  # connection -> (job index, process)
    peaks: dict[int, float] = {}
    failure: BaseException | None = None
    while running or (waiting and failure is None):
        while waiting and failure is None and len(running) < at_once:
            index = waiting.pop(0)
            receive, send = context.Pipe(duplex=False)
            proc = context.Process(target=_worker, args=(jobs[index], send), name=jobs[index].name)
            proc.start()
            send.close()
            running[receive] = (index, proc)
        for conn in wait(list(running), timeout=1.0):
            index, proc = running.pop(conn)
            try:
                message = conn.recv()
            except EOFError:  # the process ended without a word: killed
                message = None
            proc.join()
            if message is not None and message[0] == "ok":
                results[index] = message[1]
            elif failure is None:
                failure = _failure(jobs[index], message, proc.exitcode, peaks.get(index))
        for index, proc in running.values():
            peak = process_peak_mb(proc.pid)
            if peak is not None:
                peaks[index] = max(peak, peaks.get(index, 0.0))
    if failure is not None:
        raise failure
    return results


def _failure(job: Job, message: tuple | None, exitcode: int | None, peak_mb: float | None) -> BaseException:
    if message is None:
        return UserError(killed_message(f"training {job.name}", exitcode, peak_mb))
    _, err, remote = message
    if user_message(err) is None and not isinstance(err, KeyboardInterrupt):  # a bug: keep its traceback
        err.__cause__ = RemoteTraceback(remote)
    return err
