"""E_s: the structure encoder (paper Table 6), a shallow network on the gray image.

    enc = StructureEncoder(cfg.model.structure)
    s = enc(to_gray(images))   # (B, 3, 256, 128) -> (B, 1, 256, 128) -> (B, 128, 64, 32)

Layout, with ``widths = (16, 32, 32, 64)``: conv3x3/2 16, conv3x3 32,
conv3x3 32, conv3x3/2 64 (instance norm + LeakyReLU(0.2) each), residual
blocks of 64 (instance norm), ASPP (a 1x1 branch and a 1x1 + dilated 3x3
branch per dilation, concatenated) and the 1x1 fuse to ``code_channels``.
Reflection padding throughout. As in the reference (networks.py l. 312-336,
495-526) the code leaves through instance norm without an activation and
there is no tanh (``tanh: false`` in configs/latest.yaml).
"""

from __future__ import annotations

from torch import Tensor, nn

from dgnet.config import ConfigError, StructureConfig
from dgnet.models.blocks import ASPP, ConvBlock, ResBlock, init_kaiming


def to_gray(x: Tensor) -> Tensor:
    """(B, 3, H, W) -> (B, 1, H, W): the mean of the three (normalised) channels.

    The reference's ``to_gray`` (trainer.py l. 27-33) averages the channels of
    the ImageNet-normalised tensor it is given; so does this.
    """
    return x.mean(dim=1, keepdim=True)


class StructureEncoder(nn.Module):
    """Gray image -> structure code at a quarter of the input size.

    The first and the last of ``cfg.widths`` are stride-2 convolutions, the
    ones between stride 1, so the code is always H/4 x W/4 (the decoder
    upsamples twice). Weights Kaiming-normal (the reference initialises its
    generator, E_s included, with ``init: kaiming``).
    """

    def __init__(self, cfg: StructureConfig):
        super().__init__()
        widths = cfg.widths
        if len(widths) < 2:
            raise ConfigError(
                f"model.structure.widths: expected at least 2 widths (two stride-2 convolutions), got {list(widths)}")
        layers: list[nn.Module] = []
        in_ch = 1
        for i, w in enumerate(widths):
            stride = 2 if i in (0, len(widths) - 1) else 1
            layers.append(ConvBlock(in_ch, w, 3, stride, 1, norm="in", act="lrelu", pad="reflect"))
            in_ch = w
        layers += [ResBlock(in_ch, norm="in", act="lrelu", pad="reflect") for _ in range(cfg.res_blocks)]
        layers.append(ASPP(in_ch, cfg.aspp_width, cfg.aspp_dilations, cfg.code_channels, act="lrelu", pad="reflect"))
        self.net = nn.Sequential(*layers)
        self.code_channels = cfg.code_channels
        init_kaiming(self)

    def forward(self, gray: Tensor) -> Tensor:
        """(B, 1, H, W) -> (B, code_channels, H/4, W/4)."""
        return self.net(gray)
