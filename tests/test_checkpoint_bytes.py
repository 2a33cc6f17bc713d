"""Checkpoints are byte-identical when their content is, and store only the config their networks depend on."""

from __future__ import annotations

import hashlib

import torch

from dgnet.config import replace
from dgnet.models import build_teacher
from dgnet import checkpoint


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _teacher_state(cfg):
    torch.manual_seed(0)
    model = build_teacher(cfg.model, 5)
    return checkpoint.make_state("teacher", cfg, 5, 3, {"teacher": model})


def test_the_same_state_gives_the_same_bytes_whatever_the_file_is_called(micro_cfg, tmp_path):
    state = _teacher_state(micro_cfg)
    checkpoint.save(tmp_path / "a" / "teacher.pt", state)
    checkpoint.save(tmp_path / "b" / "other_name.pt", state)
    checkpoint.save(tmp_path / "b" / "other_name.pt", state)  # over an existing file
    assert _digest(tmp_path / "a" / "teacher.pt") == _digest(tmp_path / "b" / "other_name.pt")


def test_other_weights_give_other_bytes(micro_cfg, tmp_path):
    state = _teacher_state(micro_cfg)
    checkpoint.save(tmp_path / "a.pt", state)
    state["models"]["teacher"] = {k: v + 1 if v.is_floating_point() else v for k, v in state["models"]["teacher"].items()}
    checkpoint.save(tmp_path / "b.pt", state)
    assert _digest(tmp_path / "a.pt") != _digest(tmp_path / "b.pt")


def test_keys_the_teacher_does_not_depend_on_leave_its_file_unchanged(micro_cfg, tmp_path):
    checkpoint.save(tmp_path / "a.pt", _teacher_state(micro_cfg))
    unrelated = replace(micro_cfg, **{"eval.beta": 1.0, "train.alpha": 0.9, "sweep.betas": [3.0],
                                      "tracking.experiment": "other", "runtime.threads": 2,
                                      "data.transfer_root": "elsewhere", "model.decoder.mlp_hidden": 8})
    checkpoint.save(tmp_path / "b.pt", _teacher_state(unrelated))
    assert _digest(tmp_path / "a.pt") == _digest(tmp_path / "b.pt")
    related = replace(micro_cfg, **{"teacher.lr": 0.123})
    checkpoint.save(tmp_path / "c.pt", _teacher_state(related))
    assert _digest(tmp_path / "a.pt") != _digest(tmp_path / "c.pt")


def test_a_dgnet_checkpoint_keeps_the_training_sections_only(micro_cfg):
    stored = checkpoint.stored_config("dgnet", micro_cfg)
    assert set(stored) == {"data", "model", "runtime", "train"}
    assert "threads" not in stored["runtime"] and "transfer_root" not in stored["data"]
    assert checkpoint.stored_config("dgnet", replace(micro_cfg, **{"eval.beta": 2.0})) == stored
    assert checkpoint.stored_config("dgnet", replace(micro_cfg, **{"train.alpha": 0.7})) != stored


def test_a_teacher_with_a_partial_stored_config_loads(micro_cfg, tmp_path):
    checkpoint.save(tmp_path / "t.pt", _teacher_state(micro_cfg))
    model, classes = checkpoint.load_teacher(tmp_path / "t.pt", torch.device("cpu"))
    assert classes == 5
    images = torch.zeros(2, 3, micro_cfg.data.height, micro_cfg.data.width)
    assert model(images).logits.shape == (2, 5)


def test_a_reloaded_state_gives_the_bytes_of_the_state_it_was_saved_from(micro_cfg, tmp_path):
    """A resumed run saves optimizer groups that went through torch.load: their keys are other string
    objects than a fresh run's (pickle writes the object graph), the bytes must not change."""
    from dgnet import io

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    state = {"config": {"weight_decay": 5e-4, "momentum": 0.9}, "optimizers": {"a": opt.state_dict()},
             "models": {"a": model.state_dict()}}
    checkpoint.save(tmp_path / "fresh.pt", state)
    reloaded = torch.load(tmp_path / "fresh.pt", weights_only=True)
    opt.load_state_dict(reloaded["optimizers"]["a"])
    model.load_state_dict(reloaded["models"]["a"])
    again = {"config": reloaded["config"], "optimizers": {"a": opt.state_dict()}, "models": {"a": model.state_dict()}}
    checkpoint.save(tmp_path / "again.pt", again)
    assert _digest(tmp_path / "again.pt") == _digest(tmp_path / "fresh.pt")
    assert io.checkpoint_bytes(again) == io.checkpoint_bytes(state)
