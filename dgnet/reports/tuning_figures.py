"""Figures of an Optuna study: optimisation history, parameter importances, slices, beta curves.

    files, notes = tuning_figures(study, "reports/figures/tuning_alpha-beta-default", ["alpha"], beta_curves=True)

Optuna's matplotlib plots on the Agg backend, written atomically as PNG:
``<prefix>_history.png``, ``<prefix>_importances.png``, ``<prefix>_slice.png``
(``<prefix>_slice_alpha.png`` for a single parameter; then no importances,
which would trivially be 1) and, for the alpha-beta
space, ``<prefix>_beta.png``: the validation mAP of every completed trial
over the beta grid (beta is scored on each trained model, not sampled, so it
has no Optuna slice). A figure that the study cannot support yet (too few
completed trials, no varying parameter) is skipped with a note, never an error.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from dgnet.io import save_figure

TARGET = "validation mAP"


def _save(fig, path: Path) -> Path:
    return save_figure(fig, path, dpi=120, bbox_inches="tight")


def _optuna_plot(plot: Callable[[], Any], path: Path) -> Path:
    """Draw one ``optuna.visualization.matplotlib`` plot (Axes or an array of them) and save it."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna

    # Optuna's plots switch the global style to ggplot: keep that inside this figure
    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", "Attempting to set identical", UserWarning)  # one trial
        axes = plot()
        fig = np.ravel(np.asarray(axes, dtype=object))[0].figure
        return _save(fig, path)


def beta_figure(trials, path: Path, best_number: int | None = None) -> Path:
    """Validation mAP over beta for each trial with a ``mAP_by_beta`` user attribute,
    coloured by alpha; the best trial drawn thick."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    norm = Normalize(0.0, 1.0)
    cmap = matplotlib_cmap("viridis")
    for t in trials:
        curve = sorted((float(b), float(v)) for b, v in t.user_attrs["mAP_by_beta"].items())
        xs, ys = zip(*curve)
        alpha = t.params.get("alpha")
        best = t.number == best_number
        ax.plot(xs, [100 * y for y in ys], marker="o", ms=3, lw=2.5 if best else 1.0,
                color=cmap(norm(alpha)) if alpha is not None else "gray", zorder=3 if best else 2,
                label=f"trial {t.number} (best)" if best else None)
    ax.set_xlabel("beta (test-time weight of f_fine)")
    ax.set_ylabel("validation mAP (%)")
    ax.set_title("Validation mAP over beta, one line per trained model")
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="alpha")
    if best_number is not None:
        ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def matplotlib_cmap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


def tuning_figures(study, prefix: str | Path, slice_params: Sequence[str],
                   beta_curves: bool = False) -> tuple[dict[str, Path], list[str]]:
    """Write the study's figures as ``<prefix>_<kind>.png``; return ``({kind: path}, notes)``."""
    import optuna
    from optuna.visualization import matplotlib as ovm

    prefix = Path(prefix)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    files: dict[str, Path] = {}
    notes: list[str] = []

    def path(kind: str) -> Path:
        return prefix.with_name(f"{prefix.name}_{kind}.png")

    if not complete:
        notes.append("no completed trial: no figures yet")
        return files, notes
    files["history"] = _optuna_plot(
        lambda: ovm.plot_optimization_history(study, target_name=TARGET), path("history"))

    varying = [p for p in slice_params if len({t.params.get(p) for t in complete if p in t.params}) > 1]
    if len(slice_params) == 1:
        notes.append(f"parameter importances skipped: {slice_params[0]} is the only sampled parameter")
    elif len(complete) < 2 or not varying:
        notes.append("parameter importances skipped: they need at least 2 completed trials with "
                     f"varying parameters ({len(complete)} completed, {len(varying)} varying)")
    else:
        try:
            files["importances"] = _optuna_plot(
                lambda: ovm.plot_param_importances(study, params=varying, target_name=TARGET),
                path("importances"))
        except (ValueError, RuntimeError, ZeroDivisionError) as err:
            notes.append(f"parameter importances skipped: {err}")

    present = [p for p in slice_params if any(p in t.params for t in complete)]
    if present:
        kind = f"slice_{present[0]}" if len(present) == 1 else "slice"
        files[kind] = _optuna_plot(lambda: ovm.plot_slice(study, params=present, target_name=TARGET),
                                    path(kind))

    if beta_curves:
        with_curves = [t for t in complete if t.user_attrs.get("mAP_by_beta")]
        if with_curves:
            best = max(with_curves, key=lambda t: t.value).number
            files["beta"] = beta_figure(with_curves, path("beta"), best)
        else:
            notes.append("beta curves skipped: no trial recorded mAP over the beta grid")
    return files, notes


__all__ = ["beta_figure", "tuning_figures"]
