"""Datasets for re-id training and testing, and the cross-identity pairing helper.

    from dgnet.data.layouts import load_layout, relabel
    train, _ = relabel(load_layout("synthetic", "data/synth_a").train)
    ds = ReidTrainDataset(train, height=64, width=32, pad=10, cache=True, seed=0)
    item = ds[0]   # image (3, H, W) float, pid, camid, pair_image, pair_index, index

With ``cache=True`` every image is decoded once (PIL, bilinear resize to the
network input) into one uint8 tensor ``(N, 3, H, W)``; otherwise each access
decodes the file. Augmentation (training only): horizontal flip, zero-pad and
random crop (``pad`` is given at 256 px height and scaled with ``height``),
ImageNet normalisation. Random erasing is applied later by the training step,
only on the inputs of the id losses (:func:`dgnet.data.transforms.random_erasing`).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor
from torch.utils.data import Dataset, get_worker_info
from dgnet.progress import tqdm

from dgnet.data.layouts import DataLayoutError, Sample
from dgnet.data.transforms import normalize, pad_and_crop, random_flip


RESAMPLING = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # PIL's 16-bit and 32-bit integer grey


def to_rgb8(im: Image.Image) -> Image.Image:
    """Any PIL image as upright 8-bit RGB: EXIF orientation applied, 16-bit grey scaled by 255 / 65535."""
    im = ImageOps.exif_transpose(im)
    if im.mode in SIXTEEN_BIT_MODES:
        grey = np.asarray(im, dtype=np.float64)
        im = Image.fromarray(np.round(np.clip(grey, 0, 65535) / 257).astype(np.uint8), mode="L")
    return im.convert("RGB")


def decode_image(path: str, height: int, width: int, resize: str = "bilinear") -> Tensor:
    """Read an image file as uint8 ``(3, height, width)`` (RGB; ``bilinear`` or ``bicubic`` resize,
    the official DG-Net code's, ``data.resize``). EXIF orientation is applied and every PIL mode,
    16-bit grey included, becomes 8-bit RGB (:func:`to_rgb8`)."""
    try:
        with Image.open(path) as im:
            im = to_rgb8(im)
            if im.size != (width, height):
                im = im.resize((width, height), RESAMPLING[resize])
            arr = np.asarray(im, dtype=np.uint8)
    except Exception as err:  # PIL raises several types for truncated/corrupt files
        raise DataLayoutError(f"{path}: unreadable or corrupt image ({err})") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()  # (3, H, W)


class ImageCache:
    """Every image decoded once into a uint8 tensor ``images`` of shape ``(N, 3, H, W)``."""

    def __init__(self, paths: Sequence[str], height: int, width: int,
                 progress: bool = True, threads: int | None = None, resize: str = "bilinear"):
        self.height, self.width = height, width
        self.images = torch.empty((len(paths), 3, height, width), dtype=torch.uint8)
        threads = threads or min(4, os.cpu_count() or 1)
        with ThreadPoolExecutor(threads) as pool:  # PIL releases the GIL while decoding
            decoded = pool.map(lambda p: decode_image(p, height, width, resize), paths)
            for i, img in enumerate(tqdm(decoded, total=len(paths), desc="decode images",
                                         unit="img", disable=not progress, leave=False)):
                self.images[i] = img

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> Tensor:
        return self.images[i]


class _ImageSource:
    """Cached or decode-on-access uint8 images of a sample list."""

    def __init__(self, samples: Sequence[Sample], height: int, width: int, cache: bool, progress: bool,
                 resize: str = "bilinear"):
        self.paths = [s.path for s in samples]
        self.height, self.width, self.resize = height, width, resize
        self.cache = ImageCache(self.paths, height, width, progress, resize=resize) if cache else None

    def __call__(self, i: int) -> Tensor:
        if self.cache is not None:
            return self.cache[i]
        return decode_image(self.paths[i], self.height, self.width, self.resize)


def scaled_pad(pad: int, height: int) -> int:
    """The pad given at 256 px image height, scaled to ``height`` (at least 1 when pad > 0)."""
    if pad <= 0:
        return 0
    return max(1, math.floor(pad * height / 256 + 0.5))


class ReidTrainDataset(Dataset):
    """Relabelled training samples with augmentation and a same-identity partner.

    ``__getitem__(i)`` returns ``dict(image, pid, camid, pair_image, pair_index,
    index)``: ``image`` and ``pair_image`` are augmented, normalised float
    ``(3, H, W)``; the pair is another image of the same pid (a different one
    whenever the id has several). Randomness comes from a generator seeded
    with ``seed`` (mixed with the DataLoader worker id).
    """

    def __init__(self, samples: Sequence[Sample], height: int, width: int, pad: int,
                 cache: bool = True, seed: int = 0, progress: bool = True):
        self.samples = tuple(samples)
        if not self.samples:
            raise ValueError("ReidTrainDataset: no samples")
        pids = sorted({s.pid for s in self.samples})
        if pids != list(range(len(pids))):
            raise ValueError("ReidTrainDataset: pids must be 0..K-1 (use dgnet.data.layouts.relabel)")
        self.num_classes = len(pids)
        self.pids = torch.tensor([s.pid for s in self.samples], dtype=torch.long)
        self.camids = torch.tensor([s.camid for s in self.samples], dtype=torch.long)
        self.by_pid: list[list[int]] = [[] for _ in pids]
        for i, s in enumerate(self.samples):
            self.by_pid[s.pid].append(i)
        self.height, self.width = height, width
        self.pad = scaled_pad(pad, height)
        self.seed = seed
        self._source = _ImageSource(self.samples, height, width, cache, progress)
        self._gen: torch.Generator | None = None
        self._gen_worker: int | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def _generator(self) -> torch.Generator:
        info = get_worker_info()
        worker = info.id if info is not None else -1
        if self._gen is None or self._gen_worker != worker:
            self._gen = torch.Generator().manual_seed(self.seed + 1_000_003 * (worker + 1))
            self._gen_worker = worker
        return self._gen

    def augment(self, image: Tensor, generator: torch.Generator) -> Tensor:
        """uint8 ``(3, H, W)`` -> flipped, padded-and-cropped, normalised float ``(3, H, W)``."""
        batch = random_flip(image.unsqueeze(0), generator)
        batch = pad_and_crop(batch, self.pad, generator)
        return normalize(batch)[0]

    def pair_of(self, i: int, generator: torch.Generator) -> int:
        """Another index of the same pid (``i`` itself only when the id has one image)."""
        same = self.by_pid[self.samples[i].pid]
        if len(same) == 1:
            return i
        k = int(torch.randint(0, len(same) - 1, (1,), generator=generator))
        others = [j for j in same if j != i]
        return others[k]

    def __getitem__(self, i: int) -> dict:
        g = self._generator()
        j = self.pair_of(i, g)
        s = self.samples[i]
        return {
            "image": self.augment(self._source(i), g),
            "pid": s.pid,
            "camid": s.camid,
            "pair_image": self.augment(self._source(j), g),
            "pair_index": j,
            "index": i,
        }


class ReidTestDataset(Dataset):
    """Query / gallery samples without augmentation: ``dict(image, pid, camid, index)``."""

    def __init__(self, samples: Sequence[Sample], height: int, width: int,
                 cache: bool = True, progress: bool = True, resize: str = "bilinear"):
        self.samples = tuple(samples)
        self.height, self.width = height, width
        self._source = _ImageSource(self.samples, height, width, cache, progress, resize)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        s = self.samples[i]
        return {"image": normalize(self._source(i)), "pid": s.pid, "camid": s.camid, "index": i}


def cross_identity_partners(pids: Tensor, generator: torch.Generator) -> Tensor:
    """A random permutation ``j`` of the batch with ``pids[j] != pids`` wherever possible.

    Used to pair each x_i with a structure provider x_j of another identity
    (DG-Net's cross-id generation). Positions that cannot be fixed (one pid
    holding more than half of the batch) keep a same-pid partner.
    """
    p = pids.tolist()
    n = len(p)
    perm = torch.randperm(n, generator=generator).tolist()
    for i in range(n):
        if p[perm[i]] != p[i]:
            continue
        for k in torch.randperm(n, generator=generator).tolist():
            # swap positions i and k only if both end up with a different pid
            if p[perm[k]] != p[i] and p[perm[i]] != p[k]:
                perm[i], perm[k] = perm[k], perm[i]
                break
    return torch.tensor(perm, dtype=torch.long, device=pids.device)


__all__ = [
    "ImageCache", "ReidTestDataset", "ReidTrainDataset", "cross_identity_partners",
    "decode_image", "scaled_pad", "to_rgb8",
]
