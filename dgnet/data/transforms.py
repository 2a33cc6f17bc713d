"""Tensor image transforms for re-id training (augmentation; docs/fidelity.md for the official variants).

All work on batches ``(B, 3, H, W)`` (a single ``(3, H, W)`` image is accepted
where noted) and draw their randomness from an explicit ``torch.Generator``,
so a seeded run is repeatable::

    g = torch.Generator().manual_seed(0)
    x = normalize(pad_and_crop(random_flip(batch_uint8, g), pad=5, generator=g))
    x_id = random_erasing(x, p=0.5, generator=g)   # only the inputs of the id losses

The reference pipeline is Resize -> Pad(10) -> RandomCrop -> RandomHorizontalFlip
-> ToTensor -> Normalize(ImageNet), plus RandomErasing(p=0.5, fill 0 in the
normalised space, i.e. the mean colour) on the id-loss inputs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _stats(x: Tensor) -> tuple[Tensor, Tensor]:
    shape = (3, 1, 1) if x.dim() == 3 else (1, 3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=x.device).view(shape)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=x.device).view(shape)
    return mean, std


def normalize(images: Tensor) -> Tensor:
    """uint8 ``(B, 3, H, W)`` or ``(3, H, W)`` in 0..255 -> float32 ImageNet-normalised."""
    if images.dtype != torch.uint8:
        raise TypeError(f"normalize expects uint8 images, got {images.dtype}")
    mean, std = _stats(images)
    return (images.float() / 255.0 - mean) / std


def denormalize(x: Tensor, clamp: bool = True) -> Tensor:
    """Inverse of :func:`normalize`: float images in 0..1 (clamped unless ``clamp=False``)."""
    mean, std = _stats(x)
    out = x.float() * std + mean
    return out.clamp(0, 1) if clamp else out


def random_flip(batch: Tensor, generator: torch.Generator, p: float = 0.5) -> Tensor:
    """Flip each image of ``(B, C, H, W)`` horizontally with probability ``p``."""
    flip = (torch.rand(batch.shape[0], generator=generator) < p).to(batch.device)
    return torch.where(flip.view(-1, 1, 1, 1), batch.flip(-1), batch)


def pad_and_crop(batch: Tensor, pad: int, generator: torch.Generator, mode: str = "zero") -> Tensor:
    """Pad every side by ``pad`` (``zero``, or ``edge``: repeat the border pixels, as the official
    DG-Net code) and crop back to ``(H, W)`` at a random offset per image."""
    if mode not in ("zero", "edge"):
        raise ValueError(f"mode must be 'zero' or 'edge', got {mode!r}")
    if pad <= 0:
        return batch
    b, _, h, w = batch.shape
    if mode == "edge":  # replicate padding needs a float tensor
        padded = torch.nn.functional.pad(batch.float(), (pad,) * 4, mode="replicate").to(batch.dtype)
    else:
        padded = torch.nn.functional.pad(batch, (pad, pad, pad, pad))  # (B, C, H+2p, W+2p)
    offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator)
    return torch.stack([padded[i, :, oy:oy + h, ox:ox + w] for i, (oy, ox) in enumerate(offsets.tolist())])


def random_erasing(
    batch: Tensor,
    p: float,
    generator: torch.Generator,
    area: tuple[float, float] = (0.02, 0.4),
    aspect: tuple[float, float] = (0.3, 3.3),
    fill: str = "zeros",
    aspect_sampling: str = "log_uniform",
) -> Tensor:
    """Random erasing (Zhong et al. 2020) on normalised float images ``(B, 3, H, W)``.

    With probability ``p`` per image, one rectangle of area ``area`` (fraction
    of the image) and aspect ratio in ``aspect`` (drawn ``log_uniform``, or ``uniform`` as the
    official DG-Net code does) is replaced by
    zeros (``fill="zeros"``: the mean colour after normalisation, as in the
    DG-Net reference) or by standard-normal noise (``fill="random"``).
    Up to 100 tries per image to find a rectangle that fits.
    """
    if fill not in ("zeros", "random"):
        raise ValueError(f"fill must be 'zeros' or 'random', got {fill!r}")
    b, c, h, w = batch.shape
    out = batch.clone()
    apply = (torch.rand(b, generator=generator) < p).tolist()
    if aspect_sampling not in ("uniform", "log_uniform"):
        raise ValueError(f"aspect_sampling must be 'uniform' or 'log_uniform', got {aspect_sampling!r}")
    log_lo, log_hi = math.log(aspect[0]), math.log(aspect[1])
    for i in range(b):
        if not apply[i]:
            continue
        for _ in range(100):
            u = torch.rand(3, generator=generator).tolist()
            target = (area[0] + (area[1] - area[0]) * u[0]) * h * w
            if aspect_sampling == "uniform":
                ratio = aspect[0] + (aspect[1] - aspect[0]) * u[1]
            else:
                ratio = math.exp(log_lo + (log_hi - log_lo) * u[1])
            eh = int(round(math.sqrt(target * ratio)))
            ew = int(round(math.sqrt(target / ratio)))
            if 0 < eh < h and 0 < ew < w:
                y = int(torch.randint(0, h - eh + 1, (1,), generator=generator))
                x = int(torch.randint(0, w - ew + 1, (1,), generator=generator))
                if fill == "zeros":
                    out[i, :, y:y + eh, x:x + ew] = 0
                else:
                    noise = torch.randn((c, eh, ew), generator=generator)
                    out[i, :, y:y + eh, x:x + ew] = noise.to(out.dtype).to(out.device)
                break
    return out


__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "denormalize", "normalize", "pad_and_crop",
    "random_erasing", "random_flip",
]
