"""Issue 15: every bad input through the real CLI ends in one line, exit code 2.

Each row of ``CASES`` builds a bad input, runs ``dgnet.cli.main`` on it (the
function the ``dgnet`` script calls) and checks that stderr is exactly one
``dgnet: error: ...`` line naming the culprit (file, key or line). One row
also runs as a separate ``python -m dgnet.cli`` process, for the exit code
itself. The table runs in well under a minute on the micro configuration.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from dgnet.cli import main
from dgnet.config import config_from_dict, config_to_dict, preset_dict, replace
from dgnet.models import build_dgnet, build_teacher
from dgnet import checkpoint

ROOT = Path(__file__).resolve().parent.parent


class Inputs:
    """The bad (and good) files the table refers to, made once per module."""

    def __init__(self, base: Path, data_root: Path):
        self.base = base
        cfg = config_from_dict(preset_dict("micro"))
        self.cfg = replace(cfg, **{"data.root": str(data_root), "tracking.uri": "none"})
        self.data_root = data_root
        self.classes = len({p.name.split("_")[0] for p in (data_root / "bounding_box_train").iterdir()})
        self.params = self.write_params("params.yaml", config_to_dict(self.cfg))
        self.teacher = self.teacher_file("teacher.pt", self.classes)

    def path(self, name: str) -> Path:
        return self.base / name

    def write_params(self, name: str, data) -> Path:
        path = self.path(name)
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
        return path

    def params_with(self, name: str, section: str, key: str, text: str) -> Path:
        """A valid params file with ``section.key`` set to the YAML ``text``."""
        lines = yaml.safe_dump(config_to_dict(self.cfg)).splitlines()
        out, inside = [], False
        for line in lines:
            if not line.startswith(" "):
                inside = line == f"{section}:"
            if inside and line.strip().startswith(f"{key}:"):
                line = line.split(":")[0] + ": " + text
            out.append(line)
        return self.write_params(name, "\n".join(out) + "\n")

    def teacher_file(self, name: str, classes: int) -> Path:
        torch.manual_seed(0)
        model = build_teacher(self.cfg.model, classes)
        path = self.path(name)
        checkpoint.save(path, checkpoint.make_state("teacher", self.cfg, classes, 0, {"teacher": model}))
        return path

    def dgnet_state(self, cfg=None) -> dict:
        cfg = cfg or self.cfg
        torch.manual_seed(0)
        nets = build_dgnet(cfg.model, self.classes)
        return checkpoint.make_state("dgnet", cfg, self.classes, 1, nets)

    def garbage(self, name: str) -> Path:
        path = self.path(name)
        path.write_bytes(b"PK\x03\x04 not a checkpoint at all")
        return path

    def train_argv(self, out: str, *extra: str, params: Path | None = None, teacher: Path | None = None):
        out_dir = self.path(out)
        return ["train", "--params", str(params or self.params), "--teacher", str(teacher or self.teacher),
                "--out", str(out_dir), "--figure", str(out_dir / "s.png"), "--metrics", str(out_dir / "m.json"),
                "--quiet", *extra]

    def resume_from(self, out: str, state: dict) -> list[str]:
        (self.path(out)).mkdir()
        torch.save(state, self.path(out) / "last.pt")
        return self.train_argv(out, "--resume")

    def image(self) -> bytes:
        return next((self.data_root / "bounding_box_train").glob("*.jpg")).read_bytes()

    def market(self, name: str, train_names: list[str], links: dict[str, str] | None = None) -> Path:
        root = self.path(name)
        for folder in ("bounding_box_train", "bounding_box_test", "query"):
            (root / folder).mkdir(parents=True)
        for file in train_names:
            (root / "bounding_box_train" / file).write_bytes(self.image())
        (root / "query" / "0002_c1s1_000002_01.jpg").write_bytes(self.image())
        (root / "bounding_box_test" / "0002_c2s1_000003_01.jpg").write_bytes(self.image())
        for link, target in (links or {}).items():
            os.symlink(target, root / "bounding_box_test" / link)
        return root

    def msmt17(self, name: str, lists: dict[str, bytes | str]) -> Path:
        """An MSMT17 tree with one image per list unless ``lists`` overrides a list's text."""
        root = self.path(name)
        files = {"train": ["0000/0000_000_01_0303morning_0015_0.jpg", "0001/0001_000_02_0303morning_0016_0.jpg"],
                 "test": ["0000/0000_000_01_0303morning_0017_0.jpg", "0000/0000_001_02_0303morning_0018_0.jpg"]}
        for folder, rels in files.items():
            for rel in rels:
                (root / folder / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / folder / rel).write_bytes(self.image())
        default = {"list_train.txt": f"{files['train'][0]} 0\n", "list_val.txt": f"{files['train'][1]} 1\n",
                   "list_query.txt": f"{files['test'][0]} 0\n", "list_gallery.txt": f"{files['test'][1]} 0\n"}
        for list_name, text in {**default, **lists}.items():
            data = text.encode() if isinstance(text, str) else text
            (root / list_name).write_bytes(data)
        return root


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, micro_data) -> Inputs:
    return Inputs(tmp_path_factory.mktemp("bad_input"), micro_data)


def _nonfinite_dgnet(i: Inputs) -> Path:
    state = i.dgnet_state()
    bn = next(k for k in state["models"]["appearance"] if k.endswith("running_var"))
    state["models"]["appearance"][bn] = torch.full_like(state["models"]["appearance"][bn], float("inf"))
    path = i.path("diverged.pt")
    torch.save(state, path)  # as an older version wrote it (today's save refuses it)
    return path


def _corrupt_resume(i: Inputs) -> list[str]:
    i.path("r1").mkdir()
    i.garbage("r1/last.pt")
    return i.train_argv("r1", "--resume")


def _without_decoder(i: Inputs) -> list[str]:
    state = i.dgnet_state()
    del state["models"]["decoder"]
    return i.resume_from("no_decoder", state)


def _not_a_folder(i: Inputs) -> list[str]:
    blocker = i.path("a_file")
    blocker.write_text("I am a file, not a folder")
    return ["train-teacher", "--params", str(i.params), "--out", str(blocker / "teacher.pt"),
            "--metrics", str(i.path("tm.json")), "--quiet"]


def _read_only(i: Inputs) -> list[str]:
    folder = i.path("read_only")
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root ignores modes: an immutable folder stops root too
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("cannot make a folder read-only here")
    return ["train-teacher", "--params", str(i.params), "--out", str(folder / "teacher.pt"),
            "--metrics", str(i.path("tm2.json")), "--quiet"]


def _diverging(i: Inputs) -> list[str]:
    params = i.write_params("huge_lr.yaml", config_to_dict(replace(i.cfg, **{
        "train.lr_appearance": 1e30, "train.lr_generator": 1e30, "train.lr_discriminator": 1e30,
        "train.iterations": 20, "train.checkpoint_every": 100})))
    return i.train_argv("diverging", params=params)


TRAIN = "0000/0000_000_01_0303morning_0015_0.jpg"
TEST = "0000/0000_000_01_0303morning_0017_0.jpg"

# (id, argv builder, substrings the one error line must hold)
CASES = [
    ("empty params file", lambda i: ["train-teacher", "--params", str(i.write_params("empty.yaml", ""))],
     ["empty.yaml", "empty"]),
    ("params not a mapping", lambda i: ["train", "--params", str(i.write_params("list.yaml", "- 1\n- 2\n"))],
     ["list.yaml", "mapping"]),
    ("nan alpha", lambda i: ["train", "--params", str(i.params_with("nan.yaml", "train", "alpha", ".nan"))],
     ["nan.yaml", "train.alpha", "finite"]),
    ("inf learning rate", lambda i: ["train", "--params", str(i.params_with("inf.yaml", "train", "lr_generator",
                                                                             ".inf"))],
     ["train.lr_generator", "finite"]),
    ("device banana", lambda i: ["train-teacher", "--params",
                                 str(i.params_with("banana.yaml", "runtime", "device", "banana"))],
     ["banana.yaml", "runtime.device", "banana"]),
    ("corrupt checkpoint to evaluate", lambda i: ["evaluate", "--checkpoint", str(i.garbage("bad.pt")),
                                                  "--data-root", str(i.data_root), "--quiet"],
     ["bad.pt", "not a readable checkpoint"]),
    ("non-finite weights to evaluate", lambda i: ["evaluate", "--checkpoint", str(_nonfinite_dgnet(i)),
                                                  "--data-root", str(i.data_root), "--quiet"],
     ["diverged.pt", "non-finite", "running_var"]),
    ("corrupt teacher", lambda i: i.train_argv("t1", teacher=i.garbage("bad_teacher.pt")),
     ["bad_teacher.pt", "not a readable checkpoint"]),
    ("teacher with the wrong class count", lambda i: i.train_argv("t2", teacher=i.teacher_file("t3.pt", 3)),
     ["t3.pt", "3 classes"]),
    ("corrupt --resume file", _corrupt_resume, ["r1/last.pt", "not a readable checkpoint"]),
    ("--resume with another seed", lambda i: i.resume_from("r2", i.dgnet_state(replace(i.cfg, **{"train.seed": 99}))),
     ["r2/last.pt", "train.seed: 99 in the checkpoint, 0 now"]),
    ("--resume without decoder weights", _without_decoder, ["no_decoder/last.pt", "'decoder'"]),
    ("output under a regular file", _not_a_folder, ["a_file", "cannot write"]),
    ("read-only output folder", _read_only, ["read_only", "cannot write"]),
    ("MLflow server down", lambda i: ["train-teacher", "--quiet", "--out", str(i.path("t4.pt")), "--metrics",
                                      str(i.path("t4.json")), "--params",
                                      str(i.params_with("mlflow.yaml", "tracking", "uri", "http://127.0.0.1:9"))],
     ["tracking.uri http://127.0.0.1:9", "does not answer"]),
    ("divergence", _diverging, ["iteration", "training stopped", "no checkpoint was written"]),
    ("MSMT17 list not UTF-8", lambda i: ["data", "check", "--layout", "msmt17", str(i.msmt17(
        "m1", {"list_train.txt": f"{TRAIN} 0\n".encode() + b"caf\xe9/x.jpg 1\n"}))],
     ["list_train.txt line 2", "UTF-8"]),
    ("MSMT17 duplicate line", lambda i: ["data", "check", "--layout", "msmt17", str(i.msmt17(
        "m2", {"list_train.txt": f"{TRAIN} 0\n{TRAIN} 0\n"}))],
     ["list_train.txt line 2", "listed again", "line 1"]),
    ("MSMT17 one image under two ids", lambda i: ["data", "check", "--layout", "msmt17", str(i.msmt17(
        "m3", {"list_train.txt": f"{TRAIN} 0\n{TRAIN} 7\n"}))],
     ["list_train.txt line 2", "pid 7 here and pid 0"]),
    ("MSMT17 test image in train", lambda i: ["data", "check", "--layout", "msmt17", str(i.msmt17(
        "m4", {"list_val.txt": f"../test/{TEST} 1\n"}))],
     ["list_query.txt line 1", "list_val.txt line 1"]),
    ("dangling symlink", lambda i: ["data", "check", "--layout", "market1501", str(i.market(
        "k1", ["0001_c1s1_000001_01.jpg"], links={"0003_c3s1_000004_01.jpg": "/nowhere/x.jpg"}))],
     ["0003_c3s1_000004_01.jpg", "dangling symbolic link"]),
    ("Unicode digits in an id", lambda i: ["data", "check", "--layout", "market1501", str(i.market(
        "k2", ["0001_c1s1_000001_01.jpg", "\u0660\u0660\u0660\u0661_c1s1_000001_02.jpg"]))],
     ["\u0660\u0660\u0660\u0661_c1s1_000001_02.jpg", "does not parse"]),
]


@pytest.mark.parametrize("build, culprits", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_code_2(inputs, build, culprits, capsys, one_torch_thread):
    argv = build(inputs)
    capsys.readouterr()
    try:
        code = main(argv)
    finally:
        folder = inputs.path("read_only")
        if folder.exists():
            subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("dgnet: error: ")
    for culprit in culprits:
        assert culprit in lines[0], lines[0]


def test_the_process_exits_2_with_one_line(inputs):
    """The table above calls ``main`` in-process; this one row runs the real ``python -m dgnet.cli`` process."""
    build, culprits = next(c[1:] for c in CASES if c[0] == "device banana")
    done = subprocess.run([sys.executable, "-m", "dgnet.cli", *build(inputs)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("dgnet: error: ") and all(c in lines[0] for c in culprits)


def test_a_partial_params_file_means_the_default_preset(tmp_path):
    from dgnet.config import ConfigError, load_config, preset_config

    path = tmp_path / "params.yaml"
    path.write_text("train:\n  alpha: 0.3\n  lr_generator: 1e-3\n")  # YAML 1.1 reads 1e-3 as a string
    cfg = load_config(path)
    default = preset_config("default")
    assert cfg.train.alpha == 0.3 and cfg.train.lr_generator == 0.001
    assert cfg.train.iterations == default.train.iterations and cfg.data == default.data
    with pytest.raises(ConfigError, match="empty"):
        path.write_text("# nothing here\n")
        load_config(path)


def test_bugs_keep_their_traceback(monkeypatch):
    from dgnet import train_commands as commands

    def buggy(args):
        raise ZeroDivisionError("a real bug")

    monkeypatch.setattr(commands, "_train_teacher", buggy)
    with pytest.raises(ZeroDivisionError):
        main(["train-teacher"])


@pytest.mark.parametrize("script", ["prepare.py", "teacher.py", "train_dgnet.py"])
def test_a_pipeline_stage_exits_2_with_one_line(tmp_path, script, monkeypatch, capsys):
    """A DVC stage script on a bad params.yaml, run as ``__main__`` (what ``python pipelines/<script>`` runs):
    the same one line as the CLI, not a traceback."""
    (tmp_path / "params.yaml").write_text("train:\n  alhpa: 0.3\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [script])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(ROOT / "pipelines" / script), run_name="__main__")
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exit_.value.code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("dgnet: error: ") and "alhpa" in lines[0], lines[0]
