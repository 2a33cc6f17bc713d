"""Trainings side by side (dgnet/train/parallel.py): order, follow-up jobs, threads, errors, memory."""

import os
import signal

import pytest
import torch

from dgnet.config import preset_config, replace
from dgnet.errors import UserError
from dgnet.train import parallel
from dgnet.train.parallel import Job, in_order, run_side_by_side, threads_per_worker, workers_for


def _report(cfg, value):
    return value, os.getpid(), torch.get_num_threads()


def _refuse(cfg, path):
    raise UserError(f"{path}: refused on purpose")


def _killed(cfg, mb, run_name=None):
    block = bytearray(mb * 2**20)  # touched: resident
    for i in range(0, len(block), 4096):
        block[i] = 1
    import time

    time.sleep(2.5)  # long enough for the parent to measure its peak
    os.kill(os.getpid(), signal.SIGKILL)  # what the out-of-memory killer does


@pytest.fixture(autouse=True)
def scratch(tmp_path, monkeypatch):
    """Each test's measured peaks (.resume/peaks/, in the current folder, inherited by the workers) apart."""
    monkeypatch.chdir(tmp_path)


def cpu_cfg(parallel: int):
    return replace(preset_config("micro"), **{"runtime.parallel_trainings": parallel, "runtime.threads": 0})


def test_two_processes_keep_the_order():
    cfg = cpu_cfg(2)
    results = run_side_by_side([Job(_report, cfg, (name,)) for name in ("a", "b", "c", "d")])
    assert [r[0] for r in results] == ["a", "b", "c", "d"]
    pids = {r[1] for r in results}
    assert os.getpid() not in pids and len(pids) == 4  # a fresh process per job, none of them this one
    assert {r[2] for r in results} == {threads_per_worker(cfg, 2)}


def test_a_chain_runs_in_order_in_one_process_beside_another_job():
    cfg = cpu_cfg(2)
    chain, alone = run_side_by_side([in_order([Job(_report, cfg, ("warm",)), Job(_report, cfg, ("continued",))]),
                                     Job(_report, cfg, ("beside",))])
    assert [r[0] for r in chain] == ["warm", "continued"] and alone[0] == "beside"
    assert chain[0][1] == chain[1][1] != alone[1]  # the chain's two jobs share one process, not the other's
    assert {r[2] for r in (*chain, alone)} == {threads_per_worker(cfg, 2)}


def test_an_error_in_a_worker_keeps_its_type_and_message():
    cfg = cpu_cfg(2)
    with pytest.raises(UserError, match="models/x.pt: refused on purpose"):
        run_side_by_side([Job(_refuse, cfg, ("models/x.pt",)), Job(_report, cfg, ("b",))])


def test_one_at_a_time_runs_in_this_process():
    for cfg in (cpu_cfg(1), replace(cpu_cfg(2), **{"runtime.device": "cuda"})):
        assert workers_for(cfg, 2) == 1
        results = run_side_by_side([Job(_report, cfg, ("a",)), Job(_report, cfg, ("b",))])
        assert [(r[0], r[1]) for r in results] == [("a", os.getpid()), ("b", os.getpid())]


def test_workers_are_capped_by_the_jobs_and_threads_shared_out():
    assert workers_for(cpu_cfg(4), 3) == 3
    assert threads_per_worker(replace(cpu_cfg(2), **{"runtime.threads": 3}), 2) == 3
    assert threads_per_worker(cpu_cfg(2), 2) == max(1, (os.cpu_count() or 1) // 2)


def test_a_worker_killed_by_sigkill_is_one_line_with_the_signal_and_its_peak():
    cfg = cpu_cfg(2)
    with pytest.raises(UserError) as err:
        run_side_by_side([Job(_report, cfg, ("a",)), Job(_killed, cfg, (200,), {"run_name": "dgnet_nofeed"})])
    line = str(err.value)
    assert line.startswith("training dgnet_nofeed: its process was killed by SIGKILL (likely out of memory"), line
    peak = float(line.split("its last measured peak was ")[1].split(" GB")[0])
    assert 0.2 <= peak < 2, line  # the 200 MB it held, and torch


def test_trainings_whose_measured_peaks_do_not_fit_run_one_after_another(monkeypatch):
    cfg = cpu_cfg(2)
    jobs = [Job(_report, cfg, (name,)) for name in ("a", "b")]
    monkeypatch.setattr(parallel, "available_mb", lambda: 1000.0)
    lines = []
    run_side_by_side(jobs[:1], say=lines.append)  # unmeasured: alone, measured
    assert lines == [] and parallel.measured_peak_mb(jobs[0]) > 100
    monkeypatch.setattr(parallel, "measured_peak_mb", lambda job: 800.0)  # two need 1.6 GB of 1 GB
    results = run_side_by_side(jobs, say=lines.append)
    assert [r[0] for r in results] == ["a", "b"]
    assert lines == ["trainings: 2 run one after another, not 2 side by side (runtime.parallel_trainings): each "
                     "needs about 0.8 GB (measured peak), 1.0 GB of memory is available"]
    monkeypatch.setattr(parallel, "available_mb", lambda: 4000.0)
    assert parallel.fitting_workers(jobs, 2, lines.append) == (2, False) and len(lines) == 1
