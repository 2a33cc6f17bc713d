"""Fréchet distances for Table 2: FID with pytorch-fid, and the same formula on teacher features.

    from dgnet.eval.fid import frechet_inception, frechet_teacher
    result = frechet_inception(generated_uint8, train_uint8)        # FidResult(value, note)
    print(result.cell())     # "23.41" or "not computed: weights file ... not found in ..."
    d = frechet_teacher(teacher, generated_uint8, train_uint8)      # always computed

FID uses pytorch-fid's ``InceptionV3`` (pool3, 2048-d) and its
``calculate_frechet_distance``; nothing of either is re-implemented here. Its
weights file ``pt_inception-2015-12-05-6726825d.pth`` is never downloaded at
run time: it is looked for, in this order, at the path given
(``--inception-weights PATH`` / ``weights_path``: the file itself or a folder
holding it), at ``$DGNET_FID_WEIGHTS`` (same), and in
``torch.hub.get_dir()/checkpoints`` (where pytorch-fid itself caches it). When
it is missing the result says "not computed: ..." and a warning tells how to
provide it; nothing raises. The file is read with ``weights_only=True`` and
handed to pytorch-fid in place of its downloader.

The teacher-feature distance (:func:`frechet_teacher`) applies the same
formula to the 512-d bottleneck feature of our own trained teacher. It needs
no download, so it is always reported, labelled "Fréchet distance (teacher
features)": it is not an FID and not comparable with the paper's numbers.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn
from dgnet.progress import tqdm

from dgnet.data.transforms import normalize

log = logging.getLogger(__name__)

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
ENV_VAR = "DGNET_FID_WEIGHTS"
Images = Tensor | Sequence[str | Path]  # uint8 (N, 3, H, W), or image files


@dataclass(frozen=True)
class FidResult:
    """An FID value, or ``None`` with a note saying why it was not computed."""

    value: float | None
    note: str = ""

    def cell(self, digits: int = 2) -> str:
        """The table cell: the value, or the ``not computed: ...`` note."""
        return f"{self.value:.{digits}f}" if self.value is not None else self.note


# ---------------------------------------------------------------- the Fréchet distance


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (rows = samples), as pytorch-fid's ``calculate_activation_statistics``."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors (N, D), got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """pytorch-fid's ``calculate_frechet_distance`` between the Gaussians fitted to two feature sets."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    mu_a, sigma_a = statistics(features_a)
    mu_b, sigma_b = statistics(features_b)
    with warnings.catch_warnings():  # pytorch-fid 0.3 passes sqrtm(disp=False), deprecated in SciPy 1.16+
        warnings.filterwarnings("ignore", message=".*`disp` argument is deprecated", category=DeprecationWarning)
        return float(calculate_frechet_distance(mu_a, sigma_a, mu_b, sigma_b))


def _as_uint8(images: Images, size: tuple[int, int] | None) -> Tensor:
    if isinstance(images, Tensor):
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise TypeError(f"expected uint8 images (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        return images
    from PIL import Image

    from dgnet.data.dataset import decode_image

    paths = [str(p) for p in images]
    if not paths:
        raise ValueError("no images")
    if size is None:
        with Image.open(paths[0]) as im:
            size = (im.height, im.width)
    return torch.stack([decode_image(p, *size) for p in paths])


@torch.no_grad()
def _features(fn, images: Tensor, batch_size: int, desc: str, progress: bool) -> np.ndarray:
    out = []
    for start in tqdm(range(0, images.shape[0], batch_size), desc=desc, disable=not progress, leave=False):
        out.append(fn(images[start:start + batch_size]).double().cpu().numpy())
    return np.concatenate(out)


# ---------------------------------------------------------------- teacher features


def teacher_features(teacher: nn.Module, images: Images, batch_size: int = 64,
                     device: str | torch.device = "cpu", progress: bool = False,
                     size: tuple[int, int] | None = None) -> np.ndarray:
    """The teacher's bottleneck feature (after BN, eval mode) of uint8 images: (N, bottleneck)."""
    images = _as_uint8(images, size)
    teacher.eval()
    device = torch.device(device)
    return _features(lambda x: teacher(normalize(x).to(device)).feature, images, batch_size,
                     "teacher features", progress)


def frechet_teacher(teacher: nn.Module, images_a: Images, images_b: Images, batch_size: int = 64,
                    device: str | torch.device = "cpu", size: tuple[int, int] | None = None) -> float:
    """Fréchet distance (teacher features) between two image sets (never called FID)."""
    return frechet_distance(teacher_features(teacher, images_a, batch_size, device, size=size),
                            teacher_features(teacher, images_b, batch_size, device, size=size))


# ---------------------------------------------------------------- Inception (FID)


def inception_search_paths(weights_path: str | Path | None = None) -> list[Path]:
    """Candidate files, in search order: the given path, ``$DGNET_FID_WEIGHTS``, the torch hub cache."""
    out: list[Path] = []
    for given in (weights_path, os.environ.get(ENV_VAR) or None):
        if given:
            p = Path(given).expanduser()
            out.append(p / FID_WEIGHTS_FILE if p.is_dir() else p)
    out.append(Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_FILE)
    return out


def find_inception_weights(weights_path: str | Path | None = None) -> Path | None:
    """The first existing weights file of :func:`inception_search_paths`, or ``None``."""
    for p in inception_search_paths(weights_path):
        if p.is_file():
            return p
    return None


def missing_weights_note(weights_path: str | Path | None = None) -> str:
    where = ", ".join(str(p.parent) for p in inception_search_paths(weights_path))
    return f"not computed: weights file {FID_WEIGHTS_FILE} not found in {where}"


def load_inception(weights_file: str | Path, dims: int = 2048, device: str | torch.device = "cpu") -> nn.Module:
    """pytorch-fid's ``InceptionV3`` (FID variant) with the weights of a local file, never downloading.

    pytorch-fid builds the FID Inception in ``fid_inception_v3()``, which asks
    its module-level ``load_state_dict_from_url`` for the weights; for the
    duration of the construction that function is replaced by one returning
    the state dict read here (``weights_only=True``), so no URL is opened.
    """
    from pytorch_fid import inception as fid_inception

    if dims not in fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM:
        raise ValueError(f"dims must be one of {sorted(fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM)}, got {dims}")
    state = torch.load(weights_file, map_location="cpu", weights_only=True)

    def local_weights(url, *args, **kwargs):
        return state

    original = fid_inception.load_state_dict_from_url
    fid_inception.load_state_dict_from_url = local_weights
    try:
        model = fid_inception.InceptionV3([fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[dims]])
    finally:
        fid_inception.load_state_dict_from_url = original
    return model.to(device).eval()


class InceptionFid:
    """FID with pytorch-fid's Inception, the weights located once (a missing file is a note, not an error)."""

    def __init__(self, weights_path: str | Path | None = None, dims: int = 2048,
                 device: str | torch.device = "cpu", batch_size: int = 50):
        self.device = torch.device(device)
        self.dims, self.batch_size = dims, batch_size
        self.model: nn.Module | None = None
        self.weights = find_inception_weights(weights_path)
        self.note = ""
        if self.weights is None:
            self.note = missing_weights_note(weights_path)
            from pytorch_fid.inception import FID_WEIGHTS_URL

            log.warning(
                "FID not computed: %s was not found (looked in %s). Copy it from a machine with internet "
                "access (%s) into %s, or pass --inception-weights PATH, or set %s=PATH.",
                FID_WEIGHTS_FILE, ", ".join(str(p) for p in inception_search_paths(weights_path)),
                FID_WEIGHTS_URL, Path(torch.hub.get_dir()) / "checkpoints", ENV_VAR)
            return
        try:
            self.model = load_inception(self.weights, dims, self.device)
        except Exception as err:  # a truncated or foreign file: say so in the table, do not stop the stage
            self.note = f"not computed: {self.weights} is not a readable Inception weights file ({err})"
            log.warning("FID %s", self.note)

    @property
    def available(self) -> bool:
        return self.model is not None

    def features(self, images: Images, progress: bool = False, size: tuple[int, int] | None = None) -> np.ndarray:
        """Pool3 activations (N, dims) of uint8 images (pytorch-fid scales 0..1 and resizes to 299)."""
        if self.model is None:
            raise RuntimeError(self.note)
        model, device = self.model, self.device
        images = _as_uint8(images, size)

        def pool3(x: Tensor) -> Tensor:
            out = model(x.to(device).float() / 255.0)[0]  # (B, dims, h, w); 1x1 for dims=2048
            if out.shape[2:] != (1, 1):  # as pytorch-fid's get_activations for the earlier blocks
                out = torch.nn.functional.adaptive_avg_pool2d(out, (1, 1))
            return out.flatten(1)  # (B, dims)

        return _features(pool3, images, self.batch_size, "inception features", progress)

    def distance(self, images_a: Images, images_b: Images, progress: bool = False,
                 size: tuple[int, int] | None = None) -> FidResult:
        """FID between two image sets (the note when the weights are missing)."""
        if self.model is None:
            return FidResult(None, self.note)
        return self.from_features(self.features(images_a, progress, size), self.features(images_b, progress, size))

    def from_features(self, features_a: np.ndarray, features_b: np.ndarray) -> FidResult:
        """FID from pool3 features computed once (:meth:`features`), e.g. the training set's for every row."""
        if self.model is None:
            return FidResult(None, self.note)
        try:
            value = frechet_distance(features_a, features_b)
        except ValueError as err:  # e.g. pytorch-fid's "Imaginary component" on too few images
            return FidResult(None, f"not computed: {err}")
        return FidResult(value, f"pytorch-fid Inception-v3 ({self.dims}-d), {self.weights.name}")


def frechet_inception(images_a: Images, images_b: Images, weights_path: str | Path | None = None,
                      dims: int = 2048, batch_size: int = 50, device: str | torch.device = "cpu",
                      size: tuple[int, int] | None = None) -> FidResult:
    """FID between two image sets (uint8 tensors or files, decoded at ``size`` or the first file's size)."""
    return InceptionFid(weights_path, dims, device, batch_size).distance(images_a, images_b, size=size)


__all__ = [
    "ENV_VAR", "FID_WEIGHTS_FILE", "FidResult", "InceptionFid", "find_inception_weights", "frechet_distance",
    "frechet_inception", "frechet_teacher", "inception_search_paths", "load_inception", "missing_weights_note",
    "statistics", "teacher_features",
]
