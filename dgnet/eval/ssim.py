"""SSIM diversity (Table 2): (1 - SSIM)/2 in Lab between random image pairs of one identity.

    from dgnet.eval.ssim import groups_of, ssim_diversity
    result = ssim_diversity(groups_of(train_samples, train_uint8), seed=10)
    result.cell()   # "0.352 ± 0.001"   (higher = more diverse)

The protocol of the reference script (layumi/PerceptualSimilarity
``compute_market.py`` with ``DistModel(model='ssim')``, colour space Lab):

- ``REF_ROUNDS`` = 5 rounds; in each, for every identity folder, ``REF_PAIRS``
  = 10 pairs, each the first two images of a fresh random permutation of the
  folder (two different images, drawn with replacement across pairs);
- each image is converted to Lab with ``skimage.color.rgb2lab`` (L in 0..100,
  no centring or scaling: ``tensor2tensorlab(..., to_norm=False)``) and the
  distance is ``(1 - SSIM) / 2`` with ``data_range=100`` over the three
  channels (``compare_ssim(..., multichannel=True)``: the mean of the
  per-channel SSIMs, 7x7 uniform window, sample covariance), here
  ``skimage.metrics.structural_similarity(..., channel_axis=-1)``;
- the sums are *not* reset between rounds: after round r the script prints the
  running mean over rounds 0..r, and reports ``(max + min) / 2 ± (max - min) / 2``
  of those running means. :class:`SsimResult` keeps exactly that (``value``,
  ``half_range``) and also the plain per-round means.

Differences, on purpose: the pairs are seeded (the reference is not);
identities with a single image are skipped and counted (the reference would
stop with an IndexError); images are compared at one given size (the
reference read its files at their stored size, 128x64 real vs 256x128
generated at paper scale), so real and generated sets are measured alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from skimage.color import rgb2lab
from skimage.metrics import structural_similarity
from torch import Tensor

from dgnet.data.layouts import IMAGE_SUFFIXES, Sample

REF_ROUNDS = 5
REF_PAIRS = 10
LAB_DATA_RANGE = 100.0


def dssim_lab(image_a: np.ndarray, image_b: np.ndarray) -> float:
    """(1 - SSIM)/2 of two uint8 RGB images (H, W, 3) in Lab, data range 100."""
    return dssim_of_lab(rgb2lab(image_a), rgb2lab(image_b))


def dssim_of_lab(lab_a: np.ndarray, lab_b: np.ndarray) -> float:
    s = structural_similarity(lab_a, lab_b, data_range=LAB_DATA_RANGE, channel_axis=-1)
    return float((1.0 - s) / 2.0)


@dataclass(frozen=True)
class SsimResult:
    value: float  # (max + min) / 2 of the running means, as the reference reports
    half_range: float  # (max - min) / 2 of the running means
    running_means: tuple[float, ...]  # after each round, over all rounds so far (the reference's printout)
    round_means: tuple[float, ...]  # each round alone
    pairs_per_round: int
    groups: int  # identities measured
    skipped: int = 0  # identities with fewer than two images
    notes: tuple[str, ...] = field(default=())

    def cell(self, digits: int = 3) -> str:
        if not np.isfinite(self.value):
            return "n/a (no identity with two images)"
        return f"{self.value:.{digits}f} ± {self.half_range:.{digits}f}"


def groups_of(samples: Sequence[Sample], images: Tensor | None = None) -> dict[int, list]:
    """Identity -> its images: uint8 (H, W, 3) arrays when ``images`` (N, 3, H, W) is given, else file paths."""
    out: dict[int, list] = {}
    for i, s in enumerate(samples):
        item = images[i].permute(1, 2, 0).numpy() if images is not None else s.path
        out.setdefault(s.pid, []).append(item)
    return out


def groups_from_folder(root: str | Path) -> dict[str, list[str]]:
    """``root/<group>/<image>`` -> ``{group: [paths]}`` (e.g. a generated set's ``by_appearance``)."""
    root = Path(root)
    return {d.name: sorted(str(f) for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            for d in sorted(root.iterdir()) if d.is_dir()}


def _load(item, size: tuple[int, int] | None) -> np.ndarray:
    if isinstance(item, np.ndarray):
        return item
    from dgnet.data.dataset import decode_image
    from PIL import Image

    if size is None:
        with Image.open(item) as im:
            return np.asarray(im.convert("RGB"))
    return decode_image(str(item), *size).permute(1, 2, 0).numpy()


def ssim_diversity(groups: Mapping[object, Sequence], rounds: int = REF_ROUNDS, pairs: int = REF_PAIRS,
                   seed: int = 0, size: tuple[int, int] | None = None) -> SsimResult:
    """The reference protocol on ``{identity: [images]}``; images are uint8 (H, W, 3) arrays or files.

    Files are decoded at ``size`` (height, width) or their stored size. Each
    image is converted to Lab once.
    """
    rng = np.random.default_rng(seed)
    keys = sorted(groups, key=str)
    usable = [k for k in keys if len(groups[k]) >= 2]
    lab: dict[tuple[int, int], np.ndarray] = {}

    def lab_of(g: int, i: int) -> np.ndarray:
        if (g, i) not in lab:
            lab[(g, i)] = rgb2lab(_load(groups[usable[g]][i], size))
        return lab[(g, i)]

    total, count = 0.0, 0
    running, per_round = [], []
    for _ in range(rounds):
        round_total, round_count = 0.0, 0
        for g, key in enumerate(usable):
            n = len(groups[key])
            for _ in range(pairs):
                perm = rng.permutation(n)
                d = dssim_of_lab(lab_of(g, int(perm[0])), lab_of(g, int(perm[1])))
                round_total += d
                round_count += 1
        total += round_total
        count += round_count
        running.append(total / count if count else float("nan"))
        per_round.append(round_total / round_count if round_count else float("nan"))
    hi, lo = (max(running), min(running)) if count else (float("nan"), float("nan"))
    return SsimResult(value=(hi + lo) / 2, half_range=(hi - lo) / 2, running_means=tuple(running),
                      round_means=tuple(per_round), pairs_per_round=len(usable) * pairs, groups=len(usable),
                      skipped=len(keys) - len(usable))


__all__ = ["REF_PAIRS", "REF_ROUNDS", "SsimResult", "dssim_lab", "groups_from_folder", "groups_of",
           "ssim_diversity"]
