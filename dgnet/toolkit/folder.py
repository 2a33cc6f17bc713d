"""Features of a plain folder of images, a feature file, and nearest-neighbour search in it.

    model = load_model("models/dgnet/last.pt", device="cpu")
    doc = embed_folder(model, "photos/", batch_size=64)
    save_features("gallery.npz", doc)
    gallery = load_features("gallery.npz")
    ranked, scores = nearest(query_features, gallery["features"], k=10)

The features are exactly the evaluation's (:func:`dgnet.eval.extract_features`
on a :class:`~dgnet.data.dataset.ReidTestDataset`, with the image size and the
interpolation of the checkpoint's resolved config, ``data.resize`` /
``train.fidelity``: each named feature flip-averaged and L2-normalised; for a
DG-Net checkpoint the test feature ``f_prim+f_fine`` =
``[f_prim, sqrt(beta) f_fine]``, for a teacher ``baseline``), so the score of
a pair, ``q . g``, is the similarity that the evaluation ranks by
(``s_prim + beta * s_fine`` for DG-Net).

The feature file is a NumPy ``.npz``: ``features`` (N, D) float32, the test
feature; ``paths`` (N,) absolute image paths, in sorted order; one array per
named feature (``f_prim`` and ``f_fine``, or ``baseline``); scalars
``feature_name``, ``beta``, ``checkpoint`` (absolute path),
``checkpoint_sha256`` (of its bytes), ``root``, ``image_size`` (height,
width), ``resize`` (the PIL interpolation) and ``format``
(:data:`FEATURES_FORMAT`); ``skipped`` and ``skipped_reasons``: the
unreadable images left out by ``--skip-unreadable`` (empty otherwise).
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from dgnet.errors import UserError
from dgnet.io import atomic_path
from dgnet.progress import tqdm
from dgnet.toolkit.checks import check_at_least_one, check_beta, check_device

FEATURES_FORMAT = "dgnet-features-v2"
MAIN_FEATURES = ("f_prim+f_fine", "baseline")  # the test feature of a DG-Net / teacher checkpoint
REQUIRED_KEYS = ("features", "paths", "feature_name", "beta", "checkpoint", "checkpoint_sha256",
                 "image_size", "resize")


@dataclass(frozen=True)
class Preprocessing:
    """How an image file becomes the network's input (the evaluation's decoding)."""

    height: int
    width: int
    resize: str  # PIL interpolation: bicubic or bilinear

    def __str__(self) -> str:
        return f"{self.width}x{self.height} (width x height), PIL {self.resize}"


def preprocessing(cfg) -> Preprocessing:
    """The test-time decoding of a checkpoint's :class:`~dgnet.config.Config`, as the evaluation does it."""
    return Preprocessing(cfg.data.height, cfg.data.width, cfg.switches.resize)


def file_sha256(path: str | Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@dataclass(frozen=True)
class Model:
    """A checkpoint's re-id network, ready to embed images (see :func:`load_model`)."""

    path: Path  # absolute
    sha256: str
    embed: Callable
    preprocessing: Preprocessing
    beta: float
    device: str


def load_model(checkpoint: str | Path, device: str = "cpu", beta: float | None = None) -> Model:
    """The checkpoint's network on ``device``; ``beta`` (weight of f_fine) defaults to its ``eval.beta``."""
    from dgnet.config import config_from_dict
    from dgnet.models import load_embedder

    check_device(device)
    embed, config = load_embedder(checkpoint, device)
    cfg = config_from_dict(config)
    beta = check_beta(cfg.eval.beta if beta is None else beta)
    return Model(Path(checkpoint).resolve(), file_sha256(checkpoint), embed, preprocessing(cfg), beta, device)


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


def unreadable_images(files: list[Path], prep: Preprocessing, progress: bool = True) -> dict[Path, str]:
    """The files that cannot be decoded as ``prep`` decodes them, each with the reason."""
    from dgnet.data.dataset import decode_image
    from dgnet.data.layouts import DataLayoutError

    bad = {}
    for path in tqdm(files, desc="check images", unit="img", disable=not progress, leave=False):
        try:
            decode_image(str(path), prep.height, prep.width, prep.resize)
        except DataLayoutError as err:
            bad[path] = str(err).removeprefix(f"{path}: ")
    return bad


def _unreadable_message(bad: dict[Path, str], total: int) -> str:
    first_reason = next(iter(bad.values()))
    return (f"cannot read {len(bad)} of {total} images: {', '.join(str(p) for p in bad)} "
            f"(the first: {first_reason}); fix or remove them, or pass --skip-unreadable to leave them out "
            f"(the output lists what was skipped)")


def _readable(files: list[Path], prep: Preprocessing, skip_unreadable: bool,
              progress: bool) -> tuple[list[Path], dict[Path, str]]:
    """``files`` that decode, and the others with their reasons; an error unless ``skip_unreadable``."""
    bad = unreadable_images(files, prep, progress)
    if bad and not skip_unreadable:
        raise UserError(_unreadable_message(bad, len(files)))
    good = [p for p in files if p not in bad]
    if not good:
        raise UserError(f"none of the {len(files)} images can be read (the first, {files[0]}: {bad[files[0]]})")
    return good, bad


def _check_finite_rows(features: np.ndarray, paths: np.ndarray, where: str, advice: str) -> None:
    bad = ~np.isfinite(features).all(axis=1)
    if bad.any():
        raise UserError(f"{where}: {int(bad.sum())} of {len(bad)} feature rows are not finite (NaN or inf), "
                        f"e.g. the row of {paths[bad][0]}; {advice}")


def embed_images(model: Model, files: list[Path], batch_size: int, progress: bool = True,
                 skip_unreadable: bool = False) -> dict:
    """Test features of image files, decoded as the evaluation decodes them (``model.preprocessing``).

    Every file is first checked to decode: unreadable files are all named in
    one error, or, with ``skip_unreadable``, left out and listed in the
    document's ``skipped``. Returns the :data:`FEATURES_FORMAT` document
    (numpy arrays and plain scalars); non-finite features are an error.
    """
    from dgnet.data.dataset import ReidTestDataset
    from dgnet.data.layouts import Sample
    from dgnet.eval import default_feature_sets, extract_features

    check_at_least_one("--batch-size", batch_size)
    prep = model.preprocessing
    good, bad = _readable(files, prep, skip_unreadable, progress)
    samples = [Sample(str(p.resolve()), 0, 0) for p in good]
    dataset = ReidTestDataset(samples, prep.height, prep.width, cache=False, progress=progress,
                              resize=prep.resize)
    raw, _, _ = extract_features(model.embed, dataset, batch_size, model.device, "embed", progress=progress)
    sets = default_feature_sets(raw, model.beta)
    name = next(n for n in MAIN_FEATURES if n in sets)
    doc = {name_: f.numpy().astype(np.float32) for name_, f in raw.items()}
    doc.update({
        "format": FEATURES_FORMAT,
        "features": sets[name](raw).numpy().astype(np.float32),
        "paths": np.array([s.path for s in samples]),
        "feature_name": name,
        "beta": model.beta if name == "f_prim+f_fine" else float("nan"),
        "checkpoint": str(model.path),
        "checkpoint_sha256": model.sha256,
        "image_size": np.array([prep.height, prep.width]),
        "resize": prep.resize,
        "skipped": np.array([str(p.resolve()) for p in bad], dtype=str),
        "skipped_reasons": np.array(list(bad.values()), dtype=str),
    })
    _check_finite_rows(doc["features"], doc["paths"], str(model.path),
                       "the network overflows on these images, so nothing is written or ranked")
    return doc


def embed_folder(model: Model, folder: str | Path, batch_size: int, progress: bool = True,
                 skip_unreadable: bool = False) -> dict:
    """:func:`embed_images` on every image of ``folder`` (recursive)."""
    doc = embed_images(model, image_files(folder), batch_size, progress, skip_unreadable)
    doc["root"] = str(Path(folder).resolve())
    return doc


def save_features(path: str | Path, doc: dict) -> None:
    """Write a feature document as ``.npz``, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:  # a file object: np.savez adds no ".npz" to the name
            np.savez(fh, **doc)


def _read_npz(path: Path) -> dict:
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path}: not a .npz feature file (not a zip archive: corrupt, truncated "
                        f"or another kind of file); write one with `dgnet embed`")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except Exception as err:  # numpy raises several types for damaged archives
        raise UserError(f"{path}: not a readable .npz feature file ({err})") from None


def _check_feature_doc(path: Path, doc: dict) -> None:
    """The arrays :func:`embed_images` writes are all there, agree on the image count and are finite."""
    fmt = str(doc.get("format", ""))
    if fmt.startswith("dgnet-features-") and fmt != FEATURES_FORMAT:
        raise UserError(f"{path}: a {fmt} feature file, from an older dgnet (no checkpoint hash); "
                        f"embed the gallery again with `dgnet embed`")
    if fmt != FEATURES_FORMAT:
        raise UserError(f"{path}: not a dgnet feature file (write one with `dgnet embed`)")
    missing = [key for key in REQUIRED_KEYS if key not in doc]
    if missing:
        raise UserError(f"{path}: damaged feature file, no {', '.join(missing)}; embed the gallery again")
    features, paths = doc["features"], doc["paths"]
    if features.ndim != 2 or features.dtype.kind != "f" or paths.ndim != 1 or len(paths) != len(features):
        raise UserError(f"{path}: damaged feature file, features {features.dtype} {features.shape} "
                        f"but paths {paths.shape}; embed the gallery again")
    if doc["image_size"].shape != (2,):
        raise UserError(f"{path}: damaged feature file, image_size {doc['image_size']}; embed the gallery again")
    _check_finite_rows(features, paths, str(path), "embed the gallery again")


def load_features(path: str | Path) -> dict:
    """Read a feature file written by ``dgnet embed``; clear errors for anything else."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: feature file not found (write one with `dgnet embed`)")
    doc = _read_npz(path)
    _check_feature_doc(path, doc)
    return doc


def feature_preprocessing(doc: dict) -> Preprocessing:
    height, width = (int(v) for v in doc["image_size"])
    return Preprocessing(height, width, str(doc["resize"]))


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


__all__ = ["FEATURES_FORMAT", "Model", "Preprocessing", "embed_folder", "embed_images", "feature_preprocessing",
           "file_sha256", "image_files", "load_features", "load_model", "nearest", "preprocessing",
           "query_files", "save_features", "unreadable_images"]
