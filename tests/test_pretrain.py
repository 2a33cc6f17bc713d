"""Backbone pre-training: a separate synthetic set, a trunk file that the teacher and E_a start from."""

from __future__ import annotations

import torch

from dgnet.config import replace
from dgnet.data.layouts import load_layout
from dgnet.models import build_dgnet, build_teacher
from dgnet.stages.pretrain import run_pretrain


def test_pretrained_trunk_starts_teacher_and_appearance_encoder(micro_cfg, tmp_path):
    cfg = replace(micro_cfg, **{"pretrain.ids": 4, "pretrain.epochs": 1, "pretrain.batch_size": 8})
    weights = tmp_path / "trunk.pth"
    metrics = run_pretrain(cfg, tmp_path / "pretrain", weights, tmp_path / "pretrain.json", progress=False)
    assert metrics["ids"] == 4 and weights.is_file()
    pre = load_layout("synthetic", str(tmp_path / "pretrain"))
    own = load_layout("synthetic", cfg.data.root)
    assert {s.path for s in pre.train}.isdisjoint({s.path for s in own.train})

    state = torch.load(weights, weights_only=True)
    started = replace(cfg, **{"model.backbone.pretrained": str(weights)})
    teacher = build_teacher(started.model, 3)
    appearance = build_dgnet(started.model, 3)["appearance"]
    for net in (teacher, appearance):
        for name, value in net.backbone.state_dict().items():
            assert torch.equal(value, state[name]), name
    scratch = build_teacher(cfg.model, 3).backbone.state_dict()
    assert any(not torch.equal(scratch[k], state[k]) for k in state)  # training moved the weights
