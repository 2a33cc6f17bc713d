"""The generated set of Table 2, and the ``generation_eval`` stage that measures it.

    from dgnet.eval.generation import load_generator, write_generated_set
    nets = load_generator("models/dgnet/last.pt", "cpu")          # E_a, E_s, G (and D), eval mode
    rows = write_generated_set(nets, splits.train, 64, 32, "data/generated/dgnet", seed=10)

    python pipelines/generation_eval.py [--params params.yaml] [--inception-weights PATH]

The generated set follows the reference's ``visual_tools/test_folder.py``:
for every training image x_i (in order) the structure comes from a randomly
paired training image x_j (a seeded random permutation, the reference's
shuffled second loader: x_j may be of the same identity, or x_i itself), and
G(a_i, s_j) is written twice, grouped by the appearance provider's pid
(``by_appearance/<pid>/``, the reference's ``off-gan_id1``, used for FID and
SSIM) and by the structure provider's pid (``by_structure/<pid>/``, the
reference's ``off-gan_bg1``). The file name is the reference's
``<structure pid>_<appearance pid>_gen<appearance file stem>.jpg``.
``generated.csv`` beside them lists every file with both sources. The tree is
built in a temporary folder beside ``out_dir`` and renamed into place, so a
crash never leaves half a set. Images are JPEG (quality 90, the quality the
synthetic data set is stored at), so both sides of the FID went through the
same codec.

:func:`run_generation_eval` is the stage: Table 2 (FID, the Fréchet distance
in the teacher's feature space, SSIM diversity) for the real data, DG-Net and
the ablations whose checkpoints exist, the ground-truth disentanglement table
(synthetic data only) and the paper's generation figures.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import Tensor, nn
from dgnet.progress import tqdm

from dgnet.data.layouts import Sample
from dgnet.data.transforms import denormalize, normalize
from dgnet.io import umask
from dgnet.models.structure import to_gray

log = logging.getLogger(__name__)

CSV_NAME = "generated.csv"
BY_APPEARANCE = "by_appearance"
BY_STRUCTURE = "by_structure"
JPEG_QUALITY = 90
GENERATION_SEED = 10  # the reference test_folder.py's default --seed
CSV_COLUMNS = ("file", "structure_file", "appearance_source", "structure_source",
               "appearance_pid", "structure_pid", "appearance_index", "structure_index")


# ---------------------------------------------------------------- generator


def load_generator(checkpoint_path: str | Path, device: str | torch.device = "cpu") -> dict[str, nn.Module]:
    """Rebuild E_a, E_s, G and D of a DG-Net checkpoint, on ``device``, in eval mode.

    The backbone is rebuilt without pretrained weights (the checkpoint holds
    them all). Raises :class:`dgnet.errors.UserError` for a missing, corrupt
    or mismatching file.
    """
    from dgnet.config import ConfigError, config_from_dict
    from dgnet.errors import UserError
    from dgnet.io import CheckpointError, nonfinite_names
    from dgnet.models import DGNET_KEYS, build_dgnet, without_pretrained
    from dgnet.train import checkpoint

    path = Path(checkpoint_path)
    try:
        state = checkpoint.load(path, "dgnet", "cpu")
    except CheckpointError as err:
        raise UserError(str(err)) from None
    try:
        model_cfg = without_pretrained(config_from_dict(state["config"]).model)
    except (ConfigError, KeyError) as err:
        raise UserError(f"{path}: the stored config is not valid: {err}") from None
    nets = build_dgnet(model_cfg, int(state["num_classes"]))
    for name in DGNET_KEYS:
        if name not in state.get("models", {}):
            raise UserError(f"{path}: a dgnet checkpoint without {name!r} weights")
        bad = nonfinite_names(state["models"][name])
        if bad:
            raise UserError(f"{path}: the {name!r} weights hold {len(bad)} non-finite tensors (e.g. {bad[0]}); "
                            f"the training diverged, use an earlier checkpoint")
        try:
            nets[name].load_state_dict(state["models"][name])
        except RuntimeError as err:
            raise UserError(f"{path}: the {name!r} weights do not fit the model its config describes ({err})") from None
    return {name: net.to(device).eval() for name, net in nets.items()}


@torch.no_grad()
def generate(nets: dict[str, nn.Module], x_appearance: Tensor, x_structure: Tensor) -> Tensor:
    """G(a_i, s_j): normalised images (B, 3, H, W) -> normalised generated images (B, 3, H, W).

    Runs E_a, E_s and G in eval mode (their modes are restored afterwards).
    """
    used = [nets["appearance"], nets["structure"], nets["decoder"]]
    modes = [net.training for net in used]
    for net in used:
        net.eval()
    try:
        a = nets["appearance"](x_appearance).code  # (B, C, code_height, 1)
        s = nets["structure"](to_gray(x_structure))  # (B, Cs, H/4, W/4)
        return nets["decoder"](s, a)
    finally:
        for net, mode in zip(used, modes):
            net.train(mode)


def to_uint8(x: Tensor) -> Tensor:
    """Normalised float images (B, 3, H, W) -> uint8 RGB (B, 3, H, W)."""
    return (denormalize(x.float().cpu()) * 255).round().to(torch.uint8)


def random_partners(n: int, seed: int) -> np.ndarray:
    """The structure provider of each of ``n`` images: a seeded random permutation."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g).numpy()


# ---------------------------------------------------------------- the generated set


def _decode_all(samples: Sequence[Sample], height: int, width: int, progress: bool) -> Tensor:
    from dgnet.data.dataset import ImageCache

    return ImageCache([s.path for s in samples], height, width, progress=progress).images


def _place(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` tree to ``out``, replacing an older ``out`` only at the very end."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        os.replace(out, old / out.name)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_generated_set(
    nets: dict[str, nn.Module],
    train_samples: Sequence[Sample],
    height: int,
    width: int,
    out_dir: str | Path,
    seed: int = GENERATION_SEED,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = True,
    images: Tensor | None = None,
) -> pd.DataFrame:
    """Write G(a_i, s_perm(i)) for every training image i; return the rows of ``generated.csv``.

    ``train_samples`` may be relabelled or not: the folders are named after
    their ``pid`` (4 digits). ``images`` (uint8 (N, 3, height, width), in the
    order of ``train_samples``) skips decoding when already in memory.
    Columns: ``file`` (under ``by_appearance/``) and ``structure_file``
    (under ``by_structure/``), relative to ``out_dir``; the source paths,
    pids and indices of both providers.
    """
    samples = tuple(train_samples)
    if len(samples) == 0:
        raise ValueError("write_generated_set: no training samples")
    if images is None:
        images = _decode_all(samples, height, width, progress)
    if images.shape[0] != len(samples) or tuple(images.shape[1:]) != (3, height, width):
        raise ValueError(f"images {tuple(images.shape)} do not match {len(samples)} samples at {height}x{width}")
    device = torch.device(device)
    partner = random_partners(len(samples), seed)
    out = Path(out_dir)
    if out.exists() and not (out / CSV_NAME).is_file() and (not out.is_dir() or any(out.iterdir())):
        from dgnet.errors import UserError

        raise UserError(f"{out}: exists and is not a generated set (no {CSV_NAME}); refusing to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    modes = {name: net.training for name, net in nets.items()}
    for net in nets.values():
        net.eval()
    rows = []
    try:
        bar = tqdm(total=len(samples), desc=f"generate {out.name}", unit="img", disable=not progress, leave=False)
        for start in range(0, len(samples), batch_size):
            idx = np.arange(start, min(start + batch_size, len(samples)))
            x_app = normalize(images[idx]).to(device)
            x_str = normalize(images[partner[idx]]).to(device)
            fake = to_uint8(generate(nets, x_app, x_str))  # (B, 3, H, W)
            for k, i in enumerate(idx.tolist()):
                j = int(partner[i])
                a, s = samples[i], samples[j]
                name = f"{s.pid:04d}_{a.pid:04d}_gen{Path(a.path).stem}.jpg"
                rel_a = Path(BY_APPEARANCE, f"{a.pid:04d}", name)
                rel_s = Path(BY_STRUCTURE, f"{s.pid:04d}", name)
                for rel in (rel_a, rel_s):
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(fake[k].permute(1, 2, 0).numpy()).save(tmp / rel_a, "JPEG", quality=JPEG_QUALITY)
                try:
                    os.link(tmp / rel_a, tmp / rel_s)  # the same bytes, stored once
                except OSError:
                    shutil.copyfile(tmp / rel_a, tmp / rel_s)
                rows.append({"file": rel_a.as_posix(), "structure_file": rel_s.as_posix(),
                             "appearance_source": a.path, "structure_source": s.path,
                             "appearance_pid": a.pid, "structure_pid": s.pid,
                             "appearance_index": i, "structure_index": j})
            bar.update(len(idx))
        bar.close()
        table = pd.DataFrame(rows, columns=list(CSV_COLUMNS))
        table.to_csv(tmp / CSV_NAME, index=False)
        tmp.chmod(0o777 & ~umask())  # mkdtemp makes 0700; the set is an ordinary folder
        _place(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        for name, net in nets.items():
            net.train(modes[name])
    return table


def read_generated_set(out_dir: str | Path) -> pd.DataFrame:
    """The rows of ``out_dir/generated.csv`` (see :func:`write_generated_set`)."""
    from dgnet.errors import UserError

    path = Path(out_dir) / CSV_NAME
    if not path.is_file():
        raise UserError(f"{path}: no generated set here (run the generation_eval stage)")
    return pd.read_csv(path)


def load_generated_images(out_dir: str | Path, table: pd.DataFrame, height: int, width: int,
                          progress: bool = False) -> Tensor:
    """The generated images of ``table`` (by_appearance files) as uint8 (N, 3, height, width)."""
    out = Path(out_dir)
    samples = [Sample(str(out / f), 0, 0) for f in table["file"]]
    return _decode_all(samples, height, width, progress)


# ---------------------------------------------------------------- the stage (Table 2)

# Table 2 of the paper (Market-1501): quoted, never measured here.
PAPER_TABLE2 = pd.DataFrame(
    [("Real", 7.22, "0.350"), ("LSGAN", 136.26, "-"), ("PG2-GAN", 151.16, "-"),
     ("PN-GAN", 54.23, "0.335"), ("FD-GAN", 257.00, "0.247"), ("DG-Net (Ours)", 18.24, "0.360")],
    columns=["Method", "Realism (FID)", "Diversity (SSIM)"],
)
ABLATIONS = {"DG-Net": "models/dgnet/last.pt", "DG-Net w/o feed": "models/dgnet_nofeed/last.pt",
             "DG-Net w/o id": "models/dgnet_noid/last.pt"}
GENERATED_DIRS = {"DG-Net": "data/generated/dgnet", "DG-Net w/o feed": "data/generated/dgnet_nofeed",
                  "DG-Net w/o id": "data/generated/dgnet_noid"}
FD_TEACHER = "Fréchet distance (teacher features)"


@dataclass(frozen=True)
class StagePaths:
    """Every input and output of the ``generation_eval`` stage, relative to the project root."""

    teacher: str = "models/teacher.pt"
    probe: str | None = "models/attribute_probe.pt"  # the probe stage's; None: train the probe here
    table_md: str = "reports/table2.md"
    table_csv: str = "reports/table2.csv"
    metrics: str = "reports/metrics/generation.json"
    disentangle_md: str = "reports/disentanglement.md"
    disentangle_csv: str = "reports/disentanglement.csv"
    figures: str = "reports/figures"


FIGURE_FILES = {
    "fig1": "fig1_swap_grid.png", "fig4": "fig4_ablation.png", "fig5": "fig5_appearance_interpolation.png",
    "fig9": "fig9_structure_interpolation.png", "fig6": "fig6_test_swaps.png",
}


def _distinct_ids(samples: Sequence[Sample], n: int, seed: int) -> list[int]:
    """Indices of ``n`` images of distinct pids, chosen with a seeded generator (in pid order)."""
    first: dict[int, list[int]] = {}
    for i, s in enumerate(samples):
        first.setdefault(s.pid, []).append(i)
    rng = np.random.default_rng(seed)
    pids = sorted(first)
    chosen = rng.permutation(len(pids))[: min(n, len(pids))]
    return [first[pids[k]][int(rng.integers(len(first[pids[k]])))] for k in sorted(chosen.tolist())]


def _json_safe(value):
    """NaN and infinities -> None (strict JSON), numpy scalars -> Python numbers, recursively."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def measure_table2(train: Sequence[Sample], train_images: Tensor, gallery_images: Tensor,
                   generated: dict[str, Tensor], tables: dict[str, pd.DataFrame], teacher: nn.Module,
                   fid_model, batch_size: int, device: torch.device, seed: int, progress: bool = False,
                   timings: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """Table 2's measured rows: "Real" (training set vs gallery) and one per generated set (vs training set).

    Columns: FID (Inception; or its "not computed" note), the Fréchet
    distance in the teacher's feature space, SSIM diversity (real images
    grouped by pid, generated ones by their appearance provider's pid).
    Returns the table and ``{row: metrics}``; ``timings`` (if given) gets the
    seconds of each part.
    """
    from dgnet.eval import fid, ssim

    timings = {} if timings is None else timings
    pairs = {"Real": (train_images, gallery_images), **{n: (generated[n], train_images) for n in generated}}
    t0 = time.perf_counter()
    if fid_model.available:  # each set's pool3 features once (the training set is in every row)
        sets = {"_train": train_images, "_gallery": gallery_images, **generated}
        feats = {k: fid_model.features(v, progress) for k, v in sets.items()}
        fid_results = {"Real": fid_model.from_features(feats["_train"], feats["_gallery"]),
                       **{n: fid_model.from_features(feats[n], feats["_train"]) for n in generated}}
    else:
        fid_results = {name: fid_model.distance(a, b) for name, (a, b) in pairs.items()}
    timings["fid_inception"] = round(time.perf_counter() - t0, 2)

    t0 = time.perf_counter()
    train_feats = fid.teacher_features(teacher, train_images, batch_size, device)
    gallery_feats = fid.teacher_features(teacher, gallery_images, batch_size, device)
    fd_teacher = {"Real": fid.frechet_distance(train_feats, gallery_feats)}
    for name in generated:
        feats = fid.teacher_features(teacher, generated[name], batch_size, device)
        fd_teacher[name] = fid.frechet_distance(feats, train_feats)
    timings["fid_teacher"] = round(time.perf_counter() - t0, 2)

    t0 = time.perf_counter()
    ssim_results = {"Real": ssim.ssim_diversity(ssim.groups_of(train, train_images), seed=seed)}
    for name in generated:
        by_appearance = [Sample(f, int(p), 0) for f, p in zip(tables[name]["file"], tables[name]["appearance_pid"])]
        ssim_results[name] = ssim.ssim_diversity(ssim.groups_of(by_appearance, generated[name]), seed=seed)
    timings["ssim"] = round(time.perf_counter() - t0, 2)

    rows, metrics = [], {}
    for name, (a, b) in pairs.items():
        r, s = fid_results[name], ssim_results[name]
        rows.append({"Method": name,
                     "Compared": "training set vs gallery" if name == "Real" else "generated set vs training set",
                     "FID (Inception)": r.cell(), FD_TEACHER: _fmt(fd_teacher[name]),
                     "SSIM (diversity)": s.cell(), "Images": f"{a.shape[0]} vs {b.shape[0]}"})
        metrics[name] = {"fid_inception": r.value, "fid_inception_note": r.note,
                         "frechet_teacher": fd_teacher[name], "ssim": s.value, "ssim_half_range": s.half_range,
                         "ssim_pairs": s.pairs_per_round, "images": int(a.shape[0])}
    return pd.DataFrame(rows), metrics


def draw_figures(nets_by_name: dict[str, dict[str, nn.Module]], absent: Sequence[str], train: Sequence[Sample],
                 train_images: Tensor, query: Sequence[Sample], height: int, width: int, fig_dir: str | Path,
                 seed: int) -> dict[str, Path]:
    """Figures 1, 4, 5, 9 (training images of 6 seeded distinct ids) and 6 (query images of 6 test ids).

    The first entry of ``nets_by_name`` is the full model; ``absent`` names
    the ablations without a checkpoint (said in Figure 4's title).
    """
    from dgnet.reports import generation_figures as figures
    from dgnet.data.dataset import ImageCache

    fig_dir = Path(fig_dir)
    figs = {k: fig_dir / v for k, v in FIGURE_FILES.items()}
    main = next(iter(nets_by_name.values()))
    x = normalize(train_images[_distinct_ids(train, 6, seed)])  # (6, 3, H, W)
    figures.swap_grid(main, x, x, figs["fig1"], title="Figure 1: rows = appearance, columns = structure "
                                                      "(training images)")
    figures.ablation_grid(nets_by_name, x[:-1], x[1:], figs["fig4"],
                          title="Figure 4: full model vs w/o feed vs w/o id (same inputs)"
                          + (f"; not trained: {', '.join(absent)}" if absent else ""))
    figures.appearance_interpolation(main, x[0::2][:3], x[1::2][:3], figs["fig5"])
    figures.structure_interpolation(main, x[0::2][:3], x[1::2][:3], figs["fig9"])
    test = [s for s in query if s.pid > 0]
    picked = [test[i].path for i in _distinct_ids(test, 6, seed)]
    x_test = normalize(ImageCache(picked, height, width, progress=False).images)
    figures.swap_grid(main, x_test, x_test, figs["fig6"],
                      title="Figure 6: swaps on test (query) images, never seen in training")
    return figs


def run_generation_eval(
    cfg,
    models: dict[str, str | Path] | None = None,
    generated_dirs: dict[str, str | Path] | None = None,
    paths: StagePaths = StagePaths(),
    inception_weights: str | Path | None = None,
    seed: int = GENERATION_SEED,
    probe_ids: int | None = None,
    probe_epochs: int | None = None,
    progress: bool = True,
) -> dict:
    """The ``generation_eval`` stage; returns the metrics written to ``paths.metrics``.

    ``cfg`` is the validated :class:`dgnet.config.Config`. ``models`` maps a
    row name to a DG-Net checkpoint (default :data:`ABLATIONS`; the first
    must exist, the others are skipped when their file is missing) and
    ``generated_dirs`` the same names to the folders of their generated sets
    (:data:`GENERATED_DIRS`). ``inception_weights``: see
    :mod:`dgnet.eval.fid`. ``probe_ids`` / ``probe_epochs``: the
    disentanglement probe's training set and length (defaults in
    :mod:`dgnet.eval.disentangle`) when ``paths.probe`` is None and the
    probe is trained here rather than read from the ``probe`` stage.
    """
    if cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    with blas_threads(cfg.runtime.threads):
        return _generation_eval(cfg, models, generated_dirs, paths, inception_weights, seed, probe_ids,
                                probe_epochs, progress)


@contextmanager
def blas_threads(threads: int) -> Iterator[None]:
    """Limit NumPy/SciPy's BLAS threads (the Fréchet distance's ``sqrtm``) to ``threads`` (0 = unchanged).

    On a small shared CPU, BLAS and torch threads that wait for each other's
    cores make the stage several times slower; ``runtime.threads`` caps both.
    Uses ``threadpoolctl`` when it is installed, else does nothing.
    """
    if threads <= 0:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=threads, user_api="blas"):
        yield


def _generation_eval(cfg, models, generated_dirs, paths, inception_weights, seed, probe_ids, probe_epochs,
                     progress) -> dict:
    from dgnet import io, tracking
    from dgnet.config import config_to_dict
    from dgnet.data.dataset import ImageCache
    from dgnet.data.layouts import load_layout
    from dgnet.errors import UserError
    from dgnet.eval import disentangle, fid, ssim
    from dgnet.io import CheckpointError
    from dgnet.reports.tables import write_table
    from dgnet.train.checkpoint import load_teacher

    began = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, t0: float) -> None:
        timings[name] = round(time.perf_counter() - t0, 2)

    device = torch.device(cfg.runtime.device)
    models = dict(ABLATIONS if models is None else models)
    generated_dirs = dict(GENERATED_DIRS if generated_dirs is None else generated_dirs)
    main_name = next(iter(models))
    if not Path(models[main_name]).is_file():
        raise UserError(f"{models[main_name]}: DG-Net checkpoint not found (run the train_dgnet stage first)")
    if cfg.data.layout == "synthetic" and paths.probe is not None and not Path(paths.probe).is_file():
        raise UserError(f"{paths.probe}: attribute probe not found (run the probe stage: dvc repro probe)")
    present = {name: Path(p) for name, p in models.items() if Path(p).is_file()}
    for name, p in models.items():
        if name not in present:
            log.info("%s: %s not found, row skipped", name, p)
    h, w, bs = cfg.data.height, cfg.data.width, cfg.eval.batch_size

    # data: training set (original pids), gallery, test images for Figure 6
    t0 = time.perf_counter()
    splits = load_layout(cfg.data.layout, cfg.data.root, cfg.data.cuhk03_subset)
    train = splits.train
    train_images = ImageCache([s.path for s in train], h, w, progress=progress).images
    gallery_images = ImageCache([s.path for s in splits.gallery], h, w, progress=progress).images
    try:
        teacher, _ = load_teacher(paths.teacher, device)
    except CheckpointError as err:
        raise UserError(f"{err} (run the teacher stage first)") from None
    lap("load", t0)

    # generated sets, one per present model
    t0 = time.perf_counter()
    nets_by_name = {name: load_generator(p, device) for name, p in present.items()}
    generated: dict[str, Tensor] = {}
    tables: dict[str, pd.DataFrame] = {}
    for name, nets in nets_by_name.items():
        out = Path(generated_dirs[name])
        tables[name] = write_generated_set(nets, train, h, w, out, seed, bs, device, progress, images=train_images)
        generated[name] = load_generated_images(out, tables[name], h, w)  # what was written, JPEG included
    lap("generate", t0)

    # Table 2: Inception FID, teacher-feature Fréchet distance, SSIM
    fid_model = fid.InceptionFid(inception_weights, device=device, batch_size=bs)
    table2, metrics_rows = measure_table2(train, train_images, gallery_images, generated, tables, teacher,
                                          fid_model, bs, device, seed, progress, timings)
    note = ("FID: pytorch-fid Inception-v3 pool3 (the paper used TensorFlow's Inception graph, so values may "
            "differ slightly); both sets decoded at the network input size "
            f"{h}x{w}. {FD_TEACHER}: the same formula on the teacher's {cfg.model.head.bottleneck}-d bottleneck "
            "feature (our own teacher, models/teacher.pt): not an FID, not comparable with the paper. "
            "SSIM: (1 - SSIM)/2 in Lab, within identities, "
            f"{ssim.REF_PAIRS} random pairs per identity and {ssim.REF_ROUNDS} rounds, midrange ± half-range of "
            "the running means (the reference's PerceptualSimilarity compute_market.py); higher = more diverse.")
    write_table(paths.table_md, paths.table_csv, "Table 2: realism (FID) and diversity (SSIM) of generated images",
                cfg, table2, PAPER_TABLE2, quoted_title="Quoted from the paper, Table 2 (Market-1501; not measured here)",
                note=note)

    # ground-truth disentanglement (synthetic data only)
    t0 = time.perf_counter()
    dis_metrics: dict = {}
    if cfg.data.layout == "synthetic":
        probe = None if paths.probe is None else disentangle.load_probe(paths.probe, h, w, device)
        dis = disentangle.evaluate(
            cfg.data.root, cfg.data.synth, train, train_images, splits.query + splits.gallery, generated, tables, h, w,
            device=device, seed=seed, progress=progress, probe=probe,
            epochs=probe_epochs or disentangle.PROBE_EPOCHS, probe_ids=probe_ids or disentangle.PROBE_IDS)
        write_table(paths.disentangle_md, paths.disentangle_csv,
                    "Ground-truth disentanglement of generated images (synthetic pedestrians)", cfg,
                    dis.table, note=dis.note)
        dis_metrics = dis.metrics
    else:
        msg = "not available: no ground-truth attributes (the disentanglement table needs the synthetic data set)"
        write_table(paths.disentangle_md, paths.disentangle_csv, "Ground-truth disentanglement of generated images",
                    cfg, pd.DataFrame([{"attribute": "-", "result": msg}]), note=msg)
        dis_metrics = {"note": msg}
    lap("disentangle", t0)

    # figures
    t0 = time.perf_counter()
    absent = [name for name in models if name not in nets_by_name]
    figs = draw_figures(nets_by_name, absent, train, train_images, splits.query, h, w, paths.figures, seed)
    lap("figures", t0)

    timings["total"] = round(time.perf_counter() - began, 2)
    metrics = {"table2": metrics_rows, "disentanglement": dis_metrics, "seconds": timings,
               "generated_dirs": {n: str(generated_dirs[n]) for n in generated},
               "fid_inception_available": fid_model.available, "fid_inception_note": fid_model.note}
    metrics = _json_safe(metrics)
    io.write_json(paths.metrics, metrics)

    with tracking.start_run(cfg.tracking, "generation_eval", params=config_to_dict(cfg),
                            tags={"config": cfg.name}) as run:
        flat = {}
        for name, m in metrics_rows.items():
            key = name.lower().replace(" ", "_").replace("/", "").replace("-", "")
            for k in ("fid_inception", "frechet_teacher", "ssim", "ssim_half_range"):
                if m[k] is not None:
                    flat[f"{key}/{k}"] = m[k]
        for k, v in (dis_metrics.get("summary") or {}).items():
            flat[f"disentangle/{k}"] = v
        flat.update({f"seconds/{k}": v for k, v in timings.items()})
        run.log_metrics(flat)
        for p in figs.values():
            run.log_image(p)
        for p in (paths.table_md, paths.table_csv, paths.disentangle_md, paths.disentangle_csv, paths.metrics):
            run.log_artifact(p, folder="reports")
    return metrics


__all__ = [
    "ABLATIONS", "BY_APPEARANCE", "BY_STRUCTURE", "CSV_NAME", "FIGURE_FILES", "GENERATED_DIRS", "PAPER_TABLE2",
    "StagePaths", "draw_figures", "generate", "load_generated_images", "load_generator", "measure_table2",
    "random_partners", "read_generated_set", "run_generation_eval", "to_uint8", "write_generated_set",
]
