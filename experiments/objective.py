"""One trial: its settings, the validation reporter the training loop calls, and the objective Optuna optimises."""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import optuna

from dgnet import tracking
from dgnet.config import Config, config_to_dict, with_changes
from dgnet.errors import UserError
from dgnet.eval.validation import ValidationScorer, beta_name

from experiments.spaces import DEFAULT_BETAS, check_space, config_changes, suggest_params
from experiments.storage import DEFAULT_STORAGE, TrialSeededSampler


class ValidationReporter:
    """The training loop's ``iteration_hook``: every ``every`` iterations (and at the
    last) score the appearance encoder, report the mAP to the trial, log it, and
    raise ``optuna.TrialPruned`` when the pruner says so (never at the last one)."""

    def __init__(self, trial: optuna.Trial, score: Callable[[Any], dict], every: int, last: int,
                 run: tracking.Run | None = None):
        if every < 1:
            raise UserError(f"--report-every must be >= 1, got {every}")
        self.trial, self.score, self.every, self.last, self.run = trial, score, every, last, run
        self.result: dict | None = None
        self.iteration = 0

    def __call__(self, nets: Mapping[str, Any], iteration: int) -> None:
        if iteration % self.every and iteration != self.last:
            return
        result = self.score(nets["appearance"])
        self.result, self.iteration = result, iteration
        self.trial.report(result["mAP"], iteration)
        if self.run is not None:
            self.run.log_metrics({"val/mAP": result["mAP"], "val/rank1": result["rank1"], "val/beta": result["beta"],
                                  **{f"val/mAP_{beta_name(b)}": v for b, v in result["mAP_by_beta"].items()}},
                                 step=iteration)
        if iteration < self.last and self.trial.should_prune():
            raise optuna.TrialPruned(f"validation mAP {result['mAP']:.4f} at iteration {iteration}")


@dataclass(frozen=True)
class StudySettings:
    """How a study runs (the ``dgnet tune`` options); the model and data come from the config."""

    space: str
    study_name: str
    storage: str = DEFAULT_STORAGE
    trials: int = 10  # trials this process runs (a re-run or another worker adds more)
    iterations: int | None = None  # None: the config's train.iterations
    report_every: int | None = None  # None: iterations // 4
    seed: int = 0  # sampler seed (each trial's is derived from it and the trial number)
    pruner: str = "median"
    pruner_startup_trials: int = 5
    sampler_startup_trials: int = 10
    betas: tuple[float, ...] = DEFAULT_BETAS  # alpha-beta only
    timeout: float | None = None  # seconds for this process
    work_dir: str = "models/tuning"  # teacher cache, per-trial checkpoints
    reports_dir: str = "reports/tuning"
    figures_dir: str = "reports/figures"
    keep_checkpoints: bool = False
    progress: bool = True
    enqueue_config: str | None = None  # the params file's path: run its own values first, for comparison
    heartbeat: float = 60.0  # seconds between a trial's heartbeats; 3x silent: its worker is gone

    def __post_init__(self) -> None:
        check_space(self.space)
        if self.trials < 0:
            raise UserError(f"--trials must be >= 0, got {self.trials}")
        if self.heartbeat < 1:
            raise UserError(f"--heartbeat must be >= 1 second, got {self.heartbeat}")
        if not self.betas or any(b < 0 for b in self.betas):
            raise UserError(f"--betas must be non-negative numbers, got {self.betas}")
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", self.study_name):
            raise UserError(f"--study {self.study_name!r}: use letters, digits, '_', '.', '-' only")


class Objective:
    """One trial: draw parameters, train DG-Net on the tuning ids, return the validation mAP."""

    def __init__(self, settings: StudySettings, cfg: Config, data, teacher, scorer: ValidationScorer,
                 warm_start: str | Path | None = None):
        self.settings, self.cfg, self.data, self.teacher, self.scorer = settings, cfg, data, teacher, scorer
        self.warm_start = warm_start  # alpha-beta: the shared warm-up checkpoint (ensure_warmup)
        self.every = settings.report_every or max(1, cfg.train.iterations // 4)

    def __call__(self, trial: optuna.Trial) -> float:
        from dgnet.train.loop import train_dgnet

        s = self.settings
        params = suggest_params(s.space, trial)
        trial_cfg = with_changes(self.cfg, config_changes(s.space, params, self.cfg.train.iterations))
        sampler = trial.study.sampler
        trial.set_user_attr("train_seed", trial_cfg.train.seed)
        if isinstance(sampler, TrialSeededSampler):
            trial.set_user_attr("sampler_seed", sampler.trial_seed(trial.number))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("iterations", trial_cfg.train.iterations)
        if self.warm_start is not None:
            trial.set_user_attr("warm_start", str(self.warm_start))
        out_dir = Path(s.work_dir) / s.study_name / f"trial_{trial.number:05d}"
        tags = {"config": self.cfg.name, "optuna.study": s.study_name, "optuna.space": s.space,
                "optuna.trial": str(trial.number)}
        began = time.perf_counter()
        pruned: optuna.TrialPruned | None = None
        with tracking.start_run(self.cfg.tracking, f"{s.study_name}/trial-{trial.number}",
                                params=config_to_dict(trial_cfg), tags=tags, nested=True) as run:
            run.log_params({"optuna": {"trial": trial.number, **params}})
            if run.run_id is not None:  # the link back: trial -> MLflow run (the run has optuna.trial)
                trial.set_user_attr("mlflow_run_id", run.run_id)
            reporter = ValidationReporter(trial, self.scorer.score, self.every, trial_cfg.train.iterations, run)
            try:
                train_dgnet(trial_cfg, self.data.images, self.data.labels, self.data.num_classes, self.teacher,
                            out_dir, run, progress=s.progress, iteration_hook=reporter,
                            init_from=self.warm_start)
            except optuna.TrialPruned as err:
                pruned = err
            except Exception:
                run.set_tags({"optuna.state": "FAIL"})
                raise
            finally:
                if not s.keep_checkpoints:
                    shutil.rmtree(out_dir, ignore_errors=True)
            run.set_tags({"optuna.state": "PRUNED" if pruned else "COMPLETE"})
            trial.set_user_attr("seconds", round(time.perf_counter() - began, 3))
            if pruned is None:
                result = reporter.result
                assert result is not None, "the last iteration always reports"
                trial.set_user_attr("beta", result["beta"])
                trial.set_user_attr("rank1", result["rank1"])
                trial.set_user_attr("mAP_by_beta", {f"{b:g}": v for b, v in result["mAP_by_beta"].items()})
                run.log_metrics({"objective": result["mAP"]})
        if pruned is not None:
            raise pruned
        return result["mAP"]
