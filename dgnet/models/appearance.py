"""E_a: the re-id network. A ResNet trunk gives the appearance code; two identity heads give
f_prim and f_fine (paper Section 3.2).

    enc = AppearanceEncoder(cfg.model.backbone, cfg.model.head, num_classes=751)
    out = enc(images)        # images (B, 3, H, W), ImageNet-normalised
    out.code                 # (B, 2048, 4, 1) at paper scale: what G decodes
    out.f_prim, out.f_fine   # (B, 512): the test features (eval mode)
    out.logits_prim, out.logits_fine  # (B, K)

The model never detaches the code; the training loop decides (the reference
feeds G a detached code, so generation losses do not reach E_a through G).
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

import torch.nn.functional as F
from torch import Tensor, nn

from dgnet.config import BackboneConfig, HeadConfig
from dgnet.models.backbone import build_backbone


class AppearanceOutput(NamedTuple):
    code: Tensor  # (B, C, code_height, 1): adaptive max pool of the final map
    f_prim: Tensor  # (B, bottleneck): primary head bottleneck (after BN, before dropout)
    f_fine: Tensor  # (B, bottleneck): fine-grained head bottleneck
    logits_prim: Tensor  # (B, K)
    logits_fine: Tensor  # (B, K)


class IdentityHead(nn.Module):
    """Linear C->bottleneck, BatchNorm1d, Dropout, Linear bottleneck->K (the reference ``ClassBlock``).

    Returns (feature, logits); the feature is the BN output, the one the
    reference's test script keeps (it removes the classifier, eval mode).
    Initialisation as the reference: bottleneck Linear Kaiming-normal
    (fan_out), classifier N(0, 0.001), zero biases, BN at its defaults.
    """

    def __init__(self, in_features: int, bottleneck: int, num_classes: int, dropout: float):
        super().__init__()
        self.fc = nn.Linear(in_features, bottleneck)
        self.bn = nn.BatchNorm1d(bottleneck)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(bottleneck, num_classes)
        nn.init.kaiming_normal_(self.fc.weight, a=0, mode="fan_out")
        nn.init.zeros_(self.fc.bias)
        nn.init.normal_(self.classifier.weight, std=0.001)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        feature = self.bn(self.fc(x))  # (B, bottleneck)
        return feature, self.classifier(self.dropout(feature))  # (B, K)


class AppearanceEncoder(nn.Module):
    """ResNet trunk + appearance code + primary and fine-grained identity heads.

    Both heads read the globally max-pooled final map: the reference's
    ``ft_netAB`` with ``pool: max`` (reIDmodel.py l. 115-117, configs/latest.yaml
    l. 63) replaces ResNet's average pool with ``AdaptiveMaxPool2d((1, 1))``.
    """

    def __init__(self, backbone: BackboneConfig, head: HeadConfig, num_classes: int):
        super().__init__()
        self.backbone = build_backbone(backbone)
        self.code_channels: int = self.backbone.out_channels
        self.code_height: int = head.code_height
        self.head_prim = IdentityHead(self.code_channels, head.bottleneck, num_classes, head.dropout_prim)
        self.head_fine = IdentityHead(self.code_channels, head.bottleneck, num_classes, head.dropout_fine)

    def forward(self, x: Tensor) -> AppearanceOutput:
        fmap = self.backbone(x)  # (B, C, h, w)
        code = F.adaptive_max_pool2d(fmap, (self.code_height, 1))  # (B, C, code_height, 1)
        pooled = F.adaptive_max_pool2d(fmap, 1).flatten(1)  # (B, C)
        f_prim, logits_prim = self.head_prim(pooled)
        f_fine, logits_fine = self.head_fine(pooled)
        return AppearanceOutput(code, f_prim, f_fine, logits_prim, logits_fine)

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """The trunk (base learning rate)."""
        return self.backbone.parameters()

    def head_parameters(self) -> Iterator[nn.Parameter]:
        """Both heads (10x the base learning rate in the reference)."""
        yield from self.head_prim.parameters()
        yield from self.head_fine.parameters()
