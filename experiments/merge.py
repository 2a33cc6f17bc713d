"""``dgnet tune apply``: merge a best-params file into params.yaml, validated, written atomically."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from dgnet.config import config_from_dict, deep_merge, flatten
from dgnet.errors import UserError


def _round_trip() -> YAML:
    """ruamel.yaml's round trip: comments, key order, flow style and quotes come back as they were."""
    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 4096  # never fold a long line the file did not fold
    return rt


def apply_best_params(best_path: str | Path, params_path: str | Path = "params.yaml",
                      write: bool = True) -> dict[str, Any]:
    """Merge a best-params file into a params file, validated, written atomically.

    Only the best-params values change; the rest of the file (comments, order,
    layout) stays as it was. Returns the dotted changes.
    """
    best_path, params_path = Path(best_path), Path(params_path)
    for p in (best_path, params_path):
        if not p.is_file():
            raise UserError(f"{p}: file not found")
    best = yaml.safe_load(best_path.read_text()) or {}
    if not isinstance(best, dict):
        raise UserError(f"{best_path}: expected a mapping of params.yaml sections")
    text = params_path.read_text()
    config_from_dict(deep_merge(yaml.safe_load(text) or {}, best))  # a ConfigError names the offending key
    changes = flatten(best)
    rt = _round_trip()
    doc = rt.load(text) or CommentedMap()
    for dotted, value in changes.items():
        *heads, last = dotted.split(".")
        node = doc
        for head in heads:
            node = node.setdefault(head, CommentedMap())
        node[last] = value
    if write:
        from dgnet import io  # (imports torch: kept out of this module's import)

        out = StringIO()
        rt.dump(doc, out)
        io.write_text(params_path, out.getvalue())
    return changes
