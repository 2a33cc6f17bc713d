"""``dgnet rehearse``: the configured DVC graph, every stage in order, on a small sample, before the real run.

    dgnet rehearse [--params params.yaml] [--ids 6] [--iterations 4] [--out rehearsal.json] [--set KEY=VALUE]

First the preflight checks (dgnet/preflight.py: the device, the data roots,
the ImageNet file) stop a configuration that cannot run here, one line each.
Then it copies the pipeline into a scratch folder (the project's outputs are never
touched), writes a few identities of the configured data set (and of the
second one, for direct transfer) there in the same layout, and runs each stage's command of ``dvc.yaml`` in dependency order at
the configuration's network sizes and input size, with a handful of
iterations per DG-Net training and one epoch per teacher. It then prints, per
stage, whether it ran, its seconds, peak memory and seconds per iteration,
and an estimate of the real run's time from the configured iteration counts.
A failing stage is reported with its one-line error; the stages that need its
outputs are listed as not reached; the others still run. A stage the
configuration switches off (its outputs are markers: dgnet/switches.py) is
"skipped (switched off)", with no estimate.

The estimate is rough by design: training seconds scale with iterations (DG-Net,
offline re-id) or with images x epochs (teachers, pre-training); every other
second of a stage scales with the number of test images (identities on the
synthetic set).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from graphlib import TopologicalSorter
from pathlib import Path

from dgnet import io, preflight, switches
from dgnet.config import Config, apply_overrides, config_to_dict, load_config, replace
from dgnet.data.layouts import ReidSplits, load_layout
from dgnet.entry import PEAK_GPU_ENV
from dgnet.errors import UserError
from dgnet.toolkit.checks import check_outputs
from dgnet.train.parallel import killed_message

FOLDER_LAYOUTS = ("market1501", "duke")  # the layouts a sample can be copied from (one folder per split)
SPLIT_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
MIN_IDS = 6  # the generation figures draw six distinct training and six test identities
EXTRA_GALLERY = 3  # distractor (0) and junk (-1) images kept in the sample's gallery, each


@dataclass
class Training:
    """One training a stage ran: what it trained in the rehearsal and what the real run will train."""

    name: str
    seconds: float
    seconds_per_unit: float  # per iteration (DG-Net) or per image-epoch (teacher, pre-training, offline)
    unit: str
    real_units: float | None

    @property
    def estimate(self) -> float | None:
        return None if self.real_units is None else self.seconds_per_unit * self.real_units


@dataclass
class StageResult:
    name: str
    status: str  # ok | failed | not reached | skipped (switched off: its outputs are markers)
    seconds: float | None = None
    peak_rss_mb: float | None = None
    peak_gpu_mb: float | None = None
    error: str | None = None  # failed: the one-line error; not reached: what it needs
    switched_off: str | None = None  # skipped: why (its marker's reason)
    trainings: list[Training] = field(default_factory=list)
    estimate_seconds: float | None = None


# ---------------------------------------------------------------- the sample


def _pick(splits: ReidSplits, ids: int) -> dict[str, list]:
    """``ids`` training identities and ``ids`` test identities (with their query and gallery images), plus a
    few distractor and junk gallery images."""
    train_ids = sorted({s.pid for s in splits.train})[:ids]
    query_ids = sorted({s.pid for s in splits.query} & {s.pid for s in splits.gallery if s.pid > 0})[:ids]
    extra = [s for s in splits.gallery if s.pid == 0][:EXTRA_GALLERY] + \
        [s for s in splits.gallery if s.pid == -1][:EXTRA_GALLERY]
    return {"train": [s for s in splits.train if s.pid in train_ids],
            "query": [s for s in splits.query if s.pid in query_ids],
            "gallery": [s for s in splits.gallery if s.pid in query_ids] + extra}


def sample_dataset(layout: str, root: str | Path, dest: Path, ids: int) -> dict[str, int]:
    """Copy a few identities of a folder-layout data set (Market-1501, DukeMTMC-reID) to ``dest``, same names."""
    if layout not in FOLDER_LAYOUTS:
        raise UserError(f"data.layout {layout}: the rehearsal samples {', '.join(FOLDER_LAYOUTS)} and the "
                        "synthetic set; rehearse with a Market-1501 or DukeMTMC-reID configuration instead")
    picked = _pick(load_layout(layout, root), ids)
    for split, samples in picked.items():
        folder = dest / SPLIT_FOLDERS[split]
        folder.mkdir(parents=True, exist_ok=True)
        for s in samples:
            shutil.copy(s.path, folder / Path(s.path).name)
    return {split: len(samples) for split, samples in picked.items()}


def _real_sizes(cfg: Config) -> tuple[int, int]:
    """(test images, training images) of the configured real data set; its layout's error when missing."""
    if cfg.data.layout == "synthetic":
        return 0, 0  # prepare writes it; the rehearsal scales by identities instead
    splits = load_layout(cfg.data.layout, cfg.data.root, cfg.data.cuhk03_subset)
    return len(splits.query) + len(splits.gallery), len(splits.train)


# ---------------------------------------------------------------- the rehearsal's configuration


def rehearsal_config(cfg: Config, sample_root: str, iterations: int, ids: int) -> Config:
    """The same networks and input size, on the sample, with a handful of iterations and one epoch."""
    warm = max(1, iterations // 2)
    changes = {
        "train.iterations": iterations, "train.warm_iter": warm, "train.ramp_iters": 1,
        "train.lr_steps": (iterations - 1,), "train.log_every": iterations, "train.sample_every": iterations,
        "train.checkpoint_every": iterations,
        "teacher.epochs": 1, "teacher.lr_step_epochs": (1,),
        "pretrain.epochs": 1, "pretrain.ids": max(2, ids), "pretrain.images_per_camera": 1,
        "data.val_ids": 1,
    }
    if cfg.data.layout == "synthetic":
        changes.update({"data.synth.train_ids": max(3, ids), "data.synth.test_ids": max(2, ids),
                        "data.synth.distractors": 2, "data.synth.junk": 2, "data.synth.images_per_camera": 1})
    else:
        changes["data.root"] = sample_root
    return replace(cfg, **changes)


# ---------------------------------------------------------------- the graph


def stage_graph(repo: Path) -> dict[str, dict]:
    """``{stage: {"cmd", "deps", "outs", "after"}}`` of ``repo/dvc.yaml`` as DVC resolves it (templates,
    ``foreach``), ``after`` being the stages whose outputs it reads."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc:
        stages = {s.name: {"cmd": s.cmd, "deps": [str(d.def_path) for d in s.deps],
                                 "outs": [str(o.def_path) for o in s.outs]} for s in dvc.index.stages}
    for stage in stages.values():
        stage["after"] = sorted(name for name, other in stages.items()
                                if any(_inside(dep, out) for dep in stage["deps"] for out in other["outs"]))
    return stages


def _inside(path: str, out: str) -> bool:
    return path == out or path.startswith(out.rstrip("/") + "/") or out.startswith(path.rstrip("/") + "/")


def run_order(stages: dict[str, dict]) -> list[str]:
    return list(TopologicalSorter({name: s["after"] for name, s in stages.items()}).static_order())


# ---------------------------------------------------------------- running one stage


def _one_line_error(log: str) -> str:
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("dgnet: error:")]
    return (errors or lines or ["exited without a message"])[-1]


def run_stage(cmd: str, cwd: Path, env: dict, log_path: Path) -> tuple[int, float, float, str]:
    """``(exit code, seconds, peak RSS MB, output)`` of one stage's command."""
    began = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(["bash", "-c", cmd], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - began
    return proc.returncode, seconds, usage.ru_maxrss / 1024, log_path.read_text(errors="replace")


SKIPPED = "skipped"


def json_files(root: Path) -> dict[Path, tuple[int, int, int]]:
    """``{path: (mtime ns, inode, size)}`` of every JSON file under ``root``: taken before a stage, so that
    :func:`written_since` finds exactly the files the stage wrote (a time window would also count the files
    the previous stage wrote within it; outputs are renamed into place, so a rewrite is a new inode too)."""
    out = {}
    for path in root.rglob("*.json"):
        st = path.stat()
        out[path] = (st.st_mtime_ns, st.st_ino, st.st_size)
    return out


def written_since(root: Path, before: dict[Path, tuple[int, int, int]]) -> list[Path]:
    """The JSON files under ``root`` that are new or rewritten since the snapshot ``before``."""
    return sorted(path for path, mtime in json_files(root).items() if before.get(path) != mtime)


def _training_name(path: Path) -> str | None:
    """The training a metrics file records: ``train_NAME.json``, ``pretrain.json`` or an alpha sweep's
    ``models/alpha_sweep/NAME/train.json``; None for any other file."""
    if path.name.startswith("train_"):
        return path.stem.removeprefix("train_")
    if path.name == "pretrain.json":
        return "pretrain"
    if path.name == "train.json" and path.parent.parent.name == "alpha_sweep":
        return path.parent.name
    return None


TRACKING_FOLDERS = ("mlruns", "mlartifacts")  # MLflow's own files, not a stage's outputs


def switched_off(root: Path, written: list[Path]) -> str | None:
    """The reason of a stage the configuration switched off: every metrics file it wrote under ``root`` is a marker
    (dgnet/switches.py); None when it wrote none, or anything else too (e.g. ``replicate@SEED`` measures
    its models and marks Table 9 not run)."""
    reasons = []
    for path in written:
        if any(part.startswith(".") or part in TRACKING_FOLDERS for part in path.relative_to(root).parts[:-1]):
            continue
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not switches.is_marker(doc):
            return None
        reasons.append(str(doc.get("reason") or "switched off"))
    return reasons[0] if reasons else None


def _trainings(written: list[Path], real: Config, rehearsal: Config, train_scale: float):
    """The trainings whose metrics files (``train_*.json``, ``pretrain.json``, an alpha sweep's
    ``train.json``) are among the files the stage wrote."""
    out = []
    for path in written:
        name = _training_name(path)
        if name is None:
            continue
        doc = json.loads(path.read_text())
        if doc.get("trained") is False:  # a model the configuration does not need (pretrain, probe, dgnet_b)
            continue
        seconds = float(doc.get("train_seconds") or 0)
        if "iterations_trained" in doc:  # DG-Net: scale the iterations the same way the real run splits them
            trained = doc["iterations_trained"]
            if name.endswith("_warm"):
                real_units = real.train.warm_iter
            elif trained < doc["iterations"]:  # continued from the shared warm-up
                real_units = real.train.iterations - real.train.warm_iter
            else:
                real_units = real.train.iterations
            per_it = doc.get("step_seconds_median") or seconds / max(trained, 1)  # the update alone, steadier
            out.append(Training(name, seconds, per_it, "iteration", real_units))
        elif "generated_images" in doc:  # offline re-id: train.iterations iterations
            its = rehearsal.train.iterations
            out.append(Training(name, seconds, seconds / its, "iteration", real.train.iterations))
        elif "train_images" in doc:  # a teacher: epochs over the training images
            images, epochs = doc["train_images"], rehearsal.teacher.epochs
            out.append(Training(name, seconds, seconds / (images * epochs), "image-epoch",
                                images * train_scale * real.teacher.epochs))
        elif path.name == "pretrain.json":  # its own set: pretrain.ids identities
            images, p, q = doc["images"], rehearsal.pretrain, real.pretrain
            real_images = images * (q.ids / p.ids) * (q.images_per_camera / p.images_per_camera)
            out.append(Training(name, seconds, seconds / (images * p.epochs), "image-epoch", real_images * q.epochs))
    return out


def _peak_gpu(path: Path) -> float | None:
    if not path.is_file():
        return None
    values = [float(v) for v in path.read_text().split()]
    path.unlink()
    return max(values) if values else None


# ---------------------------------------------------------------- the rehearsal


def rehearse(params: Path, project: Path, ids: int = MIN_IDS, iterations: int = 4, overrides: list[str] | None = None,
             workdir: Path | None = None, progress=print) -> dict:
    """Rehearse ``project``'s graph (its dvc.yaml and pipelines/) under the configuration ``params``;
    returns the JSON document (stages in run order, totals)."""
    project = project.resolve()
    if not (project / "dvc.yaml").is_file():
        raise UserError(f"{project / 'dvc.yaml'}: not found; run `dgnet rehearse` from the project's root")
    real = apply_overrides(load_config(params), overrides or [])
    preflight.check(real, str(params))
    real_test, real_train = _real_sizes(real)  # a missing data set: the layout's own error, before any work
    scratch = Path(tempfile.mkdtemp(prefix="dgnet-rehearse-", dir=workdir))
    try:
        return _rehearse_in(scratch, project, real, real_test, real_train, ids, iterations, progress)
    except BaseException:  # a rehearsal that could not run leaves nothing behind
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _rehearse_in(scratch: Path, project: Path, real: Config, real_test: int, real_train: int, ids: int,
                 iterations: int, progress) -> dict:
    for name in ("dvc.yaml", ".dvcignore"):
        if (project / name).is_file():
            shutil.copy(project / name, scratch / name)
    shutil.copytree(project / "pipelines", scratch / "pipelines")
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=scratch, check=True,
                   env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    sample = {}
    if real.data.layout != "synthetic":
        sample = sample_dataset(real.data.layout, real.data.root, scratch / "data" / "sample", ids)
    cfg = rehearsal_config(real, str(scratch / "data" / "sample"), iterations, ids)
    if cfg.data.transfer_layout not in ("synthetic", switches.OFF):  # the second data set: sampled, or missing
        transfer = Path(cfg.data.transfer_root)
        transfer = transfer if transfer.is_absolute() else project / transfer
        if transfer.is_dir():  # preflight refused a missing one
            sample["transfer"] = sample_dataset(cfg.data.transfer_layout, transfer, scratch / "data" / "sample_b",
                                                ids)
            transfer = scratch / "data" / "sample_b"
        cfg = replace(cfg, **{"data.transfer_root": str(transfer)})
    io.write_text(scratch / "params.yaml", _yaml(config_to_dict(cfg)))

    stages = stage_graph(scratch)
    env = {**os.environ, "PYTHONPATH": str(project),  # the stages run the project's code with this Python
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           PEAK_GPU_ENV: str(scratch / ".peak_gpu")}
    env.pop("DVC_STAGE", None)
    if real.data.layout == "synthetic":  # the sizes of the set prepare writes: identities as the proxy
        sample_test, real_test = cfg.data.synth.test_ids, real.data.synth.test_ids
        train_scale = real.data.synth.train_ids / cfg.data.synth.train_ids
    else:
        sample_test = sum(sample.get(k, 0) for k in ("query", "gallery"))
        train_scale = real_train / max(sample["train"], 1)

    def measure(r: StageResult, written: list[Path]) -> None:
        r.trainings = _trainings(written, real, cfg, train_scale)
        r.estimate_seconds = _estimate(r, sample_test, real_test)

    results = run_graph(stages, scratch, env, measure, progress)
    return _document(real, cfg, results, scratch, sample)


def run_graph(stages: dict[str, dict], cwd: Path, env: dict, measure=None, progress=print) -> dict[str, StageResult]:
    """Run every stage's command in dependency order; a failed stage's dependants are "not reached", the
    others still run. A stage that wrote a switched-off marker and trained nothing is "skipped", without an
    estimate. ``measure(result, written)`` adds the trainings and the estimate of a stage that ran, from the
    JSON files it wrote."""
    results: dict[str, StageResult] = {}
    for name in run_order(stages):
        blocked = [a for a in stages[name]["after"] if results[a].status not in ("ok", SKIPPED)]
        if blocked:
            results[name] = StageResult(name, "not reached", error=f"needs {', '.join(blocked)}")
            progress(f"{name:24s} not reached (needs {', '.join(blocked)})")
            continue
        before = json_files(cwd)
        code, seconds, rss, log = run_stage(stages[name]["cmd"], cwd, env, cwd / f".{name}.log")
        r = StageResult(name, "ok" if code == 0 else "failed", round(seconds, 2), round(rss, 1),
                        _peak_gpu(cwd / ".peak_gpu"))
        written = written_since(cwd, before)
        for line in log.splitlines():  # a stage that ran its trainings one after another for memory says so
            if line.startswith("trainings: "):
                progress(f"{name:24s} {line}")
        if code < 0:  # killed by a signal: no line of its own
            r.error = killed_message(f"stage {name}", code, rss)
        elif code != 0:
            r.error = _one_line_error(log)
        elif measure is not None:
            measure(r, written)
        if code == 0 and not r.trainings and (reason := switched_off(cwd, written)):
            r.status, r.switched_off, r.estimate_seconds = SKIPPED, reason, None
        results[name] = r
        progress(_line(r))
    return results


def _estimate(r: StageResult, sample_test: int, real_test: int) -> float:
    """Training seconds scaled by their units; the rest by the test images (not scaled on the synthetic set,
    whose rehearsal is smaller by its sizes only)."""
    trained = sum(t.seconds for t in r.trainings)
    rest = max(0.0, r.seconds - trained)
    scale = real_test / sample_test if sample_test and real_test else 1.0
    return sum(t.estimate or t.seconds for t in r.trainings) + rest * scale


def _line(r: StageResult) -> str:
    if r.status == SKIPPED:
        why = r.switched_off.removeprefix("not trained: ").removeprefix("not run: ")
        return f"{r.name:24s} skipped (switched off: {why})"
    if r.status != "ok":
        return f"{r.name:24s} FAILED after {r.seconds:.1f} s: {r.error}"
    per_it = [f"{t.name} {t.seconds_per_unit:.3g} s/{t.unit}" for t in r.trainings]
    gpu = f", GPU peak {r.peak_gpu_mb:.0f} MB" if r.peak_gpu_mb is not None else ""
    return (f"{r.name:24s} ok in {r.seconds:6.1f} s, peak RSS {r.peak_rss_mb:.0f} MB{gpu}"
            + (f"; {'; '.join(per_it)}" if per_it else "")
            + (f"; real run about {_hours(r.estimate_seconds)}" if r.estimate_seconds is not None else ""))


def _hours(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _document(real: Config, cfg: Config, results: dict[str, StageResult], scratch: Path, sample: dict) -> dict:
    stages = []
    for r in results.values():
        d = asdict(r)
        d["trainings"] = [{**asdict(t), "estimate_seconds": t.estimate} for t in r.trainings]
        stages.append(d)
    done = [r for r in results.values() if r.status == "ok"]
    return {
        "config": real.name, "layout": real.data.layout, "device": real.runtime.device,
        "input": f"{real.data.height}x{real.data.width}", "sample": sample,
        "rehearsal": {"iterations": cfg.train.iterations, "teacher_epochs": cfg.teacher.epochs},
        "real": {"iterations": real.train.iterations, "warm_iter": real.train.warm_iter,
                 "teacher_epochs": real.teacher.epochs},
        "stages": stages,
        "failed": [r.name for r in results.values() if r.status == "failed"],
        "not_reached": [r.name for r in results.values() if r.status == "not reached"],
        "skipped": [r.name for r in results.values() if r.status == SKIPPED],
        "estimate_seconds_total": sum(r.estimate_seconds or 0 for r in done),
        "estimate_note": "an estimate from a few iterations on a few identities: training time scaled by "
                         "iterations or images x epochs, everything else by the number of test images; "
                         "stages that failed, were not reached or are switched off are not counted",
        "scratch": str(scratch),
    }


def _yaml(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)


def add_commands(sub) -> None:
    parser = sub.add_parser("rehearse", help="run the whole configured graph on a small sample and estimate "
                                             "the real run's time per stage")
    parser.add_argument("--params", default="params.yaml", type=Path, help="the configuration to rehearse")
    parser.add_argument("--ids", type=int, default=MIN_IDS,
                        help=f"identities in the sample, train and test each (at least {MIN_IDS})")
    parser.add_argument("--iterations", type=int, default=4, help="iterations per DG-Net training (at least 2)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change a key for the rehearsal only (e.g. a smaller input on a CPU)")
    parser.add_argument("--out", type=Path, help="also write the result as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (its path is printed)")
    parser.set_defaults(func=_rehearse)


def _rehearse(args) -> int:
    if args.iterations < 2:
        raise UserError(f"--iterations {args.iterations}: at least 2 (a warm-up and a continued part)")
    if args.ids < MIN_IDS:
        raise UserError(f"--ids {args.ids}: at least {MIN_IDS} (the generation figures draw {MIN_IDS} identities)")
    if not args.params.is_file():
        raise UserError(f"{args.params}: no such params file (run it from the project root, or pass --params)")
    check_outputs({"--out": args.out}, {"--params": [args.params]})
    doc = rehearse(args.params, Path.cwd(), args.ids, args.iterations, args.set)
    print(f"estimated real run: about {_hours(doc['estimate_seconds_total'])} for the stages that ran "
          f"(an estimate: {doc['estimate_note']})")
    if args.out is not None:
        io.write_json(args.out, doc)
        print(f"wrote {args.out}")
    if args.keep:
        print(f"scratch folder kept: {doc['scratch']}")
    else:
        shutil.rmtree(doc["scratch"], ignore_errors=True)
    if doc["failed"]:
        first = next(s for s in doc["stages"] if s["status"] == "failed")
        raise UserError(f"rehearsal: {len(doc['failed'])} stage(s) failed, first {first['name']}: "
                        f"{first['error'].removeprefix('dgnet: error: ').rstrip('.')}; not reached: "
                        f"{', '.join(doc['not_reached']) or 'none'}")
    return 0
