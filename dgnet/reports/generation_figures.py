"""The paper's generation figures, drawn from a trained DG-Net (PNG, written atomically).

    from dgnet.eval.generation import load_generator
    from dgnet.reports import generation_figures as figures
    nets = load_generator("models/dgnet/last.pt", "cpu")
    figures.swap_grid(nets, x, x, "reports/figures/fig1_swap_grid.png")              # Figure 1 / 6
    figures.appearance_interpolation(nets, x[:3], x[3:6], "reports/figures/fig5.png")  # Figure 5
    figures.structure_interpolation(nets, x[:3], x[3:6], "reports/figures/fig9.png")   # Figure 9
    figures.ablation_grid({"DG-Net": nets, "w/o feed": nets2}, x[:5], x[1:], "fig4.png")  # Figure 4

Inputs are normalised images (B, 3, H, W) as the networks take them; every
cell is denormalised to RGB for display. Generation runs in eval mode
without gradients (the networks' modes are restored afterwards).

- Figure 1 (and Figure 6 on test images): rows = appearance, columns =
  structure; the first row holds the structure inputs, the first column the
  appearance inputs, cell (r, c) = G(a_r, s_c).
- Figure 5: each row keeps the structure of its first image and walks the
  appearance code linearly from that image's to the last image's (11 steps,
  as the reference's ``visual_tools/show_smooth.py``).
- Figure 9: each row keeps the appearance of its first image and walks the
  structure code linearly (``show_smooth_structure.py``).
- Figure 4: columns = input pairs; rows = appearance input, structure input,
  then G(a, s) of each model given (full, w/o feed, w/o id), missing ones
  skipped.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from dgnet import io
from dgnet.data.transforms import denormalize
from dgnet.models.structure import to_gray

INTERPOLATION_STEPS = 11  # t = 0, 0.1, ..., 1 as in the reference's show_smooth.py


def _device(nets: Mapping[str, nn.Module]) -> torch.device:
    return next(nets["decoder"].parameters()).device


@contextmanager
def _eval(nets: Mapping[str, nn.Module]) -> Iterator[None]:
    modes = {name: net.training for name, net in nets.items()}
    for net in nets.values():
        net.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for name, net in nets.items():
            net.train(modes[name])


def _rgb(x: Tensor) -> np.ndarray:
    """One normalised image (3, H, W) -> (H, W, 3) floats in 0..1."""
    return denormalize(x.detach().float().cpu()).permute(1, 2, 0).numpy()


def mosaic(cells: Sequence[Sequence[Tensor | None]], pad: int = 2) -> np.ndarray:
    """Normalised images in rows (``None`` = empty) -> one RGB array (H', W', 3) in 0..1, white gaps."""
    rows, cols = len(cells), max(len(r) for r in cells)
    first = next(c for r in cells for c in r if c is not None)
    h, w = first.shape[-2:]
    out = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), dtype=np.float32)
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            if cell is not None:
                y, x = pad + r * (h + pad), pad + c * (w + pad)
                out[y:y + h, x:x + w] = _rgb(cell)
    return out


def save_grid(cells: Sequence[Sequence[Tensor | None]], path: str | Path, title: str = "",
              row_labels: Sequence[str] | None = None, col_labels: Sequence[str] | None = None,
              cell_width: float = 0.6, dpi: int = 120) -> Path:
    """A labelled grid of normalised images (``None`` = empty cell) as a PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pad = 2
    image = mosaic(cells, pad)
    rows, cols = len(cells), max(len(r) for r in cells)
    h = (image.shape[0] - pad) // rows - pad
    w = (image.shape[1] - pad) // cols - pad
    scale = cell_width / (w + pad)  # inches per pixel
    fig_w = image.shape[1] * scale + (1.1 if row_labels else 0.2)
    fig_h = image.shape[0] * scale + (0.45 if title else 0.1) + (0.3 if col_labels else 0.1)
    fig, ax = plt.subplots(figsize=(fig_w, fig_h))
    ax.imshow(image, interpolation="nearest")
    ax.set_xticks([pad + c * (w + pad) + w / 2 for c in range(cols)] if col_labels else [])
    ax.set_yticks([pad + r * (h + pad) + h / 2 for r in range(rows)] if row_labels else [])
    if col_labels:
        ax.set_xticklabels(list(col_labels)[:cols], fontsize=6)
        ax.xaxis.tick_top()
    if row_labels:
        ax.set_yticklabels(list(row_labels)[:rows], fontsize=6)
    ax.tick_params(length=0, pad=2)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=7)
    return io.save_figure(fig, path, dpi=dpi, bbox_inches="tight", pad_inches=0.05)  # labels never clipped


@torch.no_grad()
def _codes(nets: Mapping[str, nn.Module], x: Tensor) -> tuple[Tensor, Tensor]:
    """(appearance code (B, C, h, 1), structure code (B, Cs, H/4, W/4)) of normalised images."""
    x = x.to(_device(nets))
    return nets["appearance"](x).code, nets["structure"](to_gray(x))


def swap_cells(nets: Mapping[str, nn.Module], x_appearance: Tensor, x_structure: Tensor) -> list[list[Tensor | None]]:
    """The cells of :func:`swap_grid`: ``[[None, *x_structure], [x_appearance[r], *G(a_r, s_c)], ...]``."""
    with _eval(nets):
        a, _ = _codes(nets, x_appearance)
        _, s = _codes(nets, x_structure)
        rows: list[list[Tensor | None]] = [[None, *x_structure]]
        for r in range(a.shape[0]):
            fake = nets["decoder"](s, a[r:r + 1].expand(s.shape[0], *a.shape[1:]))  # (C, 3, H, W)
            rows.append([x_appearance[r], *fake.cpu()])
    return rows


def swap_grid(nets: Mapping[str, nn.Module], x_appearance: Tensor, x_structure: Tensor, path: str | Path,
              title: str = "rows = appearance, columns = structure") -> Path:
    """Figure 1 / Figure 6: cell (r, c) = G(a_r, s_c), with the real inputs in the first row and column."""
    rows = swap_cells(nets, x_appearance, x_structure)
    labels = ["structure ->", *[f"appearance {r}" for r in range(len(rows) - 1)]]
    return save_grid(rows, path, title, row_labels=labels)


def interpolation_cells(nets: Mapping[str, nn.Module], x_from: Tensor, x_to: Tensor,
                        steps: int = INTERPOLATION_STEPS, which: str = "appearance") -> list[list[Tensor]]:
    """One row per pair: ``[x_from[k], G at t = 0 .. 1 (steps values), x_to[k]]``.

    ``which="appearance"``: G(s_from, (1 - t) a_from + t a_to) (Figure 5);
    ``which="structure"``: G((1 - t) s_from + t s_to, a_from) (Figure 9).
    """
    if which not in ("appearance", "structure"):
        raise ValueError(f"which must be 'appearance' or 'structure', got {which!r}")
    ts = torch.linspace(0, 1, steps).tolist()
    with _eval(nets):
        a0, s0 = _codes(nets, x_from)
        a1, s1 = _codes(nets, x_to)
        rows = []
        for k in range(x_from.shape[0]):
            if which == "appearance":
                a = torch.stack([(1 - t) * a0[k] + t * a1[k] for t in ts])
                s = s0[k:k + 1].expand(steps, *s0.shape[1:])
            else:
                s = torch.stack([(1 - t) * s0[k] + t * s1[k] for t in ts])
                a = a0[k:k + 1].expand(steps, *a0.shape[1:])
            rows.append([x_from[k], *nets["decoder"](s, a).cpu(), x_to[k]])
    return rows


def _interpolation(nets, x_from, x_to, path, steps: int, which: str, title: str) -> Path:
    rows = interpolation_cells(nets, x_from, x_to, steps, which)
    cols = ["from", *[f"t={t:.1f}" for t in torch.linspace(0, 1, steps).tolist()], "to"]
    return save_grid(rows, path, title, col_labels=cols)


def appearance_interpolation(nets: Mapping[str, nn.Module], x_from: Tensor, x_to: Tensor, path: str | Path,
                             steps: int = INTERPOLATION_STEPS,
                             title: str = "Figure 5: linear interpolation between two appearance codes "
                                          "(structure of the left image)") -> Path:
    """Figure 5: G(s_from, (1 - t) a_from + t a_to) for ``steps`` values of t in [0, 1], one row per pair."""
    return _interpolation(nets, x_from, x_to, path, steps, "appearance", title)


def structure_interpolation(nets: Mapping[str, nn.Module], x_from: Tensor, x_to: Tensor, path: str | Path,
                            steps: int = INTERPOLATION_STEPS,
                            title: str = "Figure 9: linear interpolation between two structure codes "
                                         "(appearance of the left image)") -> Path:
    """Figure 9: G((1 - t) s_from + t s_to, a_from), one row per pair."""
    return _interpolation(nets, x_from, x_to, path, steps, "structure", title)


def ablation_cells(models: Mapping[str, Mapping[str, nn.Module] | None], x_appearance: Tensor,
                   x_structure: Tensor) -> tuple[list[list[Tensor]], list[str]]:
    """Rows of :func:`ablation_grid` and their labels; models given as ``None`` are skipped."""
    present = {name: nets for name, nets in models.items() if nets is not None}
    if not present:
        raise ValueError("ablation_grid: no model given")
    rows: list[list[Tensor]] = [list(x_appearance), list(x_structure)]
    labels = ["appearance input", "structure input"]
    for name, nets in present.items():
        with _eval(nets):
            a, _ = _codes(nets, x_appearance)
            _, s = _codes(nets, x_structure)
            rows.append(list(nets["decoder"](s, a).cpu()))
        labels.append(name)
    return rows, labels


def ablation_grid(models: Mapping[str, Mapping[str, nn.Module] | None], x_appearance: Tensor, x_structure: Tensor,
                  path: str | Path, title: str = "Figure 4: full model vs w/o feed vs w/o id") -> Path:
    """Figure 4: columns = pairs (a_k, s_k); one row of G(a_k, s_k) per model present, same inputs."""
    rows, labels = ablation_cells(models, x_appearance, x_structure)
    return save_grid(rows, path, title, row_labels=labels)


__all__ = ["INTERPOLATION_STEPS", "ablation_cells", "ablation_grid", "appearance_interpolation",
           "interpolation_cells", "mosaic", "save_grid", "structure_interpolation", "swap_cells", "swap_grid"]
