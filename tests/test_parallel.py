"""Trainings side by side (dgnet/train/parallel.py): order, follow-up jobs, threads, errors."""

import os

import pytest
import torch

from dgnet.config import preset_config, replace
from dgnet.errors import UserError
from dgnet.train.parallel import Job, in_order, run_side_by_side, threads_per_worker, workers_for


def _report(cfg, value):
    return value, os.getpid(), torch.get_num_threads()


def _refuse(cfg, path):
    raise UserError(f"{path}: refused on purpose")


def cpu_cfg(parallel: int):
    return replace(preset_config("micro"), **{"runtime.parallel_trainings": parallel, "runtime.threads": 0})


def test_two_processes_keep_the_order():
    cfg = cpu_cfg(2)
    results = run_side_by_side([Job(_report, cfg, (name,)) for name in ("a", "b", "c", "d")])
    assert [r[0] for r in results] == ["a", "b", "c", "d"]
    pids = {r[1] for r in results}
    assert os.getpid() not in pids and len(pids) == 2  # two worker processes, none of them this one
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
