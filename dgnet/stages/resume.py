"""In-progress trainings of the DVC stages, kept where DVC does not delete them, so a rerun continues.

    progress = InProgress("models/dgnet", inputs)   # .resume/models/dgnet/
    resume = progress.start()                       # True: models/dgnet/last.pt is the killed run's state
    ... train_dgnet(..., resume=resume); after each checkpoint: progress.keep(iteration, curve) ...
    progress.finish()

DVC deletes a stage's outputs before it runs it, so the periodic checkpoint
``models/NAME/last.pt`` of a killed training (SIGKILL, a pre-empted node,
Ctrl-C) would be gone when ``dvc repro`` reruns the stage. Each checkpoint is
therefore also linked (a hard link: no copy) under ``.resume/`` (ignored by
git and DVC), with the training curve so far and the run's inputs: the
checkpoint's stored configuration and the digests of the files it starts
from (teacher, warm-up checkpoint, pre-trained generator) and of the training
set's file list. A rerun whose inputs are the same continues from there
(``dgnet train --resume``'s exact continuation: the finished checkpoint is
byte-identical to an uninterrupted run's); one whose inputs differ starts
afresh. Either way it says so in one line. A finished training removes its
folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from dgnet import checkpoint, io
from dgnet.config import Config, flatten

RESUME_DIR = Path(".resume")


def file_digest(path: str | Path | None) -> str | None:
    """sha256 of a file (None for no file)."""
    if path is None or not Path(path).is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def training_inputs(cfg: Config, samples: list, starts_from: dict[str, str | Path | None]) -> dict[str, Any]:
    """What a DG-Net training's result depends on: its stored config, the files it starts from, its data."""
    files = hashlib.sha256(json.dumps([[str(s.path), int(s.pid), int(s.camid)] for s in samples]).encode())
    return {"config": checkpoint.stored_config("dgnet", cfg),
            "files": {name: file_digest(path) for name, path in starts_from.items()},
            "training_set": files.hexdigest()}


def _differences(before: dict, now: dict) -> list[str]:
    config = [k for k in sorted(set(flatten(before.get("config", {}))) | set(flatten(now["config"])))
              if flatten(before.get("config", {})).get(k) != flatten(now["config"]).get(k)]
    files = [f"the {name} file" for name in sorted(now["files"])
             if before.get("files", {}).get(name) != now["files"][name]]
    data = ["the training set"] if before.get("training_set") != now["training_set"] else []
    return config + files + data


class InProgress:
    """The ``.resume/`` folder of one training whose checkpoint is ``out_dir/last.pt``."""

    def __init__(self, out_dir: str | Path, inputs: dict[str, Any], name: str = "train"):
        self.out = Path(out_dir) / "last.pt"
        self.folder = RESUME_DIR / Path(out_dir).as_posix().lstrip("/")
        self.kept = self.folder / "last.pt"
        self.inputs = json.loads(json.dumps(inputs))  # as it reads back from JSON
        self.name = name
        self.iteration = 0  # where a resumed run continues

    def _say(self, line: str) -> None:
        print(f"{self.name}: {line}", file=sys.stderr, flush=True)

    def start(self) -> bool:
        """Put a killed run's checkpoint back at ``out_dir/last.pt`` when its inputs are these (True);
        otherwise clear the folder. Then record the inputs of this run."""
        resume = False
        if self.kept.is_file():
            try:
                before = json.loads((self.folder / "inputs.json").read_text())
                differ = _differences(before, self.inputs)
                self.iteration = 0 if differ else _iteration(self.kept)
            except Exception:  # a folder left half-written (torch raises several types): nothing to continue
                differ = ["an unreadable state"]
            if differ:
                shown = ", ".join(differ[:5]) + (f" (+{len(differ) - 5} more)" if len(differ) > 5 else "")
                self._say(f"starting afresh: the in-progress checkpoint {self.kept} was made with other "
                          f"inputs ({shown})")
            else:
                _link(self.kept, self.out)
                self._say(f"resuming from the in-progress checkpoint {self.kept} (iteration {self.iteration}; "
                          f"same configuration and inputs)")
                resume = True
        if not resume:
            shutil.rmtree(self.folder, ignore_errors=True)
        io.write_json(self.folder / "inputs.json", self.inputs)
        return resume

    def history(self) -> dict[int, dict[str, float]]:
        """The training curve the killed run had logged up to its checkpoint."""
        path = self.folder / "curve.json"
        if not path.is_file():
            return {}
        rows = json.loads(path.read_text())["history"].items()
        return {int(step): row for step, row in rows if int(step) <= self.iteration}

    def keep(self, iteration: int, history: dict[int, dict[str, float]]) -> None:
        """Link the checkpoint just written at ``iteration`` (and the curve up to it) into the folder."""
        if not self.out.is_file():
            return
        io.write_json(self.folder / "curve.json", {"history": {
            str(step): row for step, row in history.items() if step <= iteration}})
        _link(self.out, self.kept)  # after the curve: a kept checkpoint always has its curve

    def finish(self) -> None:
        """The training finished: nothing to resume."""
        shutil.rmtree(self.folder, ignore_errors=True)
        for parent in self.folder.parents:  # the now empty folders above, up to .resume/ itself
            if parent == RESUME_DIR.parent or not parent.is_dir() or any(parent.iterdir()):
                break
            parent.rmdir()


def _iteration(path: Path) -> int:
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["iteration"])


def _link(source: Path, dest: Path) -> None:
    """``dest`` becomes ``source``'s content, atomically: a hard link where the file system allows, else a copy."""
    tmp = dest.with_name(f".{dest.name}.link.tmp")
    tmp.unlink(missing_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, dest)
