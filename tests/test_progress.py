"""Progress bars: live in a terminal, a line every few percent in a log file."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from dgnet import progress

ROOT = Path(__file__).resolve().parent.parent
LOOP = """
from dgnet.progress import tqdm
bar = tqdm(range(2000), desc="train")
for i in bar:
    if i % 5 == 0:
        bar.set_postfix(loss=f"{i:.3f}")
for _ in tqdm(iter(range(50)), desc="unknown total"):
    pass
"""


def test_a_log_file_gets_one_line_every_few_percent(tmp_path):
    log = tmp_path / "stage.log"
    with open(log, "w") as fh:
        subprocess.run([sys.executable, "-c", LOOP], cwd=ROOT, stderr=fh, check=True)
    text = log.read_text()
    assert "\r" not in text
    lines = [line for line in text.splitlines() if line.startswith("train")]
    assert 15 <= len(lines) <= 1 / progress.LOG_STEP + 2, lines
    assert "2000/2000" in lines[-1] and "loss=" in lines[-1]
    assert sum("2000/2000" in line for line in lines) == 1  # the closing redraw is not a second line


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_the_live_bar():
    stream = _Terminal()
    for _ in progress.tqdm(range(300), file=stream, mininterval=0, miniters=1):
        pass
    assert stream.getvalue().count("\r") >= 100  # redrawn in place


def test_a_disabled_bar_writes_nothing():
    stream = io.StringIO()
    for _ in progress.tqdm(range(10), file=stream, disable=True):
        pass
    assert stream.getvalue() == ""
