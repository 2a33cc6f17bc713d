"""What both synthetic worlds (``synth.py``, ``synth_readable.py``) draw with: an identity's
attributes, their shared vocabularies, and soft shape masks painted onto an image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SKIN = ((242, 205, 175), (225, 180, 140), (190, 140, 100), (140, 95, 65), (95, 65, 45))
TEXTURES = ("solid", "stripes", "dots", "checks")
TEXTURE_P = (0.4, 0.2, 0.2, 0.2)
BAGS = ("none", "backpack", "handbag")


@dataclass(frozen=True)
class Identity:
    top: str
    top_rgb: np.ndarray
    top2: str
    top2_rgb: np.ndarray
    texture: str
    tex_period: float  # texture period, fraction of body height
    sleeves: str  # long | short
    bottom: str
    bottom_rgb: np.ndarray
    bottom_type: str  # trousers | shorts
    shoe: str
    shoe_rgb: np.ndarray
    hair: str
    hair_rgb: np.ndarray
    hair_long: bool
    skin: int
    height_factor: float
    width_factor: float
    bag: str
    bag_color: str
    bag_rgb: np.ndarray


def jitter(rng: np.random.Generator, rgb, amount: float = 14.0) -> np.ndarray:
    return np.clip(np.asarray(rgb, np.float32) + rng.normal(0, amount, 3), 0, 255) / 255.0


class Canvas:
    """Soft (anti-aliased) shape masks on a fixed pixel grid; all vectorised numpy."""

    def __init__(self, height: int, width: int):
        self.h, self.w = height, width
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        self.yy, self.xx = yy + 0.5, xx + 0.5

    def capsule(self, p0, p1, r):
        (x0, y0), (x1, y1) = p0, p1
        dx, dy = x1 - x0, y1 - y0
        t = ((self.xx - x0) * dx + (self.yy - y0) * dy) / max(dx * dx + dy * dy, 1e-6)
        t = np.clip(t, 0, 1)
        d = np.hypot(self.xx - (x0 + t * dx), self.yy - (y0 + t * dy))
        return np.clip(r - d + 0.5, 0, 1)

    def ellipse(self, cx, cy, rx, ry):
        q = np.hypot((self.xx - cx) / rx, (self.yy - cy) / ry)
        return np.clip(0.5 - (q - 1) * min(rx, ry), 0, 1)

    def box(self, x0, x1, y0, y1):
        d = np.minimum(np.minimum(self.xx - x0, x1 - self.xx), np.minimum(self.yy - y0, y1 - self.yy))
        return np.clip(d + 0.5, 0, 1)

    def trapezoid(self, cx, y0, y1, hw0, hw1):
        t = np.clip((self.yy - y0) / max(y1 - y0, 1e-6), 0, 1)
        hw = hw0 + (hw1 - hw0) * t
        d = np.minimum(hw - np.abs(self.xx - cx), np.minimum(self.yy - y0, y1 - self.yy))
        return np.clip(d + 0.5, 0, 1)


def paint(img: np.ndarray, mask: np.ndarray, color) -> None:
    img += (np.asarray(color, np.float32) - img) * mask[..., None]
