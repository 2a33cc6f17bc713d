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


def to_device(x: Tensor, device: torch.device) -> Tensor:
    """Copy a small host tensor to ``device`` without waiting for the device's queued work."""
    return x.to(device, non_blocking=True)


def random_flip(batch: Tensor, generator: torch.Generator, p: float = 0.5) -> Tensor:
    """Flip each image of ``(B, C, H, W)`` horizontally with probability ``p``."""
    flip = to_device(torch.rand(batch.shape[0], generator=generator) < p, batch.device)
    return torch.where(flip.view(-1, 1, 1, 1), batch.flip(-1), batch)


def pad_and_crop(batch: Tensor, pad: int, generator: torch.Generator, mode: str = "zero") -> Tensor:
    """Pad every side by ``pad`` (``zero``, or ``edge``: repeat the border pixels, as the official
    DG-Net code) and crop back to ``(H, W)`` at a random offset per image.

    Done as two gathers of clamped source rows and columns (no padded copy, no loop over the
    images), so it runs on the batch's device with the offsets drawn on the host."""
    if mode not in ("zero", "edge"):
        raise ValueError(f"mode must be 'zero' or 'edge', got {mode!r}")
    if pad <= 0:
        return batch
    b, c, h, w = batch.shape
    offsets = to_device(torch.randint(0, 2 * pad + 1, (b, 2), generator=generator), batch.device)
    rows = offsets[:, :1] - pad + torch.arange(h, device=batch.device)  # (B, H) source row of each output row
    cols = offsets[:, 1:] - pad + torch.arange(w, device=batch.device)
    out = batch.gather(2, rows.clamp(0, h - 1)[:, None, :, None].expand(b, c, h, w))
    out = out.gather(3, cols.clamp(0, w - 1)[:, None, None, :].expand(b, c, h, w))
    if mode == "zero":
        inside = ((rows >= 0) & (rows < h))[:, None, :, None] & ((cols >= 0) & (cols < w))[:, None, None, :]
        out = out.masked_fill(~inside, 0)
    return out


def erasing_boxes(
    n: int,
    h: int,
    w: int,
    p: float,
    generator: torch.Generator,
    area: tuple[float, float] = (0.02, 0.4),
    aspect: tuple[float, float] = (0.3, 3.3),
    aspect_sampling: str = "log_uniform",
) -> Tensor:
    """The rectangles random erasing removes from ``n`` images of ``h x w``: a host ``(n, 4)`` tensor of
    ``(top, bottom, left, right)``, all zero for an image left intact.

    With probability ``p`` per image, one rectangle of area ``area`` (fraction of the image) and aspect
    ratio in ``aspect`` (drawn ``log_uniform``, or ``uniform`` as the official DG-Net code does); up to
    100 tries per image, the first that fits is kept. Every try is drawn at once, so the draws never
    depend on a value read back from a device.
    """
    if aspect_sampling not in ("uniform", "log_uniform"):
        raise ValueError(f"aspect_sampling must be 'uniform' or 'log_uniform', got {aspect_sampling!r}")
    tries = 100
    apply = torch.rand(n, generator=generator) < p
    u = torch.rand(n, tries, 2, generator=generator, dtype=torch.float64)
    v = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    target = (area[0] + (area[1] - area[0]) * u[..., 0]) * h * w
    if aspect_sampling == "uniform":
        ratio = aspect[0] + (aspect[1] - aspect[0]) * u[..., 1]
    else:
        lo, hi = math.log(aspect[0]), math.log(aspect[1])
        ratio = torch.exp(lo + (hi - lo) * u[..., 1])
    eh = torch.round(torch.sqrt(target * ratio)).long()
    ew = torch.round(torch.sqrt(target / ratio)).long()
    fits = (eh > 0) & (eh < h) & (ew > 0) & (ew < w)
    first = fits.int().argmax(1, keepdim=True)  # the first try that fits
    eh, ew = eh.gather(1, first)[:, 0], ew.gather(1, first)[:, 0]
    keep = apply & fits.any(1)
    top = (v[:, 0] * (h - eh + 1)).long().clamp(max=h - 1)
    left = (v[:, 1] * (w - ew + 1)).long().clamp(max=w - 1)
    boxes = torch.stack([top, top + eh, left, left + ew], 1)
    return torch.where(keep[:, None], boxes, torch.zeros_like(boxes))


def erase(batch: Tensor, boxes: Tensor) -> Tensor:
    """Set the ``boxes`` (:func:`erasing_boxes`) of normalised images ``(B, C, H, W)`` to 0, the mean colour."""
    _, _, h, w = batch.shape
    boxes = to_device(boxes, batch.device)
    ys, xs = torch.arange(h, device=batch.device), torch.arange(w, device=batch.device)
    in_rows = (ys >= boxes[:, :1]) & (ys < boxes[:, 1:2])  # (B, H)
    in_cols = (xs >= boxes[:, 2:3]) & (xs < boxes[:, 3:])  # (B, W)
    return batch.masked_fill(in_rows[:, None, :, None] & in_cols[:, None, None, :], 0)


def random_erasing(
    batch: Tensor,
    p: float,
    generator: torch.Generator,
    area: tuple[float, float] = (0.02, 0.4),
    aspect: tuple[float, float] = (0.3, 3.3),
    aspect_sampling: str = "log_uniform",
) -> Tensor:
    """Random erasing (Zhong et al. 2020) on normalised float images ``(B, 3, H, W)``: with probability
    ``p`` per image one rectangle (:func:`erasing_boxes`) is replaced by zeros, the mean colour after
    normalisation, as in the DG-Net reference."""
    _, _, h, w = batch.shape
    return erase(batch, erasing_boxes(batch.shape[0], h, w, p, generator, area, aspect, aspect_sampling))


__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "denormalize", "erase", "erasing_boxes", "normalize", "pad_and_crop",
    "random_erasing", "random_flip", "to_device",
]
