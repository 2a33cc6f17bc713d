"""Optuna tuning (experiments/, ``dgnet tune``): validation split, search spaces,
pruning, a two-trial study end to end, two workers on one SQLite study, best params."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import mlflow
import optuna
import pandas as pd
import pytest
import yaml

from dgnet.config import (ConfigError, config_from_dict, config_to_dict, deep_merge, load_config,
                          preset_config, preset_dict, replace, with_changes, with_iterations)
from dgnet import tune_commands

ROOT = Path(__file__).resolve().parent.parent
from experiments.caches import ensure_warmup, warmup_key
from experiments.merge import apply_best_params
from experiments.objective import Objective, StudySettings, ValidationReporter
from experiments.spaces import (DEFAULT_BETAS, SCHEDULE_RANGES, SEARCHED_KEYS, SPACES, config_changes, config_params,
                                suggest_params)
from experiments.storage import TrialSeededSampler
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _tune(*argv: str) -> int:
    """``dgnet tune ...`` through this module's own parser (independent of dgnet/cli.py)."""
    parser = argparse.ArgumentParser(prog="dgnet")
    sub = parser.add_subparsers(dest="command", required=True)
    tune_commands.add_commands(sub)
    args = parser.parse_args(["tune", *argv])
    return args.func(args)


def _runs(uri: str, study: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("dgnet")
    return client, client.search_runs([exp.experiment_id], filter_string=f"tags.`optuna.study` = '{study}'")


# ---------------------------------------------------------------- data


def test_tuning_never_sees_the_test_ids(micro_cfg):
    from dgnet.data.layouts import load_layout
    from dgnet.data.loading import load_training_set, test_sets

    data = load_training_set(micro_cfg.data, hold_out_validation=True, progress=False)
    query, gallery, _ = test_sets(micro_cfg.data, validation=True)
    splits = load_layout("synthetic", micro_cfg.data.root)
    train_paths = {s.path for s in data.samples}
    val_paths = {s.path for s in query.samples} | {s.path for s in gallery.samples}
    test_paths = {s.path for s in splits.query} | {s.path for s in splits.gallery}
    assert train_paths and val_paths
    assert not train_paths & val_paths and not train_paths & test_paths and not val_paths & test_paths
    train_ids = {Path(s.path).name.split("_")[0] for s in data.samples}  # original pids (file names)
    val_ids = {s.pid for s in query.samples} | {s.pid for s in gallery.samples}
    test_ids = {s.pid for s in splits.query} | {s.pid for s in splits.gallery}
    assert len(val_ids) == micro_cfg.data.val_ids
    assert {s.pid for s in query.samples} == {s.pid for s in gallery.samples} == val_ids
    assert not {int(p) for p in train_ids} & val_ids
    assert not {int(p) for p in train_ids} & (test_ids - {0, -1})
    assert not val_ids & test_ids
    assert data.num_classes == micro_cfg.data.synth.train_ids - micro_cfg.data.val_ids


# ---------------------------------------------------------------- spaces, sampler, pruning


@pytest.mark.parametrize("preset", ["micro", "default", "paper"])
@pytest.mark.parametrize("space", SPACES)
def test_search_spaces_give_valid_configs_at_every_scale(preset, space):
    cfg = preset_config(preset)
    study = optuna.create_study(sampler=TrialSeededSampler(0, n_startup_trials=2), direction="maximize")
    for _ in range(6):  # edges of the ranges too
        trial = study.ask()
        params = suggest_params(space, trial)
        changes = config_changes(space, params, cfg.train.iterations, beta=0.75)
        trial_cfg = with_changes(cfg, changes)
        t = trial_cfg.train
        assert t.warm_iter + t.ramp_iters <= t.iterations
        if space == "alpha-beta":
            assert set(changes) == {"train.alpha", "eval.beta"} and t.alpha == params["alpha"]
            assert trial_cfg.eval.beta == 0.75
        else:
            assert set(changes) == set(SEARCHED_KEYS["schedule"])
            assert t.warm_iter == round(params["warm_frac"] * t.iterations)
        study.tell(trial, float(len(study.trials)))


def test_with_iterations_scales_the_schedule():
    cfg = preset_config("default")
    short = with_iterations(cfg, cfg.train.iterations // 5)
    t, s = cfg.train, short.train
    assert s.iterations == t.iterations // 5
    assert s.warm_iter == round(t.warm_iter / 5) and s.ramp_iters == round(t.ramp_iters / 5)
    assert s.lr_steps == tuple(round(x / 5) for x in t.lr_steps)
    assert with_iterations(cfg, None) is cfg


def test_sampler_proposals_depend_on_seed_and_trial_number_only():
    def first_alphas(seed, n):
        study = optuna.create_study(sampler=TrialSeededSampler(seed), direction="maximize")
        study.optimize(lambda t: suggest_params("alpha-beta", t)["alpha"], n_trials=n)
        return [t.params["alpha"] for t in study.trials]

    a, b = first_alphas(0, 4), first_alphas(0, 4)
    assert a == b
    assert len(set(a)) == 4
    assert first_alphas(1, 4) != a


class _AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return True


def _fake_score(values):
    it = iter(values)

    def score(net):
        m = next(it)
        return {"mAP": m, "rank1": m, "beta": 0.5, "mAP_by_beta": {0.0: m / 2, 0.5: m}}

    return score


def test_reporter_reports_every_n_iterations_and_prunes_before_the_last():
    study = optuna.create_study(pruner=optuna.pruners.NopPruner(), direction="maximize")
    trial = study.ask()
    hook = ValidationReporter(trial, _fake_score([0.1, 0.2, 0.3]), every=2, last=5)
    for it in range(1, 6):
        hook({"appearance": None}, it)
    assert study.trials[0].intermediate_values == {2: 0.1, 4: 0.2, 5: 0.3}
    assert hook.result["mAP"] == 0.3 and hook.iteration == 5

    study = optuna.create_study(pruner=_AlwaysPrune(), direction="maximize")
    trial = study.ask()
    hook = ValidationReporter(trial, _fake_score([0.1, 0.2]), every=2, last=5)
    hook({"appearance": None}, 1)  # not a reporting iteration
    with pytest.raises(optuna.TrialPruned):
        hook({"appearance": None}, 2)
    hook({"appearance": None}, 5)  # the last report never prunes: the run is done


def test_a_pruned_trial_is_recorded_in_optuna_and_mlflow(micro_cfg, tmp_path, monkeypatch):
    calls = {}

    def fake_train(cfg, images, labels, num_classes, teacher, out_dir, run, progress=True, iteration_hook=None,
                   **_):
        Path(out_dir).mkdir(parents=True)
        calls["alpha"] = cfg.train.alpha
        for it in range(1, cfg.train.iterations + 1):
            iteration_hook({"appearance": None}, it)

    import dgnet.train.loop

    monkeypatch.setattr(dgnet.train.loop, "train_dgnet", fake_train)
    settings = StudySettings(space="alpha-beta", study_name="pruned-unit", report_every=2,
                                    work_dir=str(tmp_path / "work"), progress=False)
    scorer = SimpleNamespace(score=_fake_score([0.4, 0.5, 0.6]))
    objective = Objective(settings, micro_cfg, SimpleNamespace(images=None, labels=None, num_classes=6),
                                 None, scorer)
    study = optuna.create_study(pruner=_AlwaysPrune(), sampler=TrialSeededSampler(3), direction="maximize")
    study.optimize(objective, n_trials=1)
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.intermediate_values == {2: 0.4}
    assert calls["alpha"] == trial.params["alpha"]
    assert trial.user_attrs["train_seed"] == micro_cfg.train.seed
    assert trial.user_attrs["sampler_seed"] == TrialSeededSampler(3).trial_seed(0)
    assert not (tmp_path / "work" / "pruned-unit").exists() or not any((tmp_path / "work" / "pruned-unit").iterdir())
    _, runs = _runs(micro_cfg.tracking.uri, "pruned-unit")
    assert len(runs) == 1 and runs[0].data.tags["optuna.state"] == "PRUNED"
    assert runs[0].info.status == "FINISHED"
    assert runs[0].data.metrics["val/mAP"] == 0.4
    assert float(runs[0].data.params["train.alpha"]) == pytest.approx(trial.params["alpha"])


# ---------------------------------------------------------------- end to end


def test_the_shared_warm_up_is_cached_by_its_key_and_continued(micro_cfg, tmp_path):
    import torch

    from dgnet.models import build_teacher
    from dgnet.tracking import Run
    from dgnet import checkpoint
    from dgnet.data.loading import load_training_set
    from dgnet.train.loop import train_dgnet

    cfg = replace(micro_cfg, **{"tracking.uri": "none", "train.iterations": 5, "train.warm_iter": 2,
                                "train.ramp_iters": 2, "train.lr_steps": (4,)})
    data = load_training_set(cfg.data, hold_out_validation=True, progress=False)
    torch.manual_seed(0)
    teacher = build_teacher(cfg.model, data.num_classes)
    warm = ensure_warmup(cfg, data, teacher, tmp_path / "work", progress=False)
    assert checkpoint.load(warm, "dgnet")["iteration"] == 2
    assert ensure_warmup(cfg, data, teacher, tmp_path / "work", progress=False) == warm  # cached
    trial_cfg = replace(cfg, **{"train.alpha": 0.7})
    assert warmup_key(trial_cfg) == warmup_key(cfg)  # alpha does not change the warm-up
    assert warmup_key(replace(cfg, **{"train.lambda_img": 2.0})) != warmup_key(cfg)
    seen = []
    train_dgnet(trial_cfg, data.images, data.labels, data.num_classes, teacher, tmp_path / "warm", Run(None, None),
                progress=False, init_from=warm, iteration_hook=lambda nets, it: seen.append(it))
    assert seen == [3, 4, 5]  # that a continued run equals one from scratch: test_train_loop.py



def test_two_trial_alpha_beta_study_end_to_end_and_resume(micro_cfg, tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(config_to_dict(micro_cfg)))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    common = ["--storage", storage, "--params", str(params), "--work-dir", str(tmp_path / "models"),
              "--reports-dir", str(tmp_path / "reports"), "--figures-dir", str(tmp_path / "figures"), "--quiet"]
    assert _tune("alpha-beta", "--trials", "2", "--report-every", "2", *common) == 0
    name = "alpha-beta-micro"
    assert f"study {name}: 2 complete" in capsys.readouterr().out

    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.trials
    assert [t.number for t in trials] == [0, 1]
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in trials)
    for t in trials:
        assert t.user_attrs["train_seed"] == micro_cfg.train.seed
        assert t.user_attrs["sampler_seed"] == TrialSeededSampler(0).trial_seed(t.number)
        assert t.user_attrs["warm_start"].endswith("last.pt")  # the shared first warm_iter = 2 iterations
        linked = mlflow.MlflowClient(micro_cfg.tracking.uri).get_run(t.user_attrs["mlflow_run_id"])
        assert linked.data.tags["optuna.trial"] == str(t.number)  # both ways: trial <-> run
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert set(t.intermediate_values) == {4, 6}
            assert t.value == t.intermediate_values[6] == max(t.user_attrs["mAP_by_beta"].values())
            assert t.user_attrs["beta"] in DEFAULT_BETAS

    # the teacher: trained once, on the training ids without the validation ids
    (teacher,) = (tmp_path / "models").glob("teacher-*.pt")
    from dgnet import checkpoint

    assert checkpoint.load(teacher, "teacher")["num_classes"] == micro_cfg.data.synth.train_ids - micro_cfg.data.val_ids
    assert not list((tmp_path / "models" / name).glob("*/last.pt"))  # trial checkpoints removed

    # MLflow: one parent run, each trial nested in it with its params and metrics
    client, runs = _runs(micro_cfg.tracking.uri, name)
    parents = [r for r in runs if r.info.run_name == f"tune/{name}"]
    children = [r for r in runs if r.info.run_name.startswith(f"{name}/trial-")]
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    by_number = {int(r.data.tags["optuna.trial"]): r for r in children}
    for t in trials:
        run = by_number[t.number]
        assert float(run.data.params["train.alpha"]) == pytest.approx(t.params["alpha"])
        assert float(run.data.params["optuna.alpha"]) == pytest.approx(t.params["alpha"])
        history = client.get_metric_history(run.info.run_id, "val/mAP")
        assert sorted(m.step for m in history) == sorted(t.intermediate_values)
        assert "loss/total" in run.data.metrics
        assert run.data.tags["optuna.state"] == t.state.name
    assert parent.data.metrics["best_value"] == pytest.approx(study.best_value)
    assert parent.data.metrics["trials_complete"] == 2

    # best params: params.yaml's nested shape, merges into a valid config
    best_file = tmp_path / "reports" / f"{name}_best_params.yaml"
    best = yaml.safe_load(best_file.read_text())
    assert set(best) == {"train", "eval"}
    cfg = config_from_dict(deep_merge(preset_dict("micro"), best))
    assert cfg.train.alpha == pytest.approx(study.best_params["alpha"], abs=1e-4)
    assert cfg.eval.beta == study.best_trial.user_attrs["beta"]

    figures = {p.name for p in (tmp_path / "figures").glob("*.png")}
    assert {f"tuning_{name}_history.png", f"tuning_{name}_slice_alpha.png", f"tuning_{name}_beta.png"} <= figures

    # resume: the same command adds trials to the same study and reuses the teacher
    mtime = teacher.stat().st_mtime_ns
    assert _tune("alpha-beta", "--trials", "1", "--report-every", "2", *common) == 0
    study = optuna.load_study(study_name=name, storage=storage)
    assert [t.number for t in study.trials] == [0, 1, 2]
    assert teacher.stat().st_mtime_ns == mtime and len(list((tmp_path / "models").glob("teacher-*.pt"))) == 1

    # report: the outputs again, from the storage alone
    shutil.rmtree(tmp_path / "figures")
    assert _tune("report", "--study", name, "--storage", storage, "--reports-dir", str(tmp_path / "reports"),
                 "--figures-dir", str(tmp_path / "figures")) == 0
    assert (tmp_path / "figures" / f"tuning_{name}_history.png").is_file()
    assert "only sampled parameter" in capsys.readouterr().out  # no importances for alpha alone

    # a run with other settings must not join the study
    with pytest.raises(Exception, match="iterations"):
        _tune("alpha-beta", "--trials", "1", "--iterations", "4", *common)

    # apply: merge into the params file, validated
    assert _tune("apply", str(best_file), "--params", str(params)) == 0
    applied = load_config(params)
    assert applied.train.alpha == cfg.train.alpha and applied.eval.beta == cfg.eval.beta


def test_schedule_study_writes_importances(micro_cfg, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(config_to_dict(micro_cfg)))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    assert _tune("schedule", "--trials", "2", "--iterations", "4", "--storage", storage, "--params", str(params),
                 "--work-dir", str(tmp_path / "models"), "--reports-dir", str(tmp_path / "reports"),
                 "--figures-dir", str(tmp_path / "figures"), "--pruner", "none", "--quiet", "--enqueue-config") == 0
    name = "schedule-micro"
    study = optuna.load_study(study_name=name, storage=storage)
    assert len(study.trials) == 2 and all(t.user_attrs["iterations"] == 4 for t in study.trials)
    # --enqueue-config: the first trial is the params file's own schedule, marked as such
    first = study.trials[0]
    assert first.params == pytest.approx(config_params("schedule", micro_cfg))
    assert first.user_attrs["note"] == f"enqueued: the values of {params}, for comparison"
    trials = pd.read_csv(tmp_path / "reports" / f"{name}_trials.csv")
    assert list(trials["trial"]) == [0, 1] and trials.loc[0, "note"] == first.user_attrs["note"]
    assert trials.loc[0, "warm_frac"] == pytest.approx(first.params["warm_frac"], abs=1e-4)
    assert config_changes("schedule", first.params, micro_cfg.train.iterations)["train.warm_iter"] == \
        micro_cfg.train.warm_iter
    for kind in ("history", "importances", "slice"):
        assert (tmp_path / "figures" / f"tuning_{name}_{kind}.png").stat().st_size > 1000
    best = yaml.safe_load((tmp_path / "reports" / f"{name}_best_params.yaml").read_text())
    assert set(best["train"]) == {"warm_iter", "ramp_iters", "lambda_prim_max", "lambda_id", "lambda_img"}
    # fractions of the 4-iteration trials, written for the config's own 6 iterations
    bp = study.best_params
    assert best["train"]["warm_iter"] == round(bp["warm_frac"] * micro_cfg.train.iterations)
    config_from_dict(deep_merge(preset_dict("micro"), best))


def test_figures_are_skipped_with_a_note_when_the_study_is_too_small(tmp_path):
    from dgnet.reports.tuning_figures import tuning_figures

    study = optuna.create_study(direction="maximize")
    files, notes = tuning_figures(study, tmp_path / "t", list(SCHEDULE_RANGES))
    assert files == {} and "no completed trial" in notes[0]
    study.enqueue_trial({k: lo for k, (lo, hi, _) in SCHEDULE_RANGES.items()})
    study.optimize(lambda t: 0.5 if suggest_params("schedule", t) else 0, n_trials=1)
    files, notes = tuning_figures(study, tmp_path / "t", list(SCHEDULE_RANGES))
    assert set(files) == {"history", "slice"} and "importances skipped" in notes[0]


# ---------------------------------------------------------------- several workers


WORKER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from experiments.spaces import suggest_params
    from experiments.storage import open_study
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ready = Path(sys.argv[3])
    (ready / f"ready-{os.getpid()}").touch()
    deadline = time.time() + 60
    while len(list(ready.glob("ready-*"))) < 2 and time.time() < deadline:  # start together
        time.sleep(0.01)
    study = open_study("shared", sys.argv[1], seed=0)

    def objective(trial):
        alpha = suggest_params("alpha-beta", trial)["alpha"]
        trial.set_user_attr("worker", os.getpid())
        time.sleep(0.05)
        return alpha

    study.optimize(objective, n_trials=int(sys.argv[2]))
""")


def test_two_workers_share_one_sqlite_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    n = 8
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}  # this checkout's experiments/
    procs = [subprocess.Popen([sys.executable, str(script), storage, str(n), str(tmp_path)],
                              env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    trials = optuna.load_study(study_name="shared", storage=storage).trials
    assert len(trials) == 2 * n
    assert sorted(t.number for t in trials) == list(range(2 * n))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({t.params["alpha"] for t in trials}) == 2 * n  # no repeated proposals
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2
    spans = {w: (min(t.datetime_start for t in trials if t.user_attrs["worker"] == w),
                 max(t.datetime_complete for t in trials if t.user_attrs["worker"] == w)) for w in workers}
    (a0, a1), (b0, b1) = spans.values()
    assert a0 < b1 and b0 < a1, "the two workers should have run at the same time"


# ---------------------------------------------------------------- params.yaml


def test_apply_keeps_comments_and_validates(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "configs" / "default.yaml", params)
    before = params.read_text()
    best = tmp_path / "best.yaml"
    best.write_text("# from a study\ntrain:\n  alpha: 0.35\neval:\n  beta: 1.25\n")
    changes = apply_best_params(best, params)
    assert changes == {"train.alpha": 0.35, "eval.beta": 1.25}
    after = params.read_text()
    assert "  alpha: 0.35                # lambda_fine = alpha * lambda_prim" in after
    assert len(after.splitlines()) == len(before.splitlines())
    assert [l for l in after.splitlines() if "alpha" not in l and "beta" not in l] == \
        [l for l in before.splitlines() if "alpha" not in l and "beta" not in l]
    merged = deep_merge(yaml.safe_load(before), {"train": {"alpha": 0.35}, "eval": {"beta": 1.25}})
    assert yaml.safe_load(after) == merged

    best.write_text("train: {alpha: 3.0}\n")  # out of range: an error naming the key, file untouched
    with pytest.raises(ConfigError, match="train.alpha"):
        apply_best_params(best, params)
    assert params.read_text() == after


def test_apply_keeps_a_flow_style_file_as_it_was_but_the_value(tmp_path):
    micro = preset_dict("micro")
    flow = tmp_path / "flow.yaml"
    flow.write_text("# all on one line\n" + yaml.safe_dump(micro, default_flow_style=True, width=10**6))
    before = flow.read_text()
    assert before.count(f"alpha: {micro['train']['alpha']},") == 1
    (tmp_path / "best.yaml").write_text("train:\n  alpha: 0.5\n")
    apply_best_params(tmp_path / "best.yaml", flow)
    assert flow.read_text() == before.replace(f"alpha: {micro['train']['alpha']},", "alpha: 0.5,")
    assert load_config(flow).train.alpha == 0.5


def test_apply_sets_a_nested_key_in_place(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "configs" / "default.yaml", params)
    before = params.read_text().splitlines()
    (tmp_path / "best.yaml").write_text("model:\n  backbone:\n    arch: resnet18\n")
    assert apply_best_params(tmp_path / "best.yaml", params) == {"model.backbone.arch": "resnet18"}
    after = params.read_text().splitlines()
    changed = [(b, a) for b, a in zip(before, after) if b != a]
    assert len(after) == len(before)
    assert changed == [("    arch: small              # small | resnet18 | resnet50",
                        "    arch: resnet18           # small | resnet18 | resnet50")]
    assert load_config(params).model.backbone.arch == "resnet18"


def test_tune_help_from_the_dgnet_command(capsys):
    from dgnet import cli

    parser = cli.build_parser()
    names = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    if "tune" not in names:
        pytest.skip("dgnet.tune_commands is not registered in dgnet/cli.py yet")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["tune", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "alpha-beta" in out and "schedule" in out and "apply" in out
