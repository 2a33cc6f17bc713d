"""``dgnet tune apply``: merge a best-params file into params.yaml, validated, written atomically."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import yaml

from dgnet.config import config_from_dict, deep_merge, flatten
from dgnet.errors import UserError


def _yaml_scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).splitlines()[0]


def _edit_scalars(text: str, changes: Mapping[str, Any]) -> str | None:
    """Replace ``section: / key: value`` lines in block-style YAML, keeping comments;
    ``None`` when a key is not found that way (flow style, deeper nesting)."""
    lines = text.splitlines(keepends=True)
    for dotted, value in changes.items():
        parts = dotted.split(".")
        if len(parts) != 2:
            return None
        section, key = parts
        start = next((i for i, line in enumerate(lines) if re.match(rf"{re.escape(section)}:\s*(#.*)?$", line)), None)
        if start is None:
            return None
        done, indent = False, None
        for i in range(start + 1, len(lines)):
            line = lines[i]
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if not line.startswith((" ", "\t")):
                break  # the next top-level section
            if indent is None:  # the section's own keys, not those of a sub-mapping
                indent = line[: len(line) - len(line.lstrip())]
            m = re.match(rf"({re.escape(indent)}{re.escape(key)}:\s*)([^#\n]*?)(\s*#.*)?(\n?)$", line)
            if m:
                new, comment = _yaml_scalar(value), m.group(3) or ""
                if comment:  # keep the comment's column where there is room
                    pad = len(comment) - len(comment.lstrip()) + len(m.group(2)) - len(new)
                    comment = " " * max(1, pad) + comment.lstrip()
                lines[i] = f"{m.group(1)}{new}{comment}{m.group(4)}"
                done = True
                break
        if not done:
            return None
    return "".join(lines)


def apply_best_params(best_path: str | Path, params_path: str | Path = "params.yaml",
                      write: bool = True) -> tuple[dict[str, Any], bool]:
    """Merge a best-params file into a params file, validated, written atomically.

    Returns the dotted changes and whether the params file's comments were kept
    (block-style files are edited line by line; others are rewritten).
    """
    best_path, params_path = Path(best_path), Path(params_path)
    for p in (best_path, params_path):
        if not p.is_file():
            raise UserError(f"{p}: file not found")
    best = yaml.safe_load(best_path.read_text()) or {}
    if not isinstance(best, dict):
        raise UserError(f"{best_path}: expected a mapping of params.yaml sections")
    text = params_path.read_text()
    merged = deep_merge(yaml.safe_load(text) or {}, best)
    config_from_dict(merged)  # a ConfigError names the offending key
    changes = flatten(best)
    edited = _edit_scalars(text, changes)
    kept = edited is not None and yaml.safe_load(edited) == merged
    if not kept:
        edited = yaml.safe_dump(merged, sort_keys=False)
    if write:
        from dgnet import io

        io.write_text(params_path, edited)
    return changes, kept
