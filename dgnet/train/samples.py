"""Generation grids drawn during training: self-reconstruction and cross-identity swaps.

Each column is one pair (x_a, x_b); the rows are x_a, G(a_a, s_a), x_b,
G(a_b, s_b), G(a_a, s_b) (a's clothes in b's pose) and G(a_b, s_a).
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import Tensor, nn
from torchvision.utils import make_grid

from dgnet import io
from dgnet.data.transforms import denormalize
from dgnet.models.structure import to_gray

ROWS = ("x_a", "G(a_a, s_a)", "x_b", "G(a_b, s_b)", "G(a_a, s_b)", "G(a_b, s_a)")


@torch.no_grad()
def swap_images(nets: dict[str, nn.Module], x_a: Tensor, x_b: Tensor) -> list[Tensor]:
    """The six rows of :data:`ROWS` for normalised images x_a, x_b (B, 3, H, W)."""
    appearance, structure, decoder = nets["appearance"], nets["structure"], nets["decoder"]
    modes = {name: net.training for name, net in nets.items()}
    for net in nets.values():
        net.eval()
    try:
        a_a, a_b = appearance(x_a).code, appearance(x_b).code
        s_a, s_b = structure(to_gray(x_a)), structure(to_gray(x_b))
        rows = [x_a, decoder(s_a, a_a), x_b, decoder(s_b, a_b), decoder(s_b, a_a), decoder(s_a, a_b)]
    finally:
        for name, net in nets.items():
            net.train(modes[name])
    return rows


def save_rows(rows: list[Tensor], path: str | Path) -> None:
    """Stack rows of normalised images into one PNG (written atomically)."""
    images = torch.cat([denormalize(r.float().cpu()).clamp(0, 1) for r in rows])
    grid = make_grid(images, nrow=rows[0].shape[0], padding=2, pad_value=1.0)
    array = (grid.permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    with io.atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")
