"""DVC stage ``prepare``: write the synthetic data sets, or validate a real one.

    python pipelines/prepare.py [--params params.yaml]

Reads the ``data`` section of params.yaml. Synthetic layout: writes
``data.root`` (style A, replaced if it exists; by default data/prepared/synth_a),
``data/prepared/synth_b`` (style B, seed + 1, for the direct-transfer table)
and ``reports/figures/synth_examples.png``. Real layouts: parses the tree at
``data.root`` and opens every image (nothing is written there). Either way
``data/prepared/index.json`` records layout, root and counts, and the counts
go to ``reports/metrics/data.json``; count differences from the published
numbers are printed as warnings.
"""

from __future__ import annotations

import argparse
import sys

from dgnet import io, preflight
from dgnet.config import load_config
from dgnet.data.commands import prepare_data
from dgnet.entry import run_guarded

PREPARED_DIR = "data/prepared"
EXAMPLES_PNG = "reports/figures/synth_examples.png"
METRICS_JSON = "reports/metrics/data.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    cfg = load_config(args.params)
    preflight.check(cfg, args.params)  # the first stage: the whole run's device, weights and data, up front
    result = prepare_data(cfg.data, PREPARED_DIR, EXAMPLES_PNG, progress=sys.stderr.isatty())
    for warning in result.pop("warnings"):
        print(f"prepare: warning: {warning}", file=sys.stderr)
    io.write_json(METRICS_JSON, result)
    print(f"{METRICS_JSON}: " + ", ".join(
        f"{k} {result[k]['ids']} ids / {result[k]['images']} images" for k in ("train", "query", "gallery")))
    return 0


if __name__ == "__main__":
    sys.exit(run_guarded(main))
