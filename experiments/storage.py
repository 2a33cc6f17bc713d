"""Where a study lives: the per-trial seeded sampler, the pruner, the storage URL, opening and loading a study."""

from __future__ import annotations

import re
import time
import warnings
from typing import Any, Mapping

import numpy as np
import optuna

from dgnet.errors import UserError

DEFAULT_STORAGE = "sqlite:///optuna.db"


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


def check_study_attrs(study: optuna.Study, attrs: Mapping[str, Any]) -> None:
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
