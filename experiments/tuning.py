"""Optuna studies over DG-Net's loss weights and schedule, scored on held-out validation ids.

    dgnet tune alpha-beta --trials 20              # study "alpha-beta-<config>" in sqlite:///optuna.db
    dgnet tune schedule --trials 30 --iterations 600 --storage postgresql+psycopg2://user:pass@host/db
    dgnet tune report --study alpha-beta-default   # best-params YAML and figures again, from the storage
    dgnet tune apply reports/tuning/alpha-beta-default_best_params.yaml   # merge into params.yaml

How a study works (experiments/README.md has the user's side):

- Data. Trials train on the training ids minus ``data.val_ids`` held-out ids
  and are scored on a query/gallery split of those ids
  (:func:`dgnet.data.splits.split_validation`). The test set is never read.
- Teacher. L_prim needs a teacher trained on the same ids. It is trained
  once and cached as ``<work_dir>/teacher-<hash>.pt``, keyed by every config
  key it depends on (:func:`teacher_key`), so all trials, workers and
  re-runs share it.
- Spaces. ``alpha-beta``: the sampler searches alpha (``train.alpha`` =
  lambda_fine / lambda_prim), which needs one training per trial; alpha
  only acts from ``train.warm_iter`` on, so the first ``warm_iter``
  iterations are trained once per study and every trial starts from them
  (:func:`ensure_warmup`; 30% of each trial at the paper's schedule). beta
  (``eval.beta``) only weighs f_fine at test time, so every validation of a
  trial scores a grid of betas on the same extracted features (no
  retraining, almost free) and keeps the best one: the trial's value is the
  maximum over the grid, and the beta that reached it is the trial's user
  attribute ``beta``. ``schedule``: the warm-up and the ramp as fractions of
  the run's iterations (so one space fits the micro, default and paper
  scales), lambda_prim's maximum, lambda_id and lambda_img (log scale); beta
  stays ``eval.beta``.
- Objective: the validation mAP of ``f_prim+f_fine`` (maximised). Every
  ``report_every`` iterations a trial reports it (step = iteration) through
  the training loop's ``iteration_hook``; the pruner (median by default)
  may stop the trial there (``optuna.TrialPruned``).
- Seeds. The TPE sampler (settings explicit: Optuna 5 changed the defaults)
  is reseeded for every trial from ``(seed, trial number)``
  (:class:`TrialSeededSampler`): a trial's proposal does not depend on which
  worker runs it, and workers started with the same command never repeat
  each other's random start-up draws. Every trial trains with the config's
  ``train.seed`` (common random numbers: trials differ by their parameters,
  not by their seeds). Both seeds are trial user attributes.
- Storage. Any SQLAlchemy URL (default ``sqlite:///optuna.db``), opened with
  ``load_if_exists``, so several workers share a study and a re-run resumes
  it. Heartbeats mark the trials of a killed worker failed and retry them once.
- Tracking. Each ``dgnet tune`` process opens one MLflow parent run
  ``tune/<study>`` (tags ``optuna.study``, ``optuna.space`` and ``tuning.worker``,
  host:pid, as the trials' ``worker`` attribute); every trial is a
  run nested in it with its full config, the Optuna parameters
  (``optuna.*`` params), the training losses and the validation metrics
  (``val/mAP`` per reported iteration, ``val/mAP_beta_<b>`` per beta).
- Outputs. The best parameters in params.yaml's nested shape
  (``<reports_dir>/<study>_best_params.yaml``) and figures
  (``<figures_dir>/tuning_<study>_*.png``), rewritten at the end of every run
  and by ``dgnet tune report``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import optuna
import yaml

from dgnet import tracking
from dgnet.locking import exclusive_lock
from dgnet.config import Config, config_from_dict, config_to_dict, deep_merge, flatten
from dgnet.errors import UserError
from dgnet.eval.validation import ValidationScorer, beta_name

log = logging.getLogger(__name__)

SPACES = ("alpha-beta", "schedule")
DEFAULT_STORAGE = "sqlite:///optuna.db"
DEFAULT_BETAS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)

# name -> (low, high, log scale); the schedule's fractions are of the run's iterations
ALPHA_RANGE = (0.0, 1.0, False)
SCHEDULE_RANGES = {
    "warm_frac": (0.0, 0.6, False),  # train.warm_iter / iterations (paper: 30K / 100K)
    "ramp_frac": (0.0, 0.3, False),  # train.ramp_iters / iterations (paper: 4K / 100K)
    "lambda_prim_max": (0.5, 4.0, True),  # paper 2
    "lambda_id": (0.1, 2.0, True),  # paper 0.5
    "lambda_img": (1.0, 10.0, True),  # paper 5
}
# config keys each space searches (left out of the study's config fingerprint)
SEARCHED_KEYS = {
    "alpha-beta": ("train.alpha", "eval.beta"),
    "schedule": ("train.warm_iter", "train.ramp_iters", "train.lambda_prim_max", "train.lambda_id",
                 "train.lambda_img"),
}


# ---------------------------------------------------------------- configs and search spaces


def _check_space(space: str) -> None:
    if space not in SPACES:
        raise UserError(f"unknown search space {space!r}; expected one of {', '.join(SPACES)}")


def nest(changes: Mapping[str, Any]) -> dict:
    """``{"train.alpha": 0.3}`` -> ``{"train": {"alpha": 0.3}}`` (params.yaml's shape)."""
    out: dict = {}
    for key, value in changes.items():
        *heads, last = key.split(".")
        node = out
        for head in heads:
            node = node.setdefault(head, {})
        node[last] = value
    return out


def with_changes(cfg: Config, changes: Mapping[str, Any]) -> Config:
    """``cfg`` with dotted ``changes``, validated like a params file (ranges included)."""
    return config_from_dict(deep_merge(config_to_dict(cfg), nest(changes)))


def with_iterations(cfg: Config, iterations: int | None) -> Config:
    """A shortened (or longer) run: ``train.iterations`` and the schedule scaled alike.

    ``lr_steps``, ``warm_iter`` and ``ramp_iters`` keep their fractions of the
    run, so a quick tuning run has the shape of the full one.
    """
    t = cfg.train
    if iterations is None or iterations == t.iterations:
        return cfg
    if iterations < 1:
        raise UserError(f"--iterations must be >= 1, got {iterations}")
    f = iterations / t.iterations
    return with_changes(cfg, {
        "train.iterations": iterations,
        "train.lr_steps": [round(s * f) for s in t.lr_steps],
        "train.warm_iter": round(t.warm_iter * f),
        "train.ramp_iters": round(t.ramp_iters * f),
    })


def suggest_params(space: str, trial: optuna.Trial) -> dict[str, float]:
    """Draw a trial's parameters of ``space`` (Optuna names, see :data:`SCHEDULE_RANGES`)."""
    _check_space(space)
    if space == "alpha-beta":
        lo, hi, log_scale = ALPHA_RANGE
        return {"alpha": trial.suggest_float("alpha", lo, hi, log=log_scale)}
    return {name: trial.suggest_float(name, lo, hi, log=log_scale)
            for name, (lo, hi, log_scale) in SCHEDULE_RANGES.items()}


def config_changes(space: str, params: Mapping[str, float], iterations: int,
                   beta: float | None = None) -> dict[str, Any]:
    """The dotted config keys that a trial's ``params`` set for a run of ``iterations``.

    ``beta`` (alpha-beta only) is the grid value a trial picked on validation.
    """
    _check_space(space)
    if space == "alpha-beta":
        changes: dict[str, Any] = {"train.alpha": float(params["alpha"])}
        if beta is not None:
            changes["eval.beta"] = float(beta)
        return changes
    return {
        "train.warm_iter": int(round(params["warm_frac"] * iterations)),
        "train.ramp_iters": int(round(params["ramp_frac"] * iterations)),
        "train.lambda_prim_max": float(params["lambda_prim_max"]),
        "train.lambda_id": float(params["lambda_id"]),
        "train.lambda_img": float(params["lambda_img"]),
    }


def config_params(space: str, cfg: Config) -> dict[str, float]:
    """``cfg``'s own values in the space's terms (the inverse of :func:`config_changes`): an enqueued trial."""
    _check_space(space)
    t = cfg.train
    if space == "alpha-beta":
        return {"alpha": float(t.alpha)}
    return {"warm_frac": t.warm_iter / t.iterations, "ramp_frac": t.ramp_iters / t.iterations,
            "lambda_prim_max": float(t.lambda_prim_max), "lambda_id": float(t.lambda_id),
            "lambda_img": float(t.lambda_img)}


def config_fingerprint(cfg: Config, space: str) -> str:
    """A hash of what a study's trials share: the config without the searched keys,
    tracking, runtime (workers may differ in device), machine-local paths and
    keys no trial reads (the DVC sweeps, the evaluation batch size)."""
    flat = flatten(config_to_dict(cfg))
    skip = set(SEARCHED_KEYS[space]) | {"data.root", "data.num_workers", "data.cache_images", "name",
                                        "eval.batch_size"}
    kept = {k: v for k, v in flat.items()
            if k not in skip and not k.startswith(("tracking.", "runtime.", "sweep."))}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- sampler, pruner, storage


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """TPE reseeded for every trial from ``(seed, trial number)``.

    A fresh :class:`optuna.samplers.TPESampler` (multivariate, constant liar,
    ``n_startup_trials`` random trials first: all explicit) is made in
    :meth:`before_trial`, which Optuna calls before the trial samples
    anything. Proposals then depend on the study's history and the trial
    number only, never on which process draws them.
    """

    def __init__(self, seed: int, n_startup_trials: int = 10):
        self.seed = int(seed)
        self.n_startup_trials = n_startup_trials
        self._inner = self._make(self.seed)

    def trial_seed(self, number: int) -> int:
        return int(np.random.SeedSequence([self.seed, number]).generate_state(1)[0])

    def _make(self, seed: int) -> optuna.samplers.TPESampler:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=self.n_startup_trials, multivariate=True, constant_liar=True)

    def before_trial(self, study, trial) -> None:
        self._inner = self._make(self.trial_seed(trial.number))
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:  # seeds come from trial numbers
        pass


def make_pruner(name: str, startup_trials: int = 5, warmup_steps: int = 0) -> optuna.pruners.BasePruner:
    """``median``: stop a trial whose reported mAP is below the median of earlier
    trials at the same iteration (after ``startup_trials`` trials and
    ``warmup_steps`` iterations); ``none``: never prune."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_steps)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise UserError(f"unknown pruner {name!r}; expected median or none")


def redact(url: str) -> str:
    """The storage URL without its password (for logs and MLflow)."""
    try:
        import sqlalchemy

        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL: say nothing about it
        return re.sub(r"//[^@/]*@", "//***@", url)


def make_storage(url: str, heartbeat: float | None = 60.0) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage for any SQLAlchemy URL (SQLite file, PostgreSQL, MySQL).

    With ``heartbeat`` (seconds), a running trial writes a heartbeat that often; one
    silent for three times as long (its worker was killed) is marked failed and
    retried once with the same parameters, when any worker starts a trial.
    """
    import sqlalchemy.exc

    if "://" not in url:
        raise UserError(f"--storage {url!r}: expected a SQLAlchemy URL such as {DEFAULT_STORAGE} "
                        "or postgresql+psycopg2://user:pass@host/db")
    engine_kwargs = None
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
    elif url.startswith("postgresql"):  # a host that drops packets: an error in seconds, not minutes
        engine_kwargs = {"connect_args": {"connect_timeout": 10}}
    with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        kwargs: dict[str, Any] = {}
        if heartbeat:
            kwargs = dict(heartbeat_interval=max(1, round(heartbeat)), grace_period=max(3, round(3 * heartbeat)),
                          heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
        except ImportError as err:  # e.g. psycopg2 not installed for a postgresql URL
            raise UserError(f"--storage {redact(url)}: {err}") from None
        except sqlalchemy.exc.OperationalError as err:
            if url.startswith("sqlite"):
                raise  # open_study retries SQLite's table-creation races
            raise unreachable(url, err) from None


def unreachable(url: str, err: Exception) -> UserError:
    """The one-line error for a storage that cannot be opened (server down, wrong host, password, database)."""
    reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
    return UserError(f"--storage {redact(url)}: cannot open the study storage ({reason}); check that its "
                     "server runs, the host, port, user, password and database name")


def open_study(name: str, storage: str, seed: int = 0, pruner: optuna.pruners.BasePruner | None = None,
               n_startup_trials: int = 10, attempts: int = 5, heartbeat: float = 60.0) -> optuna.Study:
    """Create the study or load it (``load_if_exists``): what every worker calls.

    Workers that start together on a new database race to create its tables:
    on SQLite a locked file, on PostgreSQL a table or type that another worker
    created between this one's check and its CREATE (DuplicateTable or
    DuplicateObject, a ProgrammingError) or while it waited (a unique
    violation). Such a clash is retried a few times; the tables are there then.
    """
    import sqlalchemy.exc

    for attempt in range(attempts):
        try:
            return optuna.create_study(
                study_name=name, storage=make_storage(storage, heartbeat),
                sampler=TrialSeededSampler(seed, n_startup_trials),
                pruner=pruner or optuna.pruners.MedianPruner(), direction="maximize", load_if_exists=True)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError,
                sqlalchemy.exc.ProgrammingError) as err:
            if attempt == attempts - 1:
                if isinstance(err, sqlalchemy.exc.OperationalError):
                    raise unreachable(storage, err) from None
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _check_study_attrs(study: optuna.Study, attrs: Mapping[str, Any]) -> None:
    """Record what a study is on its first run; refuse a later run that differs."""
    for key, value in attrs.items():
        stored = study.user_attrs.get(key)
        if stored is None:
            study.set_user_attr(key, value)
        elif stored != value:
            raise UserError(
                f"study {study.study_name!r} was run with {key} = {stored!r}, this run has {value!r}; "
                f"resume it with the same settings or pass another --study"
            )


# ---------------------------------------------------------------- teacher


def teacher_key(cfg: Config) -> str:
    """Hash of the config keys the tuning teacher depends on."""
    data = config_to_dict(cfg.data)
    for key in ("num_workers", "cache_images"):
        data.pop(key)
    payload = {"data": data, "backbone": config_to_dict(cfg.model.backbone),
               "head": config_to_dict(cfg.model.head), "teacher": config_to_dict(cfg.teacher),
               "autocast_bf16": cfg.runtime.autocast_bf16, "validation_held_out": True}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def ensure_teacher(cfg: Config, data, work_dir: str | Path, progress: bool = True):
    """The tuning teacher (trained on ``data``, the training ids minus the validation
    ids): loaded from ``<work_dir>/teacher-<hash>.pt`` or trained once and cached.

    Returns ``(model, path, trained_now)``.
    """
    import torch

    from dgnet.checkpoint import load_teacher
    from dgnet.train.teacher import train_teacher

    path = Path(work_dir) / f"teacher-{teacher_key(cfg)}.pt"
    device = torch.device(cfg.runtime.device)
    with exclusive_lock(path.with_suffix(".lock")):
        if path.exists():
            model, classes = load_teacher(path, device)
            if classes != data.num_classes:
                raise UserError(f"{path}: a teacher with {classes} classes, but the tuning training set "
                                f"has {data.num_classes}; delete the file to retrain it")
            return model, path, False
        with tracking.start_run(cfg.tracking, "tune/teacher", params=config_to_dict(cfg),
                                tags={"config": cfg.name, "tuning.teacher_key": teacher_key(cfg)},
                                nested=True) as run:
            model = train_teacher(cfg, data.images, data.labels, data.num_classes, path, run, progress)
        return model, path, True


def warmup_key(cfg: Config) -> str:
    """Hash of what the first ``warm_iter`` iterations depend on (alpha does not)."""
    from dgnet.train.loop import POST_WARM_KEYS

    conf = config_to_dict(cfg)
    for key in ("name", "tracking", "eval", "sweep"):
        conf.pop(key, None)
    conf["train"] = {k: v for k, v in conf["train"].items() if k not in POST_WARM_KEYS}
    conf["teacher_key"] = teacher_key(cfg)
    return hashlib.sha256(json.dumps(conf, sort_keys=True).encode()).hexdigest()[:12]


def ensure_warmup(cfg: Config, data, teacher, work_dir: str | Path, progress: bool = True) -> Path | None:
    """The shared warm-up of the alpha-beta trials: ``<work_dir>/warmup-<hash>/last.pt``.

    alpha only acts from ``warm_iter`` on and batches and dropout are seeded by
    the iteration, so every trial would repeat the same first ``warm_iter``
    iterations; they are trained once (resumed if a worker was killed) and each
    trial starts from them (``train_dgnet(init_from=...)``), bit for bit the
    run it would have made from scratch. ``None`` when there is nothing to
    share (``warm_iter`` 0, or no iteration after it).
    """
    from dgnet import checkpoint
    from dgnet.train.loop import train_dgnet

    t = cfg.train
    if not 0 < t.warm_iter < t.iterations:
        return None
    out = Path(work_dir) / f"warmup-{warmup_key(cfg)}"
    path = out / "last.pt"
    with exclusive_lock(out.with_suffix(".lock")):
        if path.exists() and checkpoint.load(path, "dgnet")["iteration"] == t.warm_iter:
            return path
        warm_cfg = with_changes(cfg, {"train.iterations": t.warm_iter})
        with tracking.start_run(cfg.tracking, "tune/warmup", params=config_to_dict(warm_cfg),
                                tags={"config": cfg.name, "tuning.warmup_key": warmup_key(cfg)},
                                nested=True) as run:
            train_dgnet(warm_cfg, data.images, data.labels, data.num_classes, teacher, out, run,
                        resume=True, progress=progress)
    return path


# ---------------------------------------------------------------- validation (dgnet.eval.validation) and the objective


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
        _check_space(self.space)
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


# ---------------------------------------------------------------- running a study


def remove_finished_trial_dirs(study: optuna.Study, study_dir: str | Path) -> list[Path]:
    """Remove the ``trial_NNNNN`` folders of trials that are over (complete, pruned or
    failed): what a killed worker left behind. Folders of running trials stay."""
    from optuna.trial import TrialState

    active = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))}
    removed = []
    for folder in sorted(Path(study_dir).glob("trial_*")):
        number = folder.name.removeprefix("trial_")
        if folder.is_dir() and number.isdigit() and int(number) not in active:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def end_runs_of_killed_trials(study: optuna.Study, tracking_cfg) -> list[str]:
    """End KILLED the MLflow runs (and their workers' parent runs) that killed workers left
    RUNNING: those of trials the heartbeat marked failed."""
    from optuna.trial import TrialState

    run_ids = [t.user_attrs["mlflow_run_id"] for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
               if "mlflow_run_id" in t.user_attrs]
    return tracking.end_abandoned_runs(tracking_cfg, run_ids)


@dataclass
class StudyOutputs:
    """What a study run leaves behind."""

    study_name: str
    counts: dict[str, int]  # trials by state
    best_value: float | None = None
    best_params: dict | None = None  # nested, params.yaml shape
    best_params_path: Path | None = None
    trials_path: Path | None = None  # one row per trial: state, value, params, intermediate values, note
    figures: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def run_study(cfg: Config, settings: StudySettings) -> StudyOutputs:
    """Run ``settings.trials`` trials of a study (created or resumed), then write its outputs."""
    import torch

    from dgnet.data.loading import load_training_set, test_sets
    from dgnet.errors import DivergenceError

    s = settings
    if cfg.data.val_ids < 1:
        raise UserError("data.val_ids must be >= 1 for tuning: trials are scored on held-out training ids")
    if cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    run_cfg = with_iterations(cfg, s.iterations)
    betas = tuple(sorted(set(s.betas))) if s.space == "alpha-beta" else (cfg.eval.beta,)

    data = load_training_set(run_cfg.data, hold_out_validation=True, progress=s.progress,
                             resize=run_cfg.switches.resize)
    query, gallery, _ = test_sets(run_cfg.data, validation=True, resize=run_cfg.switches.resize,
                                  progress=s.progress)
    if len(query) == 0 or len(gallery) == 0:
        raise UserError(f"the {cfg.data.val_ids} validation ids give no query/gallery pairs "
                        "(each needs images from two cameras); raise data.val_ids")
    device = torch.device(cfg.runtime.device)
    scorer = ValidationScorer(query, gallery, run_cfg.eval, device, betas)

    # alpha acts only once L_prim / L_fine start: do not prune before then
    warmup = run_cfg.train.warm_iter if s.space == "alpha-beta" else 0
    pruner = make_pruner(s.pruner, s.pruner_startup_trials, warmup)
    study = open_study(s.study_name, s.storage, s.seed, pruner, s.sampler_startup_trials, heartbeat=s.heartbeat)
    _check_study_attrs(study, {
        "space": s.space, "config": cfg.name, "config_fingerprint": config_fingerprint(cfg, s.space),
        "base_iterations": cfg.train.iterations, "iterations": run_cfg.train.iterations,
        "betas": list(betas), "val_ids": cfg.data.val_ids, "seed": s.seed,
    })

    settings_params = {k: v for k, v in dataclasses.asdict(s).items() if k != "storage"}
    tags = {"config": cfg.name, "optuna.study": s.study_name, "optuna.space": s.space,
            "optuna.storage": redact(s.storage), "tuning.worker": f"{socket.gethostname()}:{os.getpid()}"}
    with tracking.start_run(cfg.tracking, f"tune/{s.study_name}",
                            params={**config_to_dict(run_cfg), "tuning": settings_params}, tags=tags) as parent:
        teacher, teacher_path, trained = ensure_teacher(run_cfg, data, s.work_dir, s.progress)
        parent.set_tags({"tuning.teacher": str(teacher_path)})
        log.info("teacher %s %s", "trained to" if trained else "loaded from", teacher_path)
        warm_start = ensure_warmup(run_cfg, data, teacher, s.work_dir, s.progress) if s.space == "alpha-beta" else None
        objective = Objective(s, run_cfg, data, teacher, scorer, warm_start)
        if not s.keep_checkpoints:
            remove_finished_trial_dirs(study, Path(s.work_dir) / s.study_name)
        if s.enqueue_config:
            study.enqueue_trial(config_params(s.space, cfg), skip_if_exists=True,
                                user_attrs={"note": f"enqueued: the values of {s.enqueue_config}, for comparison"})
        if s.trials:
            study.optimize(objective, n_trials=s.trials, timeout=s.timeout, catch=(DivergenceError,))
        if not s.keep_checkpoints:  # a killed worker's trial is marked failed during optimize (heartbeat)
            remove_finished_trial_dirs(study, Path(s.work_dir) / s.study_name)
        end_runs_of_killed_trials(study, cfg.tracking)
        outputs = write_study_outputs(study, s.reports_dir, s.figures_dir)
        parent.log_metrics({f"trials_{k.lower()}": v for k, v in outputs.counts.items()})
        if outputs.best_value is not None:
            parent.log_metrics({"best_value": outputs.best_value})
        for path in [outputs.best_params_path, *outputs.figures.values()]:
            if path is not None:
                parent.log_artifact(path, folder="tuning")
    return outputs


# ---------------------------------------------------------------- outputs


def trial_counts(study: optuna.Study) -> dict[str, int]:
    counts = {state.name: 0 for state in optuna.trial.TrialState}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] += 1
    return counts


def best_params(study: optuna.Study) -> tuple[dict, optuna.trial.FrozenTrial] | None:
    """The best trial's parameters as config keys in params.yaml's nested shape
    (``{"train": {"alpha": ...}, "eval": {"beta": ...}}``), for the config's own
    iteration count; ``None`` before any trial completed."""
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return None
    space = study.user_attrs.get("space")
    if space not in SPACES:
        raise UserError(f"study {study.study_name!r} was not made by dgnet tune (no known 'space' attribute)")
    best = study.best_trial
    changes = config_changes(space, best.params, int(study.user_attrs["base_iterations"]),
                             beta=best.user_attrs.get("beta") if space == "alpha-beta" else None)
    rounded = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in changes.items()}
    return nest(rounded), best


def write_best_params(study: optuna.Study, path: str | Path) -> tuple[dict, Path] | None:
    """Write the best parameters (atomically) with a header saying where they come from."""
    found = best_params(study)
    if found is None:
        return None
    params, best = found
    path = Path(path)
    a = study.user_attrs
    sets = " ".join(f"-S {k}={v}" for k, v in flatten(params).items())
    header = [
        f"Best parameters of Optuna study {study.study_name!r} (space {a['space']}, config {a.get('config')}):",
        f"trial {best.number}, validation mAP of f_prim+f_fine {best.value:.4f} on {a.get('val_ids')} "
        f"held-out training ids after {a.get('iterations')} iterations.",
        *([f"warm_iter and ramp_iters are for train.iterations = {a.get('base_iterations')} "
           "(the same fractions of the run as the trials had)."] if a["space"] == "schedule" else []),
        "Merge into params.yaml:",
        f"  dgnet tune apply {path}",
        f"  or: dvc exp run {sets}",
    ]
    text = "".join(f"# {line}\n" for line in header) + yaml.safe_dump(params, sort_keys=False)
    from dgnet import io  # (imports torch: kept out of this module's import)

    io.write_text(path, text)
    return params, path


def write_trials_csv(study: optuna.Study, path: str | Path) -> Path:
    """Every trial as one row: number, state, validation mAP, its parameters, the value it
    reported at each validation step (``val_mAP_at_STEP``) and its note (e.g. an enqueued trial)."""
    import pandas as pd

    from dgnet import io  # (imports torch: kept out of this module's import)

    steps = sorted({step for t in study.trials for step in t.intermediate_values})
    rows = [{"trial": t.number, "state": t.state.name, "val_mAP": t.value,
             **{k: round(v, 4) for k, v in t.params.items()},
             **{f"val_mAP_at_{step}": t.intermediate_values.get(step) for step in steps},
             "note": t.user_attrs.get("note", "")} for t in study.trials]
    io.write_text(path, pd.DataFrame(rows).to_csv(index=False, float_format="%.4f"))
    return Path(path)


def write_study_outputs(study: optuna.Study, reports_dir: str | Path, figures_dir: str | Path) -> StudyOutputs:
    """The best-params YAML, the trials table and the figures of a study, from its storage alone."""
    from dgnet.reports.tuning_figures import tuning_figures

    out = StudyOutputs(study.study_name, trial_counts(study))
    out.trials_path = write_trials_csv(study, Path(reports_dir) / f"{study.study_name}_trials.csv")
    written = write_best_params(study, Path(reports_dir) / f"{study.study_name}_best_params.yaml")
    if written is None:
        out.notes.append("no completed trial yet: no best parameters")
    else:
        out.best_params, out.best_params_path = written
        out.best_value = float(study.best_value)
    space = study.user_attrs.get("space")
    slices = ["alpha"] if space == "alpha-beta" else list(SCHEDULE_RANGES)
    out.figures, notes = tuning_figures(study, Path(figures_dir) / f"tuning_{study.study_name}", slices,
                                        beta_curves=space == "alpha-beta")
    out.notes.extend(notes)
    return out


def load_study(name: str, storage: str) -> optuna.Study:
    """An existing study, read-only use (no sampler needed)."""
    import sqlalchemy.exc

    try:
        return optuna.load_study(study_name=name, storage=make_storage(storage, heartbeat=False))
    except sqlalchemy.exc.OperationalError as err:  # (SQLite; make_storage words the others)
        raise unreachable(storage, err) from None
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(make_storage(storage, heartbeat=False))]
        raise UserError(f"no study {name!r} in {redact(storage)}; found: {', '.join(names) or 'none'}") from None


# ---------------------------------------------------------------- merging into params.yaml


def _yaml_scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).splitlines()[0]


def _edit_scalars(text: str, changes: Mapping[str, Any]) -> str | None:
    """Replace ``section: / key: value`` lines in block-style YAML, keeping comments;
    ``None`` when a key is not found that way (flow style, deeper nesting)."""
    lines = text.splitlines(keepends=True)
    for dotted, value in changes.items():
        parts = dotted.split(".")
        if len(parts) != 2:
            return None
        section, key = parts
        start = next((i for i, line in enumerate(lines) if re.match(rf"{re.escape(section)}:\s*(#.*)?$", line)), None)
        if start is None:
            return None
        done, indent = False, None
        for i in range(start + 1, len(lines)):
            line = lines[i]
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if not line.startswith((" ", "\t")):
                break  # the next top-level section
            if indent is None:  # the section's own keys, not those of a sub-mapping
                indent = line[: len(line) - len(line.lstrip())]
            m = re.match(rf"({re.escape(indent)}{re.escape(key)}:\s*)([^#\n]*?)(\s*#.*)?(\n?)$", line)
            if m:
                new, comment = _yaml_scalar(value), m.group(3) or ""
                if comment:  # keep the comment's column where there is room
                    pad = len(comment) - len(comment.lstrip()) + len(m.group(2)) - len(new)
                    comment = " " * max(1, pad) + comment.lstrip()
                lines[i] = f"{m.group(1)}{new}{comment}{m.group(4)}"
                done = True
                break
        if not done:
            return None
    return "".join(lines)


def apply_best_params(best_path: str | Path, params_path: str | Path = "params.yaml",
                      write: bool = True) -> tuple[dict[str, Any], bool]:
    """Merge a best-params file into a params file, validated, written atomically.

    Returns the dotted changes and whether the params file's comments were kept
    (block-style files are edited line by line; others are rewritten).
    """
    best_path, params_path = Path(best_path), Path(params_path)
    for p in (best_path, params_path):
        if not p.is_file():
            raise UserError(f"{p}: file not found")
    best = yaml.safe_load(best_path.read_text()) or {}
    if not isinstance(best, dict):
        raise UserError(f"{best_path}: expected a mapping of params.yaml sections")
    text = params_path.read_text()
    merged = deep_merge(yaml.safe_load(text) or {}, best)
    config_from_dict(merged)  # a ConfigError names the offending key
    changes = flatten(best)
    edited = _edit_scalars(text, changes)
    kept = edited is not None and yaml.safe_load(edited) == merged
    if not kept:
        edited = yaml.safe_dump(merged, sort_keys=False)
    if write:
        from dgnet import io

        io.write_text(params_path, edited)
    return changes, kept


__all__ = [
    "ALPHA_RANGE", "DEFAULT_BETAS", "DEFAULT_STORAGE", "Objective", "SCHEDULE_RANGES", "SPACES",
    "StudyOutputs", "StudySettings", "TrialSeededSampler", "ValidationReporter",
    "apply_best_params", "best_params", "config_changes", "config_fingerprint", "ensure_teacher",
    "config_params", "ensure_warmup", "load_study", "make_pruner", "make_storage", "nest", "open_study", "redact", "run_study",
    "unreachable", "end_runs_of_killed_trials",
    "suggest_params", "teacher_key", "trial_counts", "with_changes", "with_iterations",
    "warmup_key", "write_best_params", "write_study_outputs",
]
