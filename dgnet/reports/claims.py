"""The claims scorecard: each claim of the paper, our paired difference over seeds, and a verdict.

    seeds = load_seed_metrics(main_seed=0, main_dir="reports/metrics", replicate_dirs={1: ..., 2: ...})
    card = scorecard(seeds, config="default", baseline_epochs=40, plateau_epochs=40)   # {"config", "seeds", "claims": [...]}
    write_scorecard(card, "reports/claims.md", "reports/metrics/claims.json")

Every claim is measured as a *paired difference* per seed (ours minus the
thing it should beat), so that a positive value means "as the paper says".
The verdict rule (:func:`verdict`) is stated on the page it writes. A claim
also names its *preconditions* (:func:`preconditions`): what must hold for it
to test the paper's mechanism at all; where one does not, the verdict is "not
testable here" (docs/claims_diagnosis.md, section 18).
"""

from __future__ import annotations

import json
import math
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from scipy import stats as scipy_stats

from dgnet import io, switches
from dgnet.reports.seeds import lookup, mean_std

CLOTHING = ("top_color", "bottom_color")
CAMERA = ("camid",)
METRIC_FILES = ("table3", "ablations", "offline", "beta_sweep", "generation", "alpha_sweep", "transfer",
                "train_dgnet_noid")


def load_seed_metrics(main_seed: int, main_dir: str | Path, replicate_dirs: dict[int, str | Path]) -> dict[int, dict]:
    """``{seed: {"table3": {...}, "ablations": {...}, ...}}``; a file that is missing is left out."""
    out: dict[int, dict] = {}
    for seed, folder in {main_seed: main_dir, **replicate_dirs}.items():
        found = {}
        for name in METRIC_FILES:
            path = Path(folder) / f"{name}.json"
            if path.is_file():
                found[name] = json.loads(path.read_text(encoding="utf-8"))
        out[seed] = found
    return out


# ---------------------------------------------------------------- per-seed measurements (None: not measured)


def _map(entry: dict) -> float:
    return 100 * float(entry["mAP"])


def _rank1(entry: dict) -> float:
    return 100 * float(entry["rank1"])


def _table3_difference(ours: str, other: str, score: Callable[[dict], float] = _map):
    """A measurement: ``score(table3[ours]) - score(table3[other])`` for one seed's metrics."""
    def measure(m: dict) -> float | None:
        t3 = m.get("table3")
        return None if not t3 else score(t3[ours]) - score(t3[other])
    return measure


dgnet_vs_baseline = _table3_difference("f_prim+f_fine", "baseline")
prim_vs_baseline = _table3_difference("f_prim", "baseline")
combined_vs_prim = _table3_difference("f_prim+f_fine", "f_prim")


def e2e_vs_offline(m: dict) -> float | None:
    t3, off = m.get("table3"), m.get("offline")
    return None if not (t3 and off) else _map(t3["f_prim+f_fine"]) - _map(off["f_prim+f_fine"])


def alpha_peak(m: dict) -> float | None:
    """mAP at the main alpha (0.2) minus the better of the swept alphas (0 and 0.5 on the default)."""
    t3, sweep = m.get("table3"), lookup(m, "alpha_sweep", "points")
    if not (t3 and sweep):
        return None
    return _map(t3["f_prim+f_fine"]) - max(_map(p) for p in sweep)


def beta_peak(m: dict) -> float | None:
    """The best mAP at a beta in (0, 1] minus mAP at the largest swept beta (above 1): positive when the
    test-time weight of f_fine peaks at a moderate value, as in the paper's choice of 0.5. (beta 0 against
    the main beta is ``combined_vs_prim`` already.)"""
    points = lookup(m, "beta_sweep", "points")
    if not points:
        return None
    at = {float(p["beta"]): _map(p) for p in points}
    moderate = [v for b, v in at.items() if 0.0 < b <= 1.0]
    largest = max(at)
    if not moderate or largest <= 1.0:
        return None
    return max(moderate) - at[largest]


def feed_realism(m: dict) -> float | None:
    """Fréchet distance (teacher features) of w/o feed minus that of DG-Net: positive = feeding more realistic."""
    rows = lookup(m, "generation", "table2")
    if not rows or "DG-Net w/o feed" not in rows:
        return None
    a, b = rows["DG-Net"].get("frechet_teacher"), rows["DG-Net w/o feed"].get("frechet_teacher")
    return None if a is None or b is None else b - a


def _follow(m: dict, model: str, attributes, which: str) -> float | None:
    scores = lookup(m, "generation", "disentanglement", "models", model, "scores")
    if not scores:
        return None
    values = [s[which] for s in scores if s["attribute"] in attributes and s.get(which) is not None]
    return 100 * statistics.mean(values) if values else None


def id_clothing(m: dict) -> float | None:
    """Clothing colour following the appearance source: DG-Net minus w/o id (percentage points)."""
    full = _follow(m, "DG-Net", CLOTHING, "follows appearance source")
    no_id = _follow(m, "DG-Net w/o id", CLOTHING, "follows appearance source")
    return None if full is None or no_id is None else full - no_id


def disentangle(m: dict) -> float | None:
    """The smaller of two margins (pp): clothing colour follows the appearance source more than the
    structure source, and the camera follows the structure source more than the appearance source."""
    clothing = [_follow(m, "DG-Net", CLOTHING, w) for w in ("follows appearance source", "follows structure source")]
    camera = [_follow(m, "DG-Net", CAMERA, w) for w in ("follows structure source", "follows appearance source")]
    if None in clothing or None in camera:
        return None
    return min(clothing[0] - clothing[1], camera[0] - camera[1])


def transfer(m: dict) -> float | None:
    """Cross-domain mAP (train A, test B) of DG-Net minus the Baseline's."""
    rows = lookup(m, "transfer", "rows")
    if not rows:
        return None
    cross = {r["method"]: _map(r) for r in rows if r["train"] != r["test"] and r["train"] == "A"}
    if "DG-Net" not in cross or "Baseline (teacher)" not in cross:
        return None
    return cross["DG-Net"] - cross["Baseline (teacher)"]


# ---------------------------------------------------------------- preconditions (docs/claims_diagnosis.md 18)

GENERATOR = "generator_follows_codes"
PLATEAU = "baseline_at_plateau"
FOLLOW_BAR = 60.0  # percent: "the generator follows its codes" (docs/synthetic_world.md, diagnosis section 15)
PLATEAU_EPOCHS = {"synthetic": 40}  # data.layout -> the Baseline's plateau on validation identities (diagnosis 15)
BAR_RATES = (("bottom_color", ("bottom_color",), "follows appearance source"),
             ("camera", CAMERA, "follows structure source"))


def generator_follows_codes(seed_metrics: dict[int, dict]) -> dict:
    """The full model's probe, mean over seeds: bottom colour follows the appearance source and camera the
    structure source, each at least :data:`FOLLOW_BAR` percent."""
    per_seed = {name: {seed: v for seed, m in seed_metrics.items()
                       if (v := _follow(m, "DG-Net", attrs, which)) is not None}
                for name, attrs, which in BAR_RATES}
    means = {name: statistics.mean(v.values()) if v else None for name, v in per_seed.items()}
    holds = None if None in means.values() else all(v >= FOLLOW_BAR for v in means.values())
    shown = ", ".join(f"{n.replace('_color', ' colour')} {'not measured' if v is None else f'{v:.1f}%'}"
                      for n, v in means.items())
    return {"id": GENERATOR, "holds": holds,
            "requirement": f"the generator follows its codes: bottom colour and camera each >= {FOLLOW_BAR:g}% "
                           "(probe, full model's cross-identity generations, mean over seeds)",
            "measured": {"percent": means, "per_seed": per_seed}, "summary": shown}


def baseline_at_plateau(baseline_epochs: int | None, plateau_epochs: int | None) -> dict:
    """The Baseline trains at least as long as the plateau on record for its data set."""
    measured = baseline_epochs is not None and plateau_epochs is not None
    return {"id": PLATEAU, "holds": baseline_epochs >= plateau_epochs if measured else None,
            "requirement": "the Baseline at its plateau: teacher.epochs >= the plateau on record "
                           f"({'none on record' if plateau_epochs is None else f'{plateau_epochs} epochs'})",
            "measured": {"epochs": baseline_epochs, "plateau_epochs": plateau_epochs},
            "summary": f"{'not measured' if baseline_epochs is None else baseline_epochs} epochs"
                       + ("" if plateau_epochs is None else f" (plateau {plateau_epochs})")}


def preconditions(seed_metrics: dict[int, dict], baseline_epochs: int | None = None,
                  plateau_epochs: int | None = None) -> dict[str, dict]:
    """Each precondition with its measured values and whether it holds (``None``: not measured, so it does
    not hold either)."""
    return {GENERATOR: generator_follows_codes(seed_metrics),
            PLATEAU: baseline_at_plateau(baseline_epochs, plateau_epochs)}


@dataclass(frozen=True)
class Claim:
    id: str
    claim: str
    source: str
    paper: str
    metric: str
    measure: Callable[[dict], float | None]
    needs: str | None = None  # the metrics file of a switchable stage: its "not run" marker makes the verdict "not run"
    requires: tuple[str, ...] = (GENERATOR,)  # preconditions (docs/claims_diagnosis.md 18)


CLAIMS = (
    Claim("dgnet_vs_baseline", "f_prim + f_fine beats the Baseline (mAP)", "Table 3",
          "+12.4 mAP on average over Market-1501, DukeMTMC-reID, MSMT17 (86.0 vs 74.5 on Market)",
          "mAP(f_prim + f_fine) - mAP(Baseline), pp", dgnet_vs_baseline, requires=(GENERATOR, PLATEAU)),
    Claim("prim_vs_baseline", "f_prim beats the Baseline", "Table 3", "84.4 vs 74.5 mAP on Market",
          "mAP(f_prim) - mAP(Baseline), pp", prim_vs_baseline, requires=(GENERATOR, PLATEAU)),
    Claim("combined_vs_prim", "f_prim + f_fine beats f_prim", "Table 3", "86.0 vs 84.4 mAP on Market",
          "mAP(f_prim + f_fine) - mAP(f_prim), pp", combined_vs_prim),
    Claim("e2e_vs_offline", "end-to-end training beats offline generation", "Section 4.2",
          "86.0 vs 84.4 mAP on Market", "mAP(DG-Net) - mAP(offline), pp", e2e_vs_offline),
    Claim("alpha_peak", "a small alpha (0.2) beats alpha = 0 and a large alpha", "Figure 8 (left)",
          "mAP peaks at alpha 0.2 on Market", "mAP(alpha 0.2) - max(mAP(alpha 0), mAP(alpha 0.5)), pp", alpha_peak,
          needs="alpha_sweep"),
    Claim("beta_peak", "a moderate beta (in (0, 1]) beats a large one at test time", "Figure 8 (right)",
          "beta = 0.5 chosen on the validation curve (Figure 8, right)",
          "max over beta in (0, 1] of mAP - mAP(largest swept beta, 2.0 on the default), pp", beta_peak),
    Claim("feed_realism", "online feeding makes generations more realistic than w/o feed", "Figure 4, Table 2",
          "visibly sharper images with feeding (Figure 4)",
          "Frechet distance (teacher features) w/o feed - with feed", feed_realism),
    Claim("id_clothing", "without identity supervision the clothing colour is wrong more often", "Figure 4",
          "w/o id: clothing colours change (Figure 4)",
          "clothing colour follows the appearance source: DG-Net - w/o id, pp (ground-truth probe)", id_clothing,
          needs="train_dgnet_noid", requires=()),  # it measures the code following itself
    Claim("disentangle", "clothing follows the appearance code, camera/background the structure code",
          "Table 1, Figures 1 and 6", "qualitative (Figures 1, 6)",
          "min(clothing: follows appearance - follows structure; camera: follows structure - follows appearance), pp",
          disentangle, requires=()),  # it measures the code following itself
    Claim("transfer", "DG-Net transfers across domains better than the Baseline",
          "Table 9 (our synthetic A -> B analogue)", "DG-Net's direct transfer beats prior work (Table 9)",
          "mAP on domain B after training on A: DG-Net - Baseline, pp", transfer, needs="transfer",
          requires=(GENERATOR, PLATEAU)),
)

ALPHA = 0.05  # one-sided significance level
NOT_RUN = "not run"  # the verdict of a claim whose stage the configuration switched off
NOT_TESTABLE = "not testable here"  # the verdict of a claim whose precondition does not hold
MIN_SEEDS = 3
RULE = ("A claim is measured as a paired difference per seed (ours minus what it should beat; positive = as the "
        "paper says), and each measurement is one claim. With at least three seeds, a one-sided one-sample "
        "t-test of the per-seed differences against zero, at 95%: **reproduced** when p < 0.05 for "
        "\"difference > 0\", **not reproduced** when p < 0.05 for \"difference < 0\", **inconclusive** "
        "otherwise (the difference is inside the seed noise). With fewer seeds a claim is \"inconclusive "
        "(n seeds)\". `p` in the table is the one-sided p-value for \"difference > 0\"; `t` = mean / "
        "(std / sqrt(n)). Before the test, each claim's preconditions (what must hold for it to test the "
        "paper's mechanism: the generator follows its codes, the Baseline at its plateau) are measured: where "
        "one does not hold, or could not be measured, the claim is **not testable here**, whatever its t-test "
        "says (its numbers are still shown); a stage switched off by the configuration reads **not run**.")


def t_test(values: list[float]) -> tuple[float | None, float | None]:
    """``(t, p)`` of the one-sided one-sample t-test "mean > 0"; ``(None, None)`` below two values."""
    if len(values) < 2:
        return None, None
    mean, std = statistics.mean(values), statistics.stdev(values)
    if std == 0:  # no spread: the sign alone decides
        return (math.copysign(math.inf, mean), 0.0 if mean > 0 else 1.0) if mean else (0.0, 0.5)
    t = mean / (std / math.sqrt(len(values)))
    return t, float(scipy_stats.t.sf(t, df=len(values) - 1))


def verdict(values: list[float], preconditions_hold: bool = True) -> str:
    """The t-test rule; ``"not testable here"`` when a precondition of the claim does not hold."""
    if not preconditions_hold:
        return NOT_TESTABLE
    if len(values) < MIN_SEEDS:
        return f"inconclusive ({len(values)} seed{'' if len(values) == 1 else 's'})"
    _, p = t_test(values)
    if p < ALPHA:
        return "reproduced"
    if 1 - p < ALPHA:
        return "not reproduced"
    return "inconclusive"


def verdict_counts(card: dict) -> dict[str, int]:
    """How many claims got each verdict ("inconclusive (n seeds)" counts as inconclusive; "not testable here":
    a precondition does not hold; "not run": switched off by the configuration)."""
    kinds = ("reproduced", "not reproduced", "inconclusive", NOT_TESTABLE, NOT_RUN)
    return {k: sum(r["verdict"].split(" (")[0] == k for r in card["claims"]) for k in kinds}


def machine() -> dict:
    """The CPU, threads and library versions of this process: floating-point order, hence the last digits of
    every training, depends on them."""
    import platform
    import re

    import torch

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    onednn = re.search(r"(?:oneDNN|MKL-DNN) v([\d.]+)", torch.__config__.show())
    return {"cpu": model, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "onednn": onednn.group(1) if onednn else None,
            "python": platform.python_version()}


def scorecard(seed_metrics: dict[int, dict], config: str, machine: dict | None = None,
              baseline_epochs: int | None = None, plateau_epochs: int | None = None) -> dict:
    """The ``claims.json`` document for the measurements of each seed (``machine``: :func:`machine`'s record
    of where they were made; ``baseline_epochs``: the run's ``teacher.epochs``, ``plateau_epochs``: the
    plateau on record for its data set, :data:`PLATEAU_EPOCHS`)."""
    checks = preconditions(seed_metrics, baseline_epochs, plateau_epochs)
    rows = []
    for c in CLAIMS:
        per_seed = {seed: c.measure(m) for seed, m in seed_metrics.items()}
        values = [v for v in per_seed.values() if v is not None]
        t, p = t_test(values)
        ours = {"mean": statistics.mean(values) if values else None,
                "std": statistics.stdev(values) if len(values) > 1 else None, "t": t, "p": p,
                "n_seeds": len(values), "values": values,
                "seeds": [s for s, v in per_seed.items() if v is not None]}
        off = [r for m in seed_metrics.values() if c.needs and (r := switches.not_run(m.get(c.needs)))]
        needed = [checks[r] for r in c.requires]
        row = {"id": c.id, "claim": c.claim, "source": c.source, "paper": c.paper, "metric": c.metric,
               "ours": ours, "preconditions": needed,
               "verdict": verdict(values, all(n["holds"] for n in needed))}
        if off and not values:  # switched off by the configuration (sweep.alphas: [], sweep.without_id: false, ...)
            row.update(verdict=NOT_RUN, reason=off[0])
        rows.append(row)
    measured = sorted(seed for seed, m in seed_metrics.items() if m)  # a seed whose run is absent is not one
    return {"config": config, "seeds": measured, "rule": RULE, "machine": machine or {}, "claims": rows}


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.2f}"


def _status(holds: bool | None) -> str:
    return {True: "holds", False: "fails", None: "not measured"}[holds]


def _preconditions_cell(needed: list[dict]) -> str:
    return "; ".join(f"`{p['id']}` {p['summary']}: {_status(p['holds'])}" for p in needed) or "none"


def _machine_sentence(m: dict) -> str:
    if not m:
        return "Machine: not recorded."
    if "training_threads" in m:
        parallel = m["parallel_trainings"]
        if m["training_threads"]:
            threads = f"trainings on {m['training_threads']} thread(s) each, up to {parallel} side by side"
        else:  # runtime.threads 0: the cores shared out among side-by-side trainings (train.parallel)
            share = max(1, (m["cpu_count"] or 1) // max(1, parallel))
            threads = (f"a training alone on torch's default threads, {share} thread(s) each when {parallel} "
                       "run side by side")
    else:
        threads = f"{m['torch_threads']} torch threads"
    return (f"Machine of the report stage (in one `dvc repro`, the machine of every training): {m['cpu']} "
            f"({m['cpu_count']} cores; {threads}), torch {m['torch']}, oneDNN {m['onednn'] or 'n/a'}. Runs of the same commit and seeds on "
            "another CPU, thread count or library version differ in floating-point order, which changes every "
            "training's last digits and, through them, each seed's numbers: compare verdicts across machines, "
            "not digits ([docs/claims_diagnosis.md](../docs/claims_diagnosis.md) records how far they moved).")


def markdown(card: dict) -> str:
    counts = verdict_counts(card)
    lines = [
        "# Claims scorecard: does this reproduction reproduce the paper?",
        "",
        f"Configuration `{card['config']}`, seeds {', '.join(map(str, card['seeds']))}. Every number under "
        "\"ours\" was measured here (synthetic data unless the configuration says otherwise); the \"paper\" "
        "column is quoted from the paper (real data sets), for orientation only: the two are not comparable in "
        "size, only in sign.",
        "",
        f"**{counts['reproduced']} reproduced, {counts['not reproduced']} not reproduced, "
        f"{counts['inconclusive']} inconclusive"
        + (f", {counts[NOT_TESTABLE]} not testable here (a precondition does not hold)" if counts[NOT_TESTABLE]
           else "")
        + (f", {counts[NOT_RUN]} not run (switched off by the configuration)" if counts[NOT_RUN] else "") + ".**",
        "",
        "Rule: " + card["rule"],
        "",
        _machine_sentence(card.get("machine") or {}),
        "",
        "| id | claim | source | paper (quoted) | ours: mean ± std (n) | t | p | per seed | preconditions (measured) "
        "| verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in card["claims"]:
        o = r["ours"]
        spread = "n/a" if o["std"] is None else f"{o['std']:.2f}"
        t = "n/a" if o.get("t") is None else f"{o['t']:+.2f}"
        p = "n/a" if o.get("p") is None else f"{o['p']:.3f}"
        per_seed = (", ".join(f"{s}: {v:+.2f}" for s, v in zip(o["seeds"], o["values"]))
                    or r.get("reason", "not measured"))
        lines.append(f"| `{r['id']}` | {r['claim']} | {r['source']} | {r['paper']} | "
                     f"{_num(o['mean'])} ± {spread} ({o['n_seeds']}) | {t} | {p} | {per_seed} | "
                     f"{_preconditions_cell(r.get('preconditions', []))} | **{r['verdict']}** |")
    lines += ["", "Metrics (each a paired difference, positive = as the paper says):", ""]
    lines += [f"- `{r['id']}`: {r['metric']}" for r in card["claims"]]
    shown = {p["id"]: p for r in card["claims"] for p in r.get("preconditions", [])}
    if shown:
        lines += ["", "Preconditions (what must hold for a claim to test the paper's mechanism; "
                  "[docs/claims_diagnosis.md](../docs/claims_diagnosis.md), section 18):", ""]
        lines += [f"- `{p['id']}`: {p['requirement']}; measured: {p['summary']}: **{_status(p['holds'])}**"
                  for p in shown.values()]
    lines.append("")
    return "\n".join(lines)


SEED_ROWS = (  # (row, file, path inside it)
    ("Baseline (teacher)", "table3", ("baseline",)),
    ("f_prim", "table3", ("f_prim",)),
    ("f_fine", "table3", ("f_fine",)),
    ("f_prim + f_fine (DG-Net)", "table3", ("f_prim+f_fine",)),
    ("DG-Net w/o feed", "ablations", ("w/o feed", "f_prim+f_fine")),
    ("DG-Net w/o id", "ablations", ("w/o id", "f_prim+f_fine")),
    ("Offline generation, trained separately", "offline", ("f_prim+f_fine",)),
)


def seed_table(seed_metrics: dict[int, dict]) -> list[dict]:
    """Rank@1 / mAP of the central models as mean ± std over seeds, with the per-seed values."""
    rows = []
    for name, file, path in SEED_ROWS:
        entries = [lookup(m, file, *path) for m in seed_metrics.values()]
        entries = [e for e in entries if e]
        r1, ap = [_rank1(e) for e in entries], [_map(e) for e in entries]
        rows.append({"model": name, "Rank@1": mean_std(r1), "mAP": mean_std(ap), "n_seeds": len(entries),
                     "mAP per seed": ", ".join(f"{v:.1f}" for v in ap)})
    return rows


def follow_rates(seed_metrics: dict[int, dict]) -> dict[str, str]:
    """The full model's probe: how often clothing colour follows the appearance source and the camera
    the structure source (percent, mean ± std over seeds)."""
    out = {}
    for label, attrs, which in (("top colour follows the appearance source", ("top_color",), "follows appearance source"),
                                ("bottom colour follows the appearance source", ("bottom_color",),
                                 "follows appearance source"),
                                ("camera follows the structure source", CAMERA, "follows structure source")):
        values = [_follow(m, "DG-Net", attrs, which) for m in seed_metrics.values()]
        out[label] = mean_std([v for v in values if v is not None])
    return out


def write_scorecard(card: dict, md_path: str | Path, json_path: str | Path,
                    seed_metrics: dict[int, dict] | None = None) -> None:
    """Write ``claims.json`` and ``claims.md`` (with the seed table and probe rates when given)."""
    text = markdown(card)
    if seed_metrics is not None:
        rows = seed_table(seed_metrics)
        card = {**card, "seed_table": rows, "follow_rates": follow_rates(seed_metrics)}
        text += "\n## The central models over seeds (measured here)\n\n"
        text += "| model | Rank@1 | mAP | seeds | mAP per seed |\n|---|---|---|---|---|\n"
        text += "".join(f"| {r['model']} | {r['Rank@1']} | {r['mAP']} | {r['n_seeds']} | {r['mAP per seed']} |\n"
                        for r in rows)
        text += "\n## Ground-truth probe of the full model (percent of cross-identity generations)\n\n"
        text += "".join(f"- {k}: {v}\n" for k, v in card["follow_rates"].items())
    io.write_json(json_path, card)
    io.write_text(md_path, text)


__all__ = ["CLAIMS", "PLATEAU_EPOCHS", "RULE", "follow_rates", "load_seed_metrics", "machine", "markdown",
           "preconditions", "scorecard", "seed_table", "t_test", "verdict", "verdict_counts", "write_scorecard"]
