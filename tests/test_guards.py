"""Issue 15: never keep a broken model, never lose a finished training.

Divergence after the optimizer step, saves that refuse NaN, resume against
the stored config, Ctrl-C, a full disk, stale temporary files, folder modes,
concurrent MLflow store creation.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from dgnet import io
from dgnet.config import config_to_dict, replace
from dgnet.errors import Interrupted, UserError
from dgnet.models import build_teacher
from dgnet.tracking import Run
from dgnet import checkpoint
from dgnet.train import guards
from dgnet.errors import DivergenceError

ROOT = Path(__file__).resolve().parent.parent


def _finite_everywhere(path: Path) -> bool:
    state = checkpoint.load(path, "dgnet")
    return not io.nonfinite_names({"models": state["models"], "optimizers": state["optimizers"]})


@pytest.fixture
def training(micro_cfg):
    """``train(cfg, out, **kw)`` on the micro data with an untrained teacher (no tracking)."""
    from dgnet.data.loading import load_training_set
    from dgnet.train.loop import train_dgnet

    data = load_training_set(micro_cfg.data, progress=False)
    torch.manual_seed(0)
    teacher = build_teacher(micro_cfg.model, data.num_classes)

    def train(cfg, out, **kw):
        cfg = replace(cfg, **{"tracking.uri": "none"})
        return train_dgnet(cfg, data.images, data.labels, data.num_classes, teacher, out, Run(None, None),
                           progress=False, **kw)

    return train


HUGE_LR = {"train.lr_appearance": 10.0, "train.lr_generator": 10.0, "train.lr_discriminator": 10.0,
           "train.checkpoint_every": 1, "train.iterations": 12}


def test_a_diverging_update_never_reaches_a_checkpoint(micro_cfg, training, tmp_path, one_torch_thread):
    with pytest.raises(DivergenceError) as err:
        training(replace(micro_cfg, **HUGE_LR), tmp_path)
    message = str(err.value)
    last = tmp_path / "last.pt"
    if last.exists():  # every checkpoint that exists is one training may continue from
        assert _finite_everywhere(last)
        it = checkpoint.load(last, "dgnet")["iteration"]
        assert f"the last good checkpoint is {last} (iteration {it};" in message
    else:
        assert "no checkpoint was written" in message
    assert message.startswith("iteration ")


def test_divergence_does_not_point_at_an_earlier_runs_checkpoint(micro_cfg, training, tmp_path, one_torch_thread):
    cfg = replace(micro_cfg, **{"train.iterations": 2, "train.checkpoint_every": 100})
    training(cfg, tmp_path)  # an earlier, finished run in the same folder
    # the new run diverges at its first update (weights NaN after the step), before any save
    with pytest.raises(DivergenceError, match="this run wrote no checkpoint") as err:
        training(replace(micro_cfg, **{**HUGE_LR, "train.lr_appearance": float("1e30"),
                                       "train.checkpoint_every": 100}), tmp_path)
    assert "earlier run" in str(err.value)


def test_the_update_itself_is_checked(micro_cfg, training, tmp_path, monkeypatch, one_torch_thread):
    """The losses are finite but the optimizer step writes NaN: caught at that iteration."""
    real_step = torch.optim.Adam.step
    calls = {"n": 0}

    def poisoning_step(self, *args, **kwargs):
        out = real_step(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 8:  # two Adam steps per iteration (D, then E_s + G): iteration 3's E_s + G
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("nan"))
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", poisoning_step)
    cfg = replace(micro_cfg, **{"train.iterations": 6, "train.checkpoint_every": 2})
    with pytest.raises(DivergenceError) as err:
        training(cfg, tmp_path)
    message = str(err.value)
    assert message.startswith("iteration 3: the update made 1 non-finite tensor (structure.")
    assert f"the last good checkpoint is {tmp_path / 'last.pt'} (iteration 2;" in message
    assert _finite_everywhere(tmp_path / "last.pt")


def test_save_refuses_non_finite_state(micro_cfg, tmp_path):
    model = build_teacher(micro_cfg.model, 4)
    running_var = next(b for name, b in model.named_buffers() if name.endswith("running_var"))
    running_var.fill_(float("inf"))  # what a huge learning rate did to BatchNorm
    state = checkpoint.make_state("teacher", micro_cfg, 4, 1, {"teacher": model})
    with pytest.raises(DivergenceError, match="refusing to save"):
        checkpoint.save(tmp_path / "t.pt", state)
    assert not (tmp_path / "t.pt").exists() and not list(tmp_path.iterdir())


def test_nonfinite_tensors_names_parameters_and_buffers():
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    assert guards.nonfinite_tensors({"n": net}) == []
    with torch.no_grad():
        net[1].running_var[0] = float("nan")
        net[0].bias[1] = float("-inf")
    assert guards.nonfinite_tensors({"n": net}) == ["n.0.bias", "n.1.running_var"]


# ---------------------------------------------------------------- resume


def test_resume_refuses_a_changed_seed_and_lists_allowed_changes(micro_cfg):
    stored = config_to_dict(micro_cfg)
    notes = guards.check_resume_config(stored, replace(micro_cfg, **{"train.iterations": 50}), "last.pt")
    assert notes == [f"train.iterations: {micro_cfg.train.iterations!r} -> 50"]
    with pytest.raises(UserError) as err:
        guards.check_resume_config(stored, replace(micro_cfg, **{"train.seed": 99, "train.lr_generator": 0.5}),
                                   "last.pt")
    assert "train.seed: 0 in the checkpoint, 99 now" in str(err.value)
    assert "train.lr_generator" in str(err.value)


def test_resume_with_another_width_is_one_error(micro_cfg, training, tmp_path, one_torch_thread):
    cfg = replace(micro_cfg, **{"train.iterations": 1, "train.checkpoint_every": 1})
    training(cfg, tmp_path)
    state = checkpoint.load(tmp_path / "last.pt", "dgnet")
    state["config"]["model"]["head"]["bottleneck"] = 48  # stored config says otherwise than the weights
    checkpoint.save(tmp_path / "last.pt", state)
    with pytest.raises(UserError, match=r"model\.head\.bottleneck: 48 in the checkpoint, 32 now"):
        training(replace(cfg, **{"train.iterations": 2}), tmp_path, resume=True)
    state["config"] = config_to_dict(cfg)
    del state["models"]["decoder"]
    checkpoint.save(tmp_path / "last.pt", state)
    with pytest.raises(UserError, match="no 'decoder' entry"):
        training(replace(cfg, **{"train.iterations": 2}), tmp_path, resume=True)


# ---------------------------------------------------------------- Ctrl-C, disk, leftovers


@pytest.mark.slow
def test_ctrl_c_exits_130_with_one_line_naming_the_kept_checkpoint(micro_cfg, tmp_path):
    cfg = replace(micro_cfg, **{"train.iterations": 400, "train.checkpoint_every": 2, "train.sample_every": 1000,
                                "tracking.uri": "none"})
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(config_to_dict(cfg)))
    teacher = tmp_path / "teacher.pt"
    from dgnet.data.layouts import load_layout

    classes = len({s.pid for s in load_layout("synthetic", cfg.data.root).train})
    checkpoint.save(teacher, checkpoint.make_state("teacher", cfg, classes, 0,
                                                   {"teacher": build_teacher(cfg.model, classes)}))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "dgnet.cli", "train", "--params", str(params), "--teacher",
                             str(teacher), "--out", str(out), "--figure", str(out / "s.png"), "--metrics",
                             str(out / "m.json"), "--quiet"], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"},
                            # a shell that runs pytest in the background ignores SIGINT, and children inherit that
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not (out / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 130, err
    assert len(lines) == 1, err
    assert lines[0].startswith("dgnet: interrupted: training stopped at iteration ")
    assert f"the last good checkpoint is {out / 'last.pt'}" in lines[0]


def test_interrupt_in_the_loop_becomes_one_sentence(micro_cfg, training, tmp_path, one_torch_thread):
    def hook(nets, iteration):
        if iteration == 3:
            raise KeyboardInterrupt

    cfg = replace(micro_cfg, **{"train.iterations": 6, "train.checkpoint_every": 2})
    with pytest.raises(Interrupted, match=r"iteration 2; the last good checkpoint is .*last.pt \(iteration 2;"):
        training(cfg, tmp_path, iteration_hook=hook)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs (needs mount rights; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_says_so_and_keeps_the_previous_checkpoint(tiny_disk):
    path = tiny_disk / "last.pt"
    io.save_checkpoint(path, {"weights": torch.zeros(10)})
    with pytest.raises(UserError) as err:
        io.save_checkpoint(path, {"weights": torch.zeros(200_000)})  # 800 kB on a 256 kB disk
    assert str(err.value).startswith(f"{path}: no space left on the device")
    assert "the previous last.pt is kept" in str(err.value)
    assert torch.equal(torch.load(path, weights_only=True)["weights"], torch.zeros(10))
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["last.pt"]  # no temporary file left
    with pytest.raises(UserError, match="no space left"):
        io.write_text(tiny_disk / "big.json", "x" * 400_000)


def test_stale_temporary_files_are_removed_but_a_live_writers_is_kept(tmp_path):
    target = tmp_path / "last.pt"
    stale = tmp_path / ".last.pt.abc123.tmp"
    stale.write_bytes(b"x" * 1000)  # a writer killed mid-save
    live = tmp_path / ".last.pt.def456.tmp"
    live.write_bytes(b"y")
    other = tmp_path / ".teacher.pt.xyz.tmp"
    other.write_bytes(b"z")
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert io.remove_stale_tmp(target) == [stale]
    assert live.exists() and other.exists() and not stale.exists()


def test_a_figure_that_fails_to_draw_keeps_the_previous_png_and_is_closed(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = tmp_path / "fig.png"
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    assert io.save_figure(fig, path, dpi=50) == path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not plt.fignum_exists(fig.number)
    before = path.read_bytes()
    broken, ax = plt.subplots()
    ax.set_title("$\\notacommand$")  # mathtext fails while the PNG is being drawn
    with pytest.raises(ValueError):
        io.save_figure(broken, path)
    plt.close(broken)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"]  # no temporary file left


def test_training_start_removes_the_killed_saves_leftover(micro_cfg, training, tmp_path, one_torch_thread):
    stale = tmp_path / ".last.pt.k1ll3d.tmp"
    stale.write_bytes(b"half a checkpoint")
    training(replace(micro_cfg, **{"train.iterations": 1, "train.checkpoint_every": 100}), tmp_path)
    assert not stale.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_synthetic_and_output_folders_have_normal_modes(micro_data, tmp_path):
    expected = 0o777 & ~io.umask()
    assert micro_data.stat().st_mode & 0o777 == expected
    io.write_text(tmp_path / "a" / "b" / "c.txt", "x")
    assert (tmp_path / "a" / "b").stat().st_mode & 0o777 == expected
    assert (tmp_path / "a" / "b" / "c.txt").stat().st_mode & 0o777 == 0o666 & ~io.umask()


# ---------------------------------------------------------------- MLflow


_WORKER = """
import sys, time
from pathlib import Path
from dgnet import tracking
from dgnet.config import TrackingConfig
import mlflow  # imported before the common start: the race is in the store creation
db, name = Path(sys.argv[1]), sys.argv[2]
(db.parent / f"ready_{name}").touch()
while not (db.parent / "go").exists():
    time.sleep(0.005)
with tracking.start_run(TrackingConfig(uri=f"sqlite:///{db}", experiment="race"), name) as run:
    run.log_metrics({"x": 1.0})
"""


@pytest.mark.slow
def test_two_workers_create_a_fresh_mlflow_store_together(tmp_path):
    """Without the store lock both workers crashed in MLflow's schema migration."""
    db = tmp_path / "mlflow.db"
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(db), f"w{i}"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    deadline = time.time() + 120
    while not all((tmp_path / f"ready_w{i}").exists() for i in range(2)):  # both past their imports
        assert time.time() < deadline and all(p.poll() is None for p in procs), "a worker did not get ready"
        time.sleep(0.01)
    (tmp_path / "go").touch()
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("race").experiment_id])
    assert len(runs) == 2


def test_a_killed_workers_trial_folder_is_removed(tmp_path):
    import optuna
    from optuna.trial import TrialState

    from experiments.tuning import remove_finished_trial_dirs

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="s")
    killed = study.ask()  # its worker died: the heartbeat marks it failed
    study.tell(killed, state=TrialState.FAIL)
    running = study.ask()
    for trial in (killed, running):
        (tmp_path / "s" / f"trial_{trial.number:05d}").mkdir(parents=True)
        (tmp_path / "s" / f"trial_{trial.number:05d}" / "last.pt").write_bytes(b"x")
    removed = remove_finished_trial_dirs(study, tmp_path / "s")
    assert removed == [tmp_path / "s" / f"trial_{killed.number:05d}"]
    assert [p.name for p in (tmp_path / "s").iterdir()] == [f"trial_{running.number:05d}"]


def test_resume_during_the_warm_up_allows_keys_that_act_after_it(micro_cfg):
    stored = config_to_dict(micro_cfg)
    changed = replace(micro_cfg, **{"train.alpha": 0.9})
    with pytest.raises(UserError, match="train.alpha"):
        guards.check_resume_config(stored, changed, "last.pt")
    assert guards.check_resume_config(stored, changed, "last.pt", ("train.alpha",)) == ["train.alpha: 0.2 -> 0.9"]
