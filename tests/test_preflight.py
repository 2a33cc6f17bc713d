"""Preflight (dgnet/preflight.py): before any stage runs, `dgnet rehearse` and the first stage of `dvc repro`
(pipelines/prepare.py) check the device, the data roots and the ImageNet file; each failure is one
`dgnet: error:` line naming the key and the fix, exit code 2. Nothing trains here."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
import torch
import yaml

from dgnet.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _params(tmp_path: Path, **sections) -> Path:
    """The default configuration with ``sections`` merged in, as a params file."""
    params = tmp_path / "params.yaml"
    assert main(["config", "use", "default", "--params", str(params)]) == 0
    data = yaml.safe_load(params.read_text())
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    params.write_text(yaml.safe_dump(data))
    return params


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("dgnet: error: "), err
    return err[0]


def _prepare(params: Path) -> int:
    """The `prepare` stage's script, in this process (its own run_guarded decides the exit code)."""
    argv, sys.argv = sys.argv, ["pipelines/prepare.py", "--params", str(params)]
    try:
        with pytest.raises(SystemExit) as stop:
            runpy.run_path(str(ROOT / "pipelines" / "prepare.py"), run_name="__main__")
    finally:
        sys.argv = argv
    return stop.value.code


def test_a_cuda_device_without_a_gpu_names_the_key_and_the_cpu_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    params = _params(tmp_path)
    monkeypatch.chdir(ROOT)
    assert main(["rehearse", "--params", str(params), "--set", "runtime.device=cuda"]) == 2
    line = _one_error_line(capsys)
    assert "runtime.device cuda" in line and "--set runtime.device=cpu" in line, line

    monkeypatch.chdir(tmp_path)  # the first stage of `dvc repro` says the same before writing anything
    assert _prepare(_params(tmp_path, runtime={"device": "cuda"})) == 2
    assert "runtime.device cuda" in _one_error_line(capsys)
    assert not (tmp_path / "data").exists()


def test_a_missing_data_root_names_data_root(tmp_path, monkeypatch, capsys):
    params = _params(tmp_path, data={"layout": "market1501", "root": str(tmp_path / "Market")})
    monkeypatch.chdir(tmp_path)
    assert _prepare(params) == 2
    line = _one_error_line(capsys)
    assert f"data.root {tmp_path / 'Market'}: not found" in line and "--data-root" in line, line


def test_a_missing_second_data_set_names_data_transfer_root(tmp_path, monkeypatch, capsys):
    params = _params(tmp_path, data={"transfer_layout": "duke", "transfer_root": str(tmp_path / "Duke")})
    monkeypatch.chdir(ROOT)
    assert main(["rehearse", "--params", str(params)]) == 2
    line = _one_error_line(capsys)
    assert "data.transfer_root" in line and "data.transfer_layout: none" in line, line


def test_a_missing_imagenet_file_names_the_key_only_when_the_config_asks_for_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub: no ImageNet file
    model = {"backbone": {"arch": "resnet50", "pretrained": "imagenet"}}
    monkeypatch.chdir(ROOT)
    assert main(["rehearse", "--params", str(_params(tmp_path, model=model))]) == 2
    line = _one_error_line(capsys)
    assert "model.backbone.pretrained imagenet" in line and "resnet50-" in line and "none" in line, line

    from dgnet import preflight
    from dgnet.config import load_config

    preflight.check(load_config(_params(tmp_path)))  # the default's own pre-trained trunk: nothing to check
