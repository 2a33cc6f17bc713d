"""D: multi-scale PatchGAN discriminator (paper Table 8).

    dis = Discriminator(cfg.model.discriminator)
    outs = dis(images)   # (B, 3, 256, 128) -> [(B, 1, 64, 32), (B, 1, 32, 16), (B, 1, 16, 8)]

Per scale, as the reference ``MsImageDis`` with ``n_layer: 2`` (networks.py
l. 48-67): conv1x1 w, conv3x3 w, conv3x3/2 w, conv3x3 w, conv3x3/2 2w,
residual blocks of 2w, conv1x1 -> 1; LeakyReLU(0.2), no normalisation,
reflection padding, weights N(0, 0.02). Between scales the input is
average-pooled 3x3, stride 2, padding 1, ``count_include_pad=False``
(networks.py l. 38). One independent network per scale.
"""

from __future__ import annotations

from torch import Tensor, nn

from dgnet.config import DiscriminatorConfig
from dgnet.models.blocks import ConvBlock, ResBlock, init_gaussian


def _scale_net(width: int, res_blocks: int) -> nn.Sequential:
    w2 = min(2 * width, 512)
    layers: list[nn.Module] = [
        ConvBlock(3, width, 1, act="lrelu"),
        ConvBlock(width, width, 3, 1, 1, act="lrelu"),
        ConvBlock(width, width, 3, 2, 1, act="lrelu"),
        ConvBlock(width, width, 3, 1, 1, act="lrelu"),
        ConvBlock(width, w2, 3, 2, 1, act="lrelu"),
    ]
    layers += [ResBlock(w2, norm="none", act="lrelu") for _ in range(res_blocks)]
    layers.append(nn.Conv2d(w2, 1, 1))
    return nn.Sequential(*layers)


class Discriminator(nn.Module):
    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.nets = nn.ModuleList(_scale_net(cfg.width, cfg.res_blocks) for _ in range(cfg.scales))
        init_gaussian(self, 0.02)

    def forward(self, x: Tensor) -> list[Tensor]:
        """(B, 3, H, W) -> one (B, 1, H/4 / 2^k, W/4 / 2^k) patch map per scale k."""
        outputs = []
        for i, net in enumerate(self.nets):
            if i:
                x = self.downsample(x)  # (B, 3, H/2^i, W/2^i)
            outputs.append(net(x))
        return outputs
