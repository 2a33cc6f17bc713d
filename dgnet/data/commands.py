"""``dgnet data``: write the synthetic pedestrians, check a data-set tree.

    dgnet data synth --out data/synth_a --ids 60 --seed 0 [--style A|B] [--world readable|classic] [--size 128x64] [--force]
    dgnet data check --layout market1501 /data/Market-1501-v15.09.15 [--json]
    dgnet data check --layout cuhk03np /data/cuhk03-np --subset detected

``check`` parses the tree, opens every image, prints ids and images per split
(``--json``: exactly ``{"train": {"ids", "images"}, "query": ..., "gallery": ...}``)
and prints count differences from the published numbers to stderr as warnings.
A bad tree exits non-zero with one line naming the folder or file.

:func:`prepare_data` is the core of the DVC ``prepare`` stage.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict
from pathlib import Path

from dgnet import io
from dgnet.config import DataConfig, SynthConfig, config_from_dict, replace
from dgnet.data.layouts import LAYOUTS, check_layout
from dgnet.data.synth import save_example_grid, write_synthetic
from dgnet.errors import UserError

SPLITS = ("train", "query", "gallery")


def prepare_data(
    cfg: DataConfig,
    prepared_dir: str | Path = "data/prepared",
    examples_png: str | Path | None = "reports/figures/synth_examples.png",
    progress: bool = False,
) -> dict:
    """Write (synthetic) or validate (real layouts) the data set of ``cfg``; return the counts.

    Synthetic: ``cfg.root`` is replaced by a fresh set from ``cfg.synth``; a
    style-B copy (same settings, seed + 1) goes to ``prepared_dir/synth_b``
    (the second domain of the direct-transfer table) and an example grid to
    ``examples_png``. Real layouts: the tree at ``cfg.root`` is parsed and every
    image opened (nothing is written there). Either way ``prepared_dir/index.json``
    records the layout, root and counts. Returns ``{"train"|"query"|"gallery":
    {"ids", "images"}, "warnings": [...]}`` plus ``"synth_b"`` (same split counts)
    for the synthetic layout.
    """
    prepared_dir = Path(prepared_dir)
    synth_b_root = None
    if cfg.layout == "synthetic":
        write_synthetic(Path(cfg.root), cfg.synth, overwrite=True)
        result = check_layout("synthetic", cfg.root)
        synth_b_root = prepared_dir / "synth_b"
        b_cfg = replace(cfg.synth, style="B", seed=cfg.synth.seed + 1)
        write_synthetic(synth_b_root, b_cfg, overwrite=True)
        b = check_layout("synthetic", synth_b_root)
        result["synth_b"] = {k: b[k] for k in SPLITS}
        result["warnings"] += [f"synth_b: {w}" for w in b["warnings"]]
        if examples_png is not None:
            save_example_grid(cfg.root, examples_png)
    else:
        result = check_layout(cfg.layout, cfg.root, cfg.cuhk03_subset, progress=progress)
        if examples_png is not None:  # the same figure for a real data set (a DVC output either way)
            save_example_grid(cfg.root, examples_png, layout=cfg.layout, cuhk03_subset=cfg.cuhk03_subset)
    index = {
        "layout": cfg.layout, "root": cfg.root, "cuhk03_subset": cfg.cuhk03_subset,
        "counts": {k: result[k] for k in SPLITS},
        "synth_b": None if synth_b_root is None else str(synth_b_root),
        "synth_b_counts": result.get("synth_b"),
        "warnings": result["warnings"],
    }
    io.write_json(prepared_dir / "index.json", index)
    return result


# ---------------------------------------------------------------- CLI


def _parse_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)[xX](\d+)", text)
    if m is None:
        raise UserError(f"--size: expected HEIGHTxWIDTH such as 128x64, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def _synth(args) -> int:
    values = asdict(SynthConfig())
    values.update(train_ids=args.ids, test_ids=args.ids, seed=args.seed, style=args.style, world=args.world)
    if args.size:
        values["height"], values["width"] = _parse_size(args.size)
    cfg = config_from_dict({"data": {"synth": values}}).data.synth  # validated
    out = Path(args.out)
    if out.exists() and not args.force:
        raise UserError(f"{out}: already exists; pass --force to replace it")
    summary = write_synthetic(out, cfg, overwrite=args.force)
    counts = ", ".join(f"{k} {summary[k]['ids']} ids / {summary[k]['images']} images"
                       for k in ("train", "query", "gallery", "gt_bbox"))
    print(f"{out}: synthetic pedestrians, style {cfg.style}, seed {cfg.seed}, "
          f"{cfg.height}x{cfg.width}: {counts}")
    if args.grid:
        save_example_grid(out, args.grid)
        print(f"{args.grid}: example grid")
    return 0


def _check(args) -> int:
    result = check_layout(args.layout, args.root, args.subset, progress=sys.stderr.isatty())
    for warning in result["warnings"]:
        print(f"dgnet: warning: {warning}", file=sys.stderr)
    counts = {k: result[k] for k in SPLITS}
    if args.json:
        print(json.dumps(counts))
    else:
        for split in SPLITS:
            print(f"{split:8s} {counts[split]['ids']:6d} ids {counts[split]['images']:7d} images")
    return 0


def add_commands(sub) -> None:
    parser = sub.add_parser("data", help="write the synthetic data set or check a data-set tree")
    dsub = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    synth = dsub.add_parser("synth", help="write synthetic pedestrians in Market-1501 layout")
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--ids", type=int, default=SynthConfig.train_ids,
                       help="number of training ids (and of test ids)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--style", choices=("A", "B"), default="A", help="camera/background domain")
    synth.add_argument("--world", choices=("classic", "readable"), default="readable",
                       help="how people are drawn (docs/synthetic_world.md)")
    synth.add_argument("--size", help="stored image size HEIGHTxWIDTH (default 128x64)")
    synth.add_argument("--force", action="store_true", help="replace an existing output folder")
    synth.add_argument("--grid", help="also save an example grid PNG here")
    synth.set_defaults(func=_synth)

    check = dsub.add_parser("check", help="parse a data-set tree, open every image, print counts")
    check.add_argument("--layout", required=True, choices=LAYOUTS)
    check.add_argument("root", help="data-set root folder")
    check.add_argument("--subset", choices=("labeled", "detected"), default="labeled",
                       help="CUHK03-NP subset")
    check.add_argument("--json", action="store_true", help="print the counts as JSON")
    check.set_defaults(func=_check)
