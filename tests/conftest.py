"""Shared fixtures: the micro configuration, a tiny synthetic data set, one MLflow store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from dgnet.config import SynthConfig, config_from_dict, preset_dict, replace

ROOT = Path(__file__).resolve().parent.parent

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs two workers: one core each, not two threads each
    torch.set_num_threads(1)


LONGEST_FIRST = ("test_pipeline_micro.py", "test_rehearse.py", "test_shared_servers.py")


def pytest_collection_modifyitems(items):
    """The longest modules first: with ``--dist loadfile`` one worker runs the micro pipeline while the
    other runs the rehearsal, then the servers, and both share out the rest."""
    order = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: order.get(item.path.name, len(order)))  # a stable sort keeps the rest


@pytest.fixture(scope="session")
def micro_data(tmp_path_factory) -> Path:
    """The micro configuration's synthetic data set, written once per session."""
    from dgnet.data.synth import write_synthetic

    root = tmp_path_factory.mktemp("data") / "synth_a"
    synth = SynthConfig(**{k: v for k, v in preset_dict("micro")["data"]["synth"].items()})
    write_synthetic(root, synth)
    return root


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory) -> str:
    """One SQLite MLflow store per session (its first connection migrates the schema)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def micro_cfg(micro_data, mlflow_uri):
    """The real micro preset, pointed at the session's data and MLflow store."""
    cfg = config_from_dict(preset_dict("micro"))
    return replace(cfg, **{"data.root": str(micro_data), "tracking.uri": mlflow_uri})


@pytest.fixture
def one_torch_thread():
    """One intra-op thread: on a small shared CPU, more threads wait on each other's cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
