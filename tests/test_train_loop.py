"""The training loop: resume after SIGKILL, the divergence guard, two-process data parallel."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml

from dgnet.cli import main
from dgnet.fidelity import resolve
from dgnet.config import config_to_dict, replace
from dgnet.models import build_teacher
from dgnet import checkpoint
from dgnet.errors import DivergenceError
from dgnet.tracking import Run

ROOT = Path(__file__).resolve().parent.parent


def _teacher_file(cfg, path: Path, num_classes: int) -> Path:
    torch.manual_seed(0)
    model = build_teacher(cfg.model, num_classes)
    checkpoint.save(path, checkpoint.make_state("teacher", cfg, num_classes, 0, {"teacher": model}))
    return path


def _num_classes(cfg) -> int:
    from dgnet.data.layouts import load_layout

    return len({s.pid for s in load_layout("synthetic", cfg.data.root).train})


def _params_file(cfg, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config_to_dict(cfg)))
    return path


def _train_cmd(params: Path, teacher: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "dgnet.cli", "train", "--params", str(params), "--teacher", str(teacher),
            "--out", str(out), "--figure", str(out / "samples.png"), "--metrics", str(out / "metrics.json"),
            "--quiet", *extra]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    state = checkpoint.load(path, "dgnet")
    return {f"{n}.{k}": v for n, sd in state["models"].items() for k, v in sd.items()}


@pytest.mark.slow
def test_resume_after_sigkill_matches_an_uninterrupted_run(micro_cfg, tmp_path, one_torch_thread):
    cfg = replace(micro_cfg, **{"train.iterations": 40, "train.checkpoint_every": 4, "train.warm_iter": 10,
                                "train.ramp_iters": 10, "train.lr_steps": (30,), "train.sample_every": 100,
                                "tracking.uri": "none"})
    params = _params_file(cfg, tmp_path / "params.yaml")
    teacher = _teacher_file(cfg, tmp_path / "teacher.pt", _num_classes(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    straight = tmp_path / "straight"  # in this process: the killed run below is the one that needs its own
    assert main(_train_cmd(params, teacher, straight)[3:]) == 0

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(params, teacher, killed), env=env, cwd=ROOT)
    deadline = time.time() + 120
    while time.time() < deadline:
        last = killed / "last.pt"
        if last.exists() and checkpoint.load(last, "dgnet")["iteration"] >= 12:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stopped_at = checkpoint.load(killed / "last.pt", "dgnet")["iteration"]
    assert 12 <= stopped_at < 40, "the run should be killed part way"

    subprocess.run(_train_cmd(params, teacher, killed, "--resume"), check=True, env=env, cwd=ROOT)
    resumed = checkpoint.load(killed / "last.pt", "dgnet")
    assert resumed["iteration"] == 40
    a, b = _weights(straight / "last.pt"), _weights(killed / "last.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-5), key


def test_divergence_stops_with_the_loss_name_and_keeps_the_good_checkpoint(micro_cfg, tmp_path, monkeypatch):
    from dgnet import losses as L
    from dgnet.data.loading import load_training_set
    from dgnet.train.loop import train_dgnet

    cfg = replace(micro_cfg, **{"train.iterations": 8, "train.checkpoint_every": 2, "tracking.uri": "none"})
    data = load_training_set(cfg.data, progress=False)
    teacher = build_teacher(cfg.model, data.num_classes)
    calls = {"n": 0}
    real_adv = L.lsgan_gen_loss
    per_iteration = resolve(cfg).groups  # G's adversarial loss is computed once per half-batch

    def exploding(outputs, *args, **kwargs):
        calls["n"] += 1
        value = real_adv(outputs, *args, **kwargs)
        return value * float("nan") if calls["n"] == 4 * per_iteration + 1 else value  # iteration 4

    monkeypatch.setattr(L, "lsgan_gen_loss", exploding)
    with pytest.raises(DivergenceError) as err:
        train_dgnet(cfg, data.images, data.labels, data.num_classes, teacher, tmp_path, Run(None, None),
                    progress=False)
    message = str(err.value)
    assert "iteration 4" in message and "'adv'" in message and "last.pt" in message
    state = checkpoint.load(tmp_path / "last.pt", "dgnet")
    assert state["iteration"] == 4
    for sd in state["models"].values():
        assert all(torch.isfinite(v.float()).all() for v in sd.values())


@pytest.mark.slow
def test_two_process_data_parallel_keeps_replicas_identical(micro_cfg, tmp_path):
    cfg = replace(micro_cfg, **{"train.iterations": 3, "train.checkpoint_every": 100, "tracking.uri": "none"})
    params = _params_file(cfg, tmp_path / "params.yaml")
    script = tmp_path / "ddp_run.py"
    script.write_text(textwrap.dedent(
        """
        import sys, torch
        from dgnet.config import load_config
        from dgnet.models import build_teacher
        from dgnet.train import distributed, loop
        from dgnet.data.loading import load_training_set
        from dgnet.tracking import Run

        cfg = load_config(sys.argv[1])
        data = load_training_set(cfg.data, progress=False)
        torch.manual_seed(0)
        teacher = build_teacher(cfg.model, data.num_classes)
        seen = {}
        original = loop.build_dgnet
        def build_and_keep(model_cfg, k):
            seen.update(original(model_cfg, k))
            return seen
        loop.build_dgnet = build_and_keep
        loop.train_dgnet(cfg, data.images, data.labels, data.num_classes, teacher, sys.argv[2], Run(None, None),
                         progress=False)
        states = {n: {k: v.detach().clone() for k, v in net.state_dict().items()} for n, net in seen.items()}
        torch.save(states, f"{sys.argv[2]}/rank{distributed.rank()}.pt")
        assert distributed.world_size() == 2
        distributed.shutdown()
        """
    ))
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                    "--master-port", "29517", str(script), str(params), str(out)],
                   check=True, env=env, cwd=ROOT, timeout=300)
    r0 = torch.load(out / "rank0.pt", weights_only=True)
    r1 = torch.load(out / "rank1.pt", weights_only=True)
    for net in r0:
        for key in r0[net]:
            assert torch.equal(r0[net][key], r1[net][key]), f"{net}.{key} differs between replicas"
    # and the replicas really trained on different shards (the run is not a no-op)
    assert (out / "last.pt").exists()


def test_variants_started_from_the_shared_warm_up_equal_runs_from_scratch(micro_cfg, tmp_path):
    from dgnet.data.loading import load_training_set
    from dgnet.train.loop import train_dgnet, warm_up_config

    cfg = replace(micro_cfg, **{"train.iterations": 6, "train.warm_iter": 3, "train.ramp_iters": 2,
                                "train.checkpoint_every": 100, "train.alpha": 0.7, "tracking.uri": "none"})
    data = load_training_set(cfg.data, progress=False)
    torch.manual_seed(0)
    teacher = build_teacher(cfg.model, data.num_classes)

    results = {}

    def run(c, out, **kw):
        results[out] = train_dgnet(c, data.images, data.labels, data.num_classes, teacher, tmp_path / out,
                                   Run(None, None), progress=False, **kw)
        return results[out].checkpoint

    scratch = run(cfg, "scratch")
    warm = run(warm_up_config(replace(cfg, **{"train.alpha": 0.2})), "warm")  # alpha acts after warm-up
    continued = run(cfg, "continued", init_from=warm)
    assert results["warm"].trained == 3
    assert (results["scratch"].trained, results["continued"].trained, results["continued"].iterations) == (6, 3, 6)
    a, b = _weights(scratch), _weights(continued)
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), key

    with pytest.raises(ValueError, match="differs in"):
        run(replace(cfg, **{"train.lambda_img": 1.0}), "bad", init_from=warm)
    with pytest.raises(ValueError, match="past train.warm_iter"):
        run(replace(cfg, **{"train.warm_iter": 2}), "late", init_from=warm)


def test_each_torchrun_rank_trains_on_its_own_gpu(monkeypatch):
    from dgnet.train import distributed

    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.local_device(torch.device("cuda")) == torch.device("cuda", 1)
    assert chosen == [torch.device("cuda", 1)]
    assert distributed.local_device(torch.device("cuda", 0)) == torch.device("cuda", 0)  # an explicit GPU is kept
    assert distributed.local_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.delenv("LOCAL_RANK")
    assert distributed.local_device(torch.device("cuda")) == torch.device("cuda")
    assert chosen == [torch.device("cuda", 1)]
