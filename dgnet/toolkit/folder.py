"""Features of a plain folder of images, a feature file, and nearest-neighbour search in it.

    doc = embed_folder("models/dgnet/last.pt", "photos/", batch_size=64, device="cpu")
    save_features("gallery.npz", doc)
    gallery = load_features("gallery.npz")
    ranked, scores = nearest(query_features, gallery["features"], k=10)

The features are exactly the evaluation's (:func:`dgnet.eval.extract_features`:
each named feature flip-averaged and L2-normalised; for a DG-Net checkpoint the
test feature ``f_prim+f_fine`` = ``[f_prim, sqrt(beta) f_fine]``, for a teacher
``baseline``), so the score of a pair, ``q . g``, is the similarity that
``dgnet evaluate`` ranks by (``s_prim + beta * s_fine`` for DG-Net).

The feature file is a NumPy ``.npz``: ``features`` (N, D) float32, the test
feature; ``paths`` (N,) absolute image paths, in sorted order; one array per
named feature (``f_prim`` and ``f_fine``, or ``baseline``); and scalars
``feature_name``, ``beta``, ``checkpoint`` (absolute path), ``root``,
``image_size`` (height, width) and ``format`` (:data:`FEATURES_FORMAT`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dgnet.errors import UserError
from dgnet.io import atomic_path

FEATURES_FORMAT = "dgnet-features-v1"
MAIN_FEATURES = ("f_prim+f_fine", "baseline")  # the test feature of a DG-Net / teacher checkpoint


def image_files(folder: str | Path) -> list[Path]:
    """Every file under ``folder`` (recursive) with an extension PIL can read, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder (give a folder of images)")
    readable = {ext.lower() for ext in Image.registered_extensions()}
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in readable)
    if not files:
        raise UserError(f"{folder}: no image files found (any type PIL reads: .jpg, .png, ...; "
                        "sub-folders are searched too)")
    return files


def query_files(path: str | Path) -> list[Path]:
    """One image file, or every image in a folder."""
    path = Path(path)
    if path.is_dir():
        return image_files(path)
    if not path.is_file():
        raise UserError(f"{path}: no such image file or folder")
    return [path]


def embed_images(checkpoint: str | Path, files: list[Path], batch_size: int, device: str,
                 beta: float | None = None, progress: bool = True) -> dict:
    """Test features of image files with a checkpoint's re-id network.

    Images are resized to the checkpoint's training size. ``beta`` (weight
    of f_fine) defaults to the checkpoint's ``eval.beta``. Returns the
    :data:`FEATURES_FORMAT` document (numpy arrays and plain scalars).
    """
    from dgnet.config import config_from_dict
    from dgnet.data.dataset import ReidTestDataset
    from dgnet.data.layouts import Sample
    from dgnet.eval import default_feature_sets, extract_features
    from dgnet.models import load_embedder

    if batch_size < 1:
        raise UserError(f"--batch-size: expected a number >= 1, got {batch_size}")
    embed, config = load_embedder(checkpoint, device)
    cfg = config_from_dict(config)
    beta = cfg.eval.beta if beta is None else beta
    if beta < 0:
        raise UserError(f"--beta: expected a value >= 0, got {beta}")
    height, width = cfg.data.height, cfg.data.width
    samples = [Sample(str(p.resolve()), 0, 0) for p in files]
    dataset = ReidTestDataset(samples, height, width, cache=False, progress=progress)
    raw, _, _ = extract_features(embed, dataset, batch_size, device, "embed", progress=progress)
    sets = default_feature_sets(raw, beta)
    name = next(n for n in MAIN_FEATURES if n in sets)
    doc = {name_: f.numpy().astype(np.float32) for name_, f in raw.items()}
    doc.update({
        "format": FEATURES_FORMAT,
        "features": sets[name](raw).numpy().astype(np.float32),
        "paths": np.array([s.path for s in samples]),
        "feature_name": name,
        "beta": float(beta) if name == "f_prim+f_fine" else float("nan"),
        "checkpoint": str(Path(checkpoint).resolve()),
        "image_size": np.array([height, width]),
    })
    return doc


def embed_folder(checkpoint: str | Path, folder: str | Path, batch_size: int, device: str,
                 beta: float | None = None, progress: bool = True) -> dict:
    """:func:`embed_images` on every image of ``folder`` (recursive)."""
    doc = embed_images(checkpoint, image_files(folder), batch_size, device, beta, progress)
    doc["root"] = str(Path(folder).resolve())
    return doc


def save_features(path: str | Path, doc: dict) -> None:
    """Write a feature document as ``.npz``, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:  # a file object: np.savez adds no ".npz" to the name
            np.savez(fh, **doc)


def load_features(path: str | Path) -> dict:
    """Read a feature file written by ``dgnet embed``; clear errors for anything else."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: feature file not found (write one with `dgnet embed`)")
    try:
        with np.load(path, allow_pickle=False) as data:
            doc = {key: data[key] for key in data.files}
    except Exception as err:  # numpy raises several types for non-npz / truncated files
        raise UserError(f"{path}: not a readable .npz feature file ({err})") from None
    if str(doc.get("format", "")) != FEATURES_FORMAT:
        raise UserError(f"{path}: not a dgnet feature file (write one with `dgnet embed`)")
    return doc


def nearest(query: np.ndarray, gallery: np.ndarray, k: int,
            exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` gallery rows with the highest score ``q . g`` for each query row.

    Ties go to the lower gallery index (the evaluation's rule). ``exclude``
    (Q, G) bool leaves entries out (e.g. a query's own image). Returns gallery
    indices (Q, k) (``-1`` past the end of a short list) and scores (Q, k).
    """
    scores = torch.as_tensor(query) @ torch.as_tensor(gallery).T  # (Q, G)
    if exclude is not None:
        scores = scores.masked_fill(torch.as_tensor(exclude), float("-inf"))
    top, order = torch.sort(scores, dim=1, descending=True, stable=True)
    top, order = top[:, :k], order[:, :k]
    left_out = torch.isinf(top)
    return torch.where(left_out, -1, order).numpy(), top.masked_fill(left_out, float("nan")).numpy()


__all__ = ["FEATURES_FORMAT", "embed_folder", "embed_images", "image_files", "load_features",
           "nearest", "query_files", "save_features"]
