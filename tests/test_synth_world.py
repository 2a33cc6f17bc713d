"""The synthetic world: ``data.synth.world`` (classic | readable)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from dgnet.config import SynthConfig
from dgnet.data.synth import write_synthetic

TINY = SynthConfig(train_ids=5, test_ids=4, distractors=3, junk=2, images_per_camera=2,
                   cameras=3, seed=7, height=32, width=16)
# digest of the tiny classic set, computed with the code before the readable world existed
CLASSIC_TINY_SHA256 = "f3598ebdc14adcffc42b69d01d56ec0b412317e46b44c116e8911c6fe731d71c"


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_classic_world_is_unchanged(tmp_path):
    write_synthetic(tmp_path / "classic", TINY)
    assert _digest(tmp_path / "classic") == CLASSIC_TINY_SHA256
