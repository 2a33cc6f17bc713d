"""docs/cli.md's command reference, written from the ``dgnet`` argument parser so that it cannot drift.

    python -m dgnet.cli_reference            # rewrite the section between the markers of docs/cli.md
    python -m dgnet.cli_reference --check    # exit 1 when docs/cli.md differs from the parser

The section lists every command (sub-commands included), its synopsis and each argument with its help
text and default, in the parser's order.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dgnet import io
from dgnet.cli import build_parser

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
BEGIN = "<!-- command reference: written by `python -m dgnet.cli_reference`, do not edit by hand -->"
END = "<!-- end of the command reference -->"
REGENERATE = "python -m dgnet.cli_reference"


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """``(name, help, parser)`` of each sub-command of ``parser``, in the order they were added."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            return [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return []


def _metavar(action: argparse.Action) -> str:
    if action.metavar is not None:
        return str(action.metavar)
    if action.choices is not None:
        return "{" + ",".join(map(str, action.choices)) + "}"
    return action.dest if not action.option_strings else action.dest.upper()


def _usage(action: argparse.Action) -> str:
    """One argument as the synopsis writes it: ``--ids IDS``, ``[--rerank]``, ``FOLDER``, ``[X ...]``."""
    if action.option_strings:
        text = action.option_strings[-1]
        if action.nargs != 0:
            text += " " + _metavar(action)
        return text if action.required else f"[{text}]"
    name = _metavar(action)
    return {"?": f"[{name}]", "*": f"[{name} ...]", "+": f"{name} [{name} ...]"}.get(action.nargs, name)


def _help(action: argparse.Action, prog: str) -> str:
    text = action.help or ""
    if "%" in text:
        params = {**vars(action), "prog": prog}
        if action.choices is not None:
            params["choices"] = ", ".join(map(str, action.choices))
        text = text % params
    return text


def _arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions
            if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)) and a.help != argparse.SUPPRESS]


def _section(words: list[str], summary: str, parser: argparse.ArgumentParser) -> list[str]:
    prog = " ".join(words)
    synopsis = " ".join([prog, *(_usage(a) for a in _arguments(parser))])
    lines = [f"### `{prog}`", ""]
    if summary:
        lines += [summary[0].upper() + summary[1:] + ".", ""]
    lines += ["```text", synopsis, "```", ""]
    for action in _arguments(parser):
        name = ", ".join(action.option_strings) if action.option_strings else _metavar(action)
        if action.option_strings and action.nargs != 0:
            name += " " + _metavar(action)
        text = _help(action, prog)
        if action.default not in (None, False, [], argparse.SUPPRESS) and "default" not in text:
            text = f"{text} (default {action.default})" if text else f"default {action.default}"
        lines.append(f"- `{name}`" + (f": {text}" if text else ""))
    return lines + ([""] if _arguments(parser) else [])


def _walk(words: list[str], summary: str, parser: argparse.ArgumentParser) -> list[str]:
    subs = _subcommands(parser)
    if not subs:
        return _section(words, summary, parser)
    return [line for name, text, sub in subs for line in _walk([*words, name], text, sub)]


def reference() -> str:
    """The generated section, markers included."""
    parser = build_parser()
    body = [line for name, text, sub in _subcommands(parser) for line in _walk(["dgnet", name], text, sub)]
    return "\n".join([BEGIN, "", *body, END])


def updated(text: str) -> str:
    """``text`` (docs/cli.md) with its section between the markers replaced by :func:`reference`."""
    head, begin, rest = text.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"docs/cli.md: the markers {BEGIN!r} and {END!r} are missing")
    return head + reference() + tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=REGENERATE, description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the file differs from the parser")
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args(argv)
    text = args.doc.read_text()
    new = updated(text)
    if args.check:
        if new != text:
            print(f"{args.doc}: the command reference differs from the parser; run `{REGENERATE}`",
                  file=sys.stderr)
            return 1
        return 0
    if new != text:
        io.write_text(args.doc, new)
    print(f"{args.doc}: command reference {'written' if new != text else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
