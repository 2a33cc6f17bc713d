"""G: the decoder (paper Table 7). Structure code in, appearance code as an argument, image out.

    dec = Decoder(cfg.model.decoder, structure_channels=128, appearance_channels=2048, code_height=4)
    image = dec(structure, appearance_code)  # (B, 128, 64, 32), (B, 2048, 4, 1) -> (B, 3, 256, 128)

The flattened appearance code (channel-major, as the reference's
``f.view(B, C * 4)``, reIDmodel.py l. 141) is split into ``res_blocks``
contiguous chunks (8192 -> 4 x 2048). Chunk k feeds two MLPs of its own,
``mlp_w[k]`` and ``mlp_b[k]`` (in -> hidden -> hidden -> 2C), giving the scales
and biases of the two AdaIN layers of residual block k (the reference's
``mlp_w1..4`` / ``mlp_b1..4`` and ``assign_adain_params``, networks.py
l. 203-243). Then twice: nearest upsample x2, conv5x5 + LayerNorm + LeakyReLU;
conv3x3, conv3x3 (LeakyReLU, no norm), conv1x1 -> 3. The output is in the
normalised image space: no tanh (the reference ``Decoder`` has none,
networks.py l. 358-381).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dgnet.config import DecoderConfig
from dgnet.models.blocks import MLP, AdaINResBlock, ConvBlock, init_kaiming


def chunk_sizes(total: int, chunks: int) -> list[int]:
    """Sizes of ``torch.tensor_split(x, chunks)``: equal, the first ones one larger if uneven."""
    base, extra = divmod(total, chunks)
    return [base + (1 if i < extra else 0) for i in range(chunks)]


class Decoder(nn.Module):
    def __init__(self, cfg: DecoderConfig, structure_channels: int, appearance_channels: int, code_height: int):
        super().__init__()
        c = structure_channels
        self.code_dim = appearance_channels * code_height
        if self.code_dim < cfg.res_blocks:
            raise ValueError(f"appearance code of {self.code_dim} values cannot feed {cfg.res_blocks} blocks")
        self.chunks = chunk_sizes(self.code_dim, cfg.res_blocks)
        self.mlp_w = nn.ModuleList(MLP(n, 2 * c, cfg.mlp_hidden, cfg.mlp_layers) for n in self.chunks)
        self.mlp_b = nn.ModuleList(MLP(n, 2 * c, cfg.mlp_hidden, cfg.mlp_layers) for n in self.chunks)
        self.blocks = nn.ModuleList(AdaINResBlock(c, act="lrelu", pad="reflect") for _ in range(cfg.res_blocks))
        up: list[nn.Module] = []
        for w in cfg.up_widths:
            up += [nn.Upsample(scale_factor=2, mode="nearest"),
                   ConvBlock(c, w, 5, 1, 2, norm="ln", act="lrelu", pad="reflect")]
            c = w
        up += [ConvBlock(c, cfg.tail_width, 3, 1, 1, act="lrelu", pad="reflect"),
               ConvBlock(cfg.tail_width, cfg.tail_width, 3, 1, 1, act="lrelu", pad="reflect"),
               ConvBlock(cfg.tail_width, 3, 1, act="none", pad="reflect")]
        self.up = nn.Sequential(*up)
        init_kaiming(self)  # the reference's generator init (configs/latest.yaml ``init: kaiming``)

    def forward(self, structure: Tensor, appearance_code: Tensor) -> Tensor:
        """(B, Cs, h, w) structure, (B, C, code_height, 1) or (B, C*code_height) code -> (B, 3, 4h, 4w)."""
        code = appearance_code.flatten(1)  # (B, C * code_height), channel-major
        if code.shape[1] != self.code_dim:
            raise ValueError(f"appearance code has {code.shape[1]} values per image, the decoder expects {self.code_dim}")
        x = structure
        for block, mlp_w, mlp_b, part in zip(self.blocks, self.mlp_w, self.mlp_b, torch.split(code, self.chunks, 1)):
            x = block(x, mlp_w(part), mlp_b(part))  # AdaIN scales/biases (B, 2Cs) from this chunk
        return self.up(x)  # (B, 3, H, W)
