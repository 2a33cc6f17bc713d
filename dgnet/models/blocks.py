"""Building blocks shared by E_s, G and D: padded conv, residual, AdaIN, LayerNorm, ASPP, MLP.

Conventions (from the reference implementation NVlabs/DG-Net, ``networks.py``):

* every convolution pads explicitly (reflect in E_s, G and D) and has a bias;
* LeakyReLU has slope 0.2 (``activ: lrelu`` in the reference ``configs/latest.yaml``);
* the residual block is conv-norm-act, conv-norm, plus the input, with no
  activation after the sum (``ResBlock``, networks.py l. 428-461);
* AdaIN takes its scales and biases as forward arguments (StyleGAN2 style),
  never as attributes written onto the layer.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Norm = Literal["none", "in", "ln", "adain"]
Act = Literal["lrelu", "relu", "none"]
Pad = Literal["reflect", "zero"]

LRELU_SLOPE = 0.2


def pad2d(x: Tensor, pad: int, mode: Pad) -> Tensor:
    """Pad the last two dimensions by ``pad`` on every side.

    Reflection needs ``pad`` smaller than the map; the CPU configurations run
    E_s at 16x8 and below, where the ASPP dilations (3, 6, 9) exceed the map,
    so reflection falls back to edge replication there. At the paper's sizes
    (64x32 maps) reflection is always used, as in the reference.
    """
    if pad == 0:
        return x
    if mode == "zero":
        return F.pad(x, (pad, pad, pad, pad))
    fits = pad < x.shape[-1] and pad < x.shape[-2]
    return F.pad(x, (pad, pad, pad, pad), mode="reflect") if fits else replicate_pad(x, pad)


def replicate_pad(x: Tensor, pad: int) -> Tensor:
    """``F.pad(x, (pad,) * 4, mode="replicate")`` written as edge rows and columns repeated and
    concatenated: the same values, and a backward that ``torch.compile`` handles on the CPU (the
    replication kernel's backward returns channels-last strides its fake kernel does not predict)."""
    w = x.shape[-1]
    x = torch.cat([x[..., :1, :].expand(*x.shape[:-2], pad, w), x, x[..., -1:, :].expand(*x.shape[:-2], pad, w)], -2)
    return torch.cat([x[..., :1].expand(*x.shape[:-1], pad), x, x[..., -1:].expand(*x.shape[:-1], pad)], -1)


def activation(kind: Act) -> nn.Module:
    if kind == "lrelu":
        return nn.LeakyReLU(LRELU_SLOPE)
    if kind == "relu":
        return nn.ReLU()
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {kind!r}")


class LayerNorm2d(nn.Module):
    """Per-sample normalisation over (C, H, W), then a per-channel affine.

    As the reference ``LayerNorm`` (networks.py l. 837-862): ``(x - mean) /
    (std + eps)`` with the unbiased standard deviation, gamma initialised
    uniform in [0, 1), beta zero.
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.rand(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        flat = x.flatten(1)
        shape = (-1,) + (1,) * (x.dim() - 1)
        mean = flat.mean(1).view(shape)
        std = flat.std(1).view(shape)
        x = (x - mean) / (std + self.eps)
        return x * self.gamma.view(1, -1, 1, 1) + self.beta.view(1, -1, 1, 1)


def norm_layer(kind: Norm, channels: int) -> nn.Module:
    if kind == "in":
        return nn.InstanceNorm2d(channels)  # affine=False, as the reference
    if kind == "ln":
        return LayerNorm2d(channels)
    if kind in ("none", "adain"):  # AdaIN is applied by the caller with its own parameters
        return nn.Identity()
    raise ValueError(f"unknown normalisation {kind!r}")


class ConvBlock(nn.Module):
    """pad -> conv -> norm -> activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        *,
        dilation: int = 1,
        norm: Norm = "none",
        act: Act = "lrelu",
        pad: Pad = "reflect",
    ):
        super().__init__()
        self.padding = padding
        self.pad_mode: Pad = pad
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, dilation=dilation)
        self.norm = norm_layer(norm, out_channels)
        self.act = activation(act)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(pad2d(x, self.padding, self.pad_mode))))


class ResBlock(nn.Module):
    """Two 3x3 convolutions (norm after each, activation after the first) plus the input."""

    def __init__(self, channels: int, *, norm: Norm, act: Act = "lrelu", pad: Pad = "reflect"):
        super().__init__()
        self.conv1 = ConvBlock(channels, channels, 3, 1, 1, norm=norm, act=act, pad=pad)
        self.conv2 = ConvBlock(channels, channels, 3, 1, 1, norm=norm, act="none", pad=pad)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.conv1(x))


def adain(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """Adaptive instance normalisation: instance-normalise ``x`` then ``x * weight + bias``.

    ``weight`` and ``bias`` are (B, C), one scale and bias per sample and channel,
    used as they come (no ``1 +``), as the reference's ``AdaptiveInstanceNorm2d``.
    """
    x = F.instance_norm(x, eps=eps)  # biased variance, as batch_norm over (1, B*C, H, W)
    return x * weight[:, :, None, None] + bias[:, :, None, None]


class AdaINResBlock(nn.Module):
    """Residual block with AdaIN after each of its two 3x3 convolutions (paper Table 7)."""

    def __init__(self, channels: int, *, act: Act = "lrelu", pad: Pad = "reflect"):
        super().__init__()
        self.channels = channels
        self.conv1 = ConvBlock(channels, channels, 3, 1, 1, norm="adain", act="none", pad=pad)
        self.act = activation(act)
        self.conv2 = ConvBlock(channels, channels, 3, 1, 1, norm="adain", act="none", pad=pad)

    def forward(self, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        """``weight``/``bias``: (B, 2C), the first C for the first AdaIN, the rest for the second."""
        c = self.channels
        out = self.act(adain(self.conv1(x), weight[:, :c], bias[:, :c]))
        out = adain(self.conv2(out), weight[:, c:], bias[:, c:])
        return x + out


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling as in the reference (networks.py l. 495-526).

    A 1x1 branch and, for each dilation, a 1x1 reduction followed by a dilated
    3x3 convolution; the branches are concatenated and fused by a 1x1
    convolution (Table 6's ``Conv5``). Each convolution is followed by instance
    norm; LeakyReLU only after the 1x1 reductions inside the dilated branches.
    """

    def __init__(
        self,
        in_channels: int,
        width: int,
        dilations: Sequence[int],
        out_channels: int,
        *,
        act: Act = "lrelu",
        pad: Pad = "reflect",
    ):
        super().__init__()
        self.point = ConvBlock(in_channels, width, 1, norm="in", act="none", pad=pad)
        self.branches = nn.ModuleList(
            nn.Sequential(
                ConvBlock(in_channels, width, 1, norm="in", act=act, pad=pad),
                ConvBlock(width, width, 3, 1, d, dilation=d, norm="in", act="none", pad=pad),
            )
            for d in dilations
        )
        self.fuse = ConvBlock(width * (1 + len(dilations)), out_channels, 1, norm="in", act="none", pad=pad)

    def forward(self, x: Tensor) -> Tensor:
        parts = [self.point(x)] + [branch(x) for branch in self.branches]
        return self.fuse(torch.cat(parts, dim=1))  # (B, width * (1 + n), H, W) -> (B, out, H, W)


class MLP(nn.Module):
    """``layers`` linear layers, LeakyReLU between them, none after the last (no norm)."""

    def __init__(self, in_features: int, out_features: int, hidden: int, layers: int, act: Act = "lrelu"):
        super().__init__()
        dims = [in_features] + [hidden] * (layers - 1) + [out_features]
        mods: list[nn.Module] = []
        for i in range(layers):
            mods.append(nn.Linear(dims[i], dims[i + 1]))
            if i < layers - 1:
                mods.append(activation(act))
        self.net = nn.Sequential(*mods)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1))


def init_kaiming(module: nn.Module) -> None:
    """Kaiming-normal (fan_in, a=0) conv and linear weights, zero biases (reference ``init: kaiming``)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def init_gaussian(module: nn.Module, std: float = 0.02) -> None:
    """N(0, std) conv and linear weights, zero biases (reference D: ``weights_init('gaussian')``)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
