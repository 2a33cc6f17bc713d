"""The ``generation_eval`` stage: Table 2, the disentanglement table and the paper's generation figures.

    python pipelines/generation_eval.py [--params params.yaml] [--inception-weights PATH]

:func:`run_generation_eval` writes each present model's generated set
(:mod:`dgnet.eval.generation`), then Table 2 (FID, the Fréchet distance in
the teacher's feature space, SSIM diversity) for the real data, DG-Net and
the ablations whose checkpoints exist, the ground-truth disentanglement table
(synthetic data only) and the paper's generation figures.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from dgnet import stage_seconds, switches
from dgnet.data.layouts import Sample
from dgnet.data.transforms import normalize
from dgnet.eval.generation import (FD_TEACHER, GENERATION_SEED, load_generated_images, load_generator,
                                   measure_table2, write_generated_set)

log = logging.getLogger(__name__)

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
    from dgnet.checkpoint import load_teacher

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
            if name in generated_dirs:  # a declared output: it exists and says why it is empty
                switches.marker_folder(generated_dirs[name], f"not generated: {p} not found (not trained)")
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
    stage_seconds.write_metrics(paths.metrics, metrics)

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
    "ABLATIONS", "FIGURE_FILES", "GENERATED_DIRS", "PAPER_TABLE2", "StagePaths", "blas_threads", "draw_figures",
    "run_generation_eval",
]
