"""What a study leaves: the best parameters in params.yaml's shape, the trials table and the figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import optuna
import yaml

from dgnet.config import flatten, nest
from dgnet.errors import UserError

from experiments.spaces import SCHEDULE_RANGES, SPACES, config_changes


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
