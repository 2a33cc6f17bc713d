"""The teacher / baseline re-id network (Table 3 "Baseline"; paper Section 4.1).

    teacher = Teacher(cfg.model.backbone, cfg.model.head, num_classes)
    out = teacher(images)   # out.feature (B, bottleneck), out.logits (B, K)

ResNet trunk, global average pool (the reference's teachers are
Person_reID_baseline ``ft_net`` models, whose default pool is 'avg':
reIDmodel.py l. 65, 77-79, trainer.py l. 210), then Linear C->bottleneck,
BatchNorm1d, Dropout(head.dropout_prim), Linear->K.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

import torch.nn.functional as F
from torch import Tensor, nn

from dgnet.config import BackboneConfig, HeadConfig
from dgnet.models.appearance import IdentityHead
from dgnet.models.backbone import build_backbone


class TeacherOutput(NamedTuple):
    feature: Tensor  # (B, bottleneck): after BN, before dropout (the baseline's test feature)
    logits: Tensor  # (B, K)


class Teacher(nn.Module):
    def __init__(self, backbone: BackboneConfig, head: HeadConfig, num_classes: int):
        super().__init__()
        self.backbone = build_backbone(backbone)
        self.head = IdentityHead(self.backbone.out_channels, head.bottleneck, num_classes, head.dropout_prim)

    def forward(self, x: Tensor) -> TeacherOutput:
        pooled = F.adaptive_avg_pool2d(self.backbone(x), 1).flatten(1)  # (B, C)
        feature, logits = self.head(pooled)
        return TeacherOutput(feature, logits)

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        return self.backbone.parameters()

    def head_parameters(self) -> Iterator[nn.Parameter]:
        return self.head.parameters()
