"""The generator's pre-training (stage pretrain_generator) and ``train.generator_init``."""

from __future__ import annotations

import json

import pytest
import torch

from dgnet import io
from dgnet.config import replace
from dgnet.errors import UserError
from dgnet.models import build_dgnet
from dgnet.data.loading import load_training_set
from dgnet.train.loop import GENERATOR_PARTS, load_pretrained_generator, train_dgnet
from dgnet.stages.pretrain import run_pretrain_generator
from dgnet.tracking import Run


@pytest.fixture
def cfg(micro_cfg):
    return replace(micro_cfg, **{"tracking.uri": "none", "pretrain.generator_iterations": 3})


@pytest.fixture
def pretrained(cfg, micro_data, tmp_path, one_torch_thread):
    """The pre-trained generator file, trained on the micro set (E_a frozen)."""
    paths = [tmp_path / name for name in ("generator.pt", "metrics.json", "swaps.png")]
    metrics = run_pretrain_generator(cfg, micro_data, *paths, progress=False)
    return paths, metrics


def test_pretraining_trains_the_generator_alone_and_the_joint_run_starts_from_it(cfg, pretrained, tmp_path):
    (weights, metrics_path, figure), metrics = pretrained
    state = io.load_checkpoint(weights)
    assert state["kind"] == "pretrained_generator" and set(state["models"]) == set(GENERATOR_PARTS)
    assert metrics["iterations"] == 3 and json.loads(metrics_path.read_text())["iterations"] == 3 and figure.stat().st_size
    assert "loss/id_gen" not in metrics and "loss/prim" not in metrics  # no identity loss on generations

    torch.manual_seed(cfg.train.seed)
    fresh = build_dgnet(cfg.model, 8)
    load_pretrained_generator(fresh, weights, torch.device("cpu"))
    for name in GENERATOR_PARTS:
        for key, value in fresh[name].state_dict().items():
            assert torch.equal(value, state["models"][name][key]), (name, key)

    # a joint run from it: its generator after one step is the pre-trained one plus one update,
    # far closer to it than the same run from scratch
    data = load_training_set(cfg.data, progress=False)
    teacher = build_dgnet(cfg.model, data.num_classes)["appearance"]  # not read: L_prim is off at iteration 0

    def decoder_after_one_step(init: str, out: str) -> dict:
        one = replace(cfg, **{"train.iterations": 1, "train.generator_init": init})
        result = train_dgnet(one, data.images, data.labels, data.num_classes, teacher,
                             tmp_path / out, Run(None, None), progress=False)
        return io.load_checkpoint(result.checkpoint)["models"]["decoder"]

    def distance(decoder: dict) -> float:
        return sum(float((decoder[k].float() - state["models"]["decoder"][k].float()).abs().sum())
                   for k in decoder)

    from_pretrained = decoder_after_one_step(str(weights), "from_pretrained")
    from_scratch = decoder_after_one_step("scratch", "from_scratch")
    assert distance(from_pretrained) < 0.1 * distance(from_scratch)


def test_the_appearance_encoder_stays_frozen_during_pretraining(cfg, micro_data, tmp_path, one_torch_thread):
    data = load_training_set(replace(cfg, **{"data.val_ids": 0}).data, progress=False)
    run_cfg = replace(cfg, **{"train.iterations": 2, "train.warm_iter": 2, "train.id_supervision": False})
    result = train_dgnet(run_cfg, data.images, data.labels, data.num_classes, None, tmp_path / "g", Run(None, None),
                         progress=False, freeze_appearance=True)
    torch.manual_seed(run_cfg.train.seed)  # as train_dgnet seeds before building its networks
    start = {name: net.state_dict() for name, net in build_dgnet(run_cfg.model, data.num_classes).items()}
    trained = io.load_checkpoint(result.checkpoint)["models"]
    for key, value in trained["appearance"].items():
        if not key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert torch.equal(value, start["appearance"][key]), key
    assert not all(torch.equal(v, start["decoder"][k]) for k, v in trained["decoder"].items())


def test_a_missing_or_marker_generator_file_is_a_clear_error(cfg, tmp_path):
    nets = build_dgnet(cfg.model, 4)
    with pytest.raises(UserError, match=r"train.generator_init: .*missing.pt not found; run `dvc repro pretrain_gen"):
        load_pretrained_generator(nets, tmp_path / "missing.pt", torch.device("cpu"))
    marker = tmp_path / "marker.pt"
    io.save_checkpoint(marker, {"kind": "not_trained", "reason": "not trained: train.generator_init is 'scratch'"})
    with pytest.raises(UserError, match="not a pre-trained generator \\(not trained: train.generator_init is"):
        load_pretrained_generator(nets, marker, torch.device("cpu"))
