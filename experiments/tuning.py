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
import logging
import os
import shutil
import socket
from pathlib import Path

import optuna

from dgnet import tracking
from dgnet.config import Config, config_to_dict, with_iterations
from dgnet.errors import UserError
from dgnet.eval.validation import ValidationScorer

from experiments.caches import ensure_teacher, ensure_warmup
from experiments.objective import Objective, StudySettings
from experiments.outputs import StudyOutputs, write_study_outputs
from experiments.spaces import config_fingerprint, config_params
from experiments.storage import check_study_attrs, make_pruner, open_study, redact

log = logging.getLogger(__name__)


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
    check_study_attrs(study, {
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
