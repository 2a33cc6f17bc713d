"""The generated set of Table 2 and its measurement (FID, the teacher-feature Fréchet distance, SSIM).

    from dgnet.eval.generation import load_generator, write_generated_set
    nets = load_generator("models/dgnet/last.pt", "cpu")          # E_a, E_s, G (and D), eval mode
    rows = write_generated_set(nets, splits.train, 64, 32, "data/generated/dgnet", seed=10)

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

:func:`measure_table2` measures Table 2's rows; the ``generation_eval`` stage
that writes the tables, figures and metrics is :mod:`dgnet.stages.generation`.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Sequence

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
    from dgnet import checkpoint

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


# ---------------------------------------------------------------- Table 2's measurement

FD_TEACHER = "Fréchet distance (teacher features)"


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


__all__ = [
    "BY_APPEARANCE", "BY_STRUCTURE", "CSV_NAME", "FD_TEACHER", "GENERATION_SEED", "generate",
    "load_generated_images", "load_generator", "measure_table2", "random_partners", "read_generated_set",
    "to_uint8", "write_generated_set",
]
