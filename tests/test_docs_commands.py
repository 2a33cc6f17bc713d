"""The documentation's ``dgnet`` commands: every one quoted in README.md, docs/*.md and experiments/README.md
parses with the real argument parser (parsed only, never run), and docs/cli.md's command reference is the one
the parser writes."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from dgnet import cli_reference
from dgnet.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "experiments" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SEPARATORS = {"&&", "||", ";", "|", "&", ";;"}


def _commands(text: str) -> list[list[str]]:
    """The argument lists of each ``dgnet ...`` (or ``torchrun ... -m dgnet.cli ...``) in a shell text."""
    lexer = shlex.shlex(text.replace("\\\n", " "), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    found, current = [], []
    for token in [*lexer, ";"]:
        if token in SEPARATORS:
            while current and (current[0] in ("do", "then", "else", "time", "(")
                               or re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", current[0])):  # keywords, VAR=value
                current = current[1:]
            if current and current[0] == "dgnet":
                found.append(current[1:])
            elif "dgnet.cli" in current and current[current.index("dgnet.cli") - 1] == "-m":
                found.append(current[current.index("dgnet.cli") + 1:])
            current = []
        else:
            current.append(token)
    return found


def quoted_commands() -> list[tuple[str, list[str]]]:
    """``(where, argv)`` of every command line in a bash block, and of every inline ``dgnet ...`` span that
    passes arguments (a span of command words alone, like `dgnet tune`, names a command)."""
    out = []
    for page in PAGES:
        text = page.read_text()
        name = page.relative_to(ROOT)
        for block in re.finditer(r"```bash\n(.*?)```", text, re.S):
            line = text[: block.start()].count("\n") + 2
            for command_line in re.split(r"(?<!\\)\n", block.group(1)):
                out += [(f"{name}:{line}", argv) for argv in _commands(command_line)]
                line += command_line.count("\n") + 1
        for span in re.finditer(r"`(dgnet [^`]+)`", text):
            argv = shlex.split(span.group(1))[1:]
            if any(a.startswith("-") for a in argv) or _is_not_a_command_name(argv):
                out.append((f"{name}:{text[: span.start()].count(chr(10)) + 1}", argv))
    return out


def _is_not_a_command_name(words: list[str]) -> bool:
    parser = build_parser()
    for word in words:
        subs = next((a.choices for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict)),
                    None)
        if not subs or word not in subs:
            return True
        parser = subs[word]
    return False


def _parse_error(argv: list[str]) -> str | None:
    """None when ``dgnet argv`` parses (``--help`` counts), else argparse's message."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            build_parser().parse_args(argv)
        except SystemExit as stop:
            return None if stop.code == 0 else err.getvalue().strip().splitlines()[-1]
    return None


def test_the_pages_quote_dgnet_commands():
    found = quoted_commands()
    assert len(found) > 30
    assert any(argv[:2] == ["config", "use"] for _, argv in found)


@pytest.mark.parametrize("where,argv", quoted_commands(), ids=lambda v: v if isinstance(v, str) else None)
def test_every_quoted_dgnet_command_parses(where, argv):
    assert _parse_error(argv) is None, f"{where}: dgnet {shlex.join(argv)}: {_parse_error(argv)}"


def test_a_misspelt_command_is_caught():
    assert _commands("dgnet train --rezume && ls  # dgnet x") == [["train", "--rezume"]]
    assert _commands("for i in 1 2; do CUDA_VISIBLE_DEVICES=$i dgnet tune x & done") == [["tune", "x"]]
    assert "unrecognized arguments: --rezume" in _parse_error(["train", "--rezume"])


def test_the_cli_pages_command_reference_is_the_parsers():
    text = (ROOT / "docs" / "cli.md").read_text()
    assert cli_reference.updated(text) == text, (
        f"docs/cli.md's command reference differs from the parser: run `{cli_reference.REGENERATE}`")
    assert "### `dgnet tune apply`" in text and "### `dgnet config use`" in text
