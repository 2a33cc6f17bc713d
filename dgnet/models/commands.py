"""``dgnet model``: inspect the networks a configuration builds.

    dgnet model summary                    # params.yaml if present, else the default configuration
    dgnet model summary --config paper     # Tables 6-8 at 256x128, K = 751
    dgnet model summary --params params.yaml --classes 100 --json
"""

from __future__ import annotations

import json
from pathlib import Path

from dgnet.config import PRESET_CHAIN, Config, load_config, preset_config

# training identities of the real data sets (as published with each data set)
PUBLISHED_TRAIN_IDS = {"market1501": 751, "duke": 702, "msmt17": 1041, "cuhk03np": 767}


def default_num_classes(cfg: Config) -> int:
    """K for a summary: the published count of a real data set (751 for ``paper``, the
    Market-1501 model); for the synthetic data set its training ids less the held-out ones."""
    if cfg.data.layout in PUBLISHED_TRAIN_IDS:
        return PUBLISHED_TRAIN_IDS[cfg.data.layout]
    if cfg.name == "paper":
        return PUBLISHED_TRAIN_IDS["market1501"]
    ids = cfg.data.synth.train_ids
    return ids - cfg.data.val_ids if ids > cfg.data.val_ids else ids


def _fmt(shape: list[int]) -> str:
    return "x".join(str(s) for s in shape)


def format_summary(rows: list[dict], title: str) -> str:
    lines = [title]
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        ins = ", ".join(f"{k} {_fmt(v)}" for k, v in r["inputs"].items())
        outs = ", ".join(f"{k} {_fmt(v)}" for k, v in r["outputs"].items())
        lines.append(f"{r['name']:<{width}}  {r['params']:>12,d} params  in: {ins}")
        lines.append(f"{'':<{width}}  {'':>19}  out: {outs}")
    total = sum(r["params"] for r in rows if r["name"] != "teacher")
    lines.append(f"DG-Net total (appearance + structure + decoder + discriminator): {total:,d} params")
    return "\n".join(lines)


def _summary(args) -> int:
    from dgnet.models import model_summary

    if args.config is not None:
        cfg, source = preset_config(args.config), f"configuration {args.config!r}"
    elif args.params is not None or Path("params.yaml").is_file():
        path = args.params or "params.yaml"
        cfg, source = load_config(path), str(path)
    else:
        cfg, source = preset_config("default"), "configuration 'default' (no params.yaml here)"
    k = args.classes if args.classes is not None else default_num_classes(cfg)
    rows = model_summary(cfg.model, cfg.data.height, cfg.data.width, k)
    if args.json:
        print(json.dumps({"source": source, "height": cfg.data.height, "width": cfg.data.width,
                          "num_classes": k, "networks": rows}, indent=2))
    else:
        b = cfg.model.backbone
        title = (f"{source}: {cfg.data.height}x{cfg.data.width} input, K = {k}, "
                 f"backbone {b.arch} (last stride {b.last_stride})")
        print(format_summary(rows, title))
    return 0


def _positive_int(text: str) -> int:
    import argparse

    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def add_commands(sub) -> None:
    parser = sub.add_parser("model", help="inspect the networks")
    msub = parser.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    summ = msub.add_parser("summary", help="input/output shapes and parameter count of every network")
    source = summ.add_mutually_exclusive_group()
    source.add_argument("--config", choices=list(PRESET_CHAIN), help="a named configuration")
    source.add_argument("--params", help="a params file (default: params.yaml if present)")
    summ.add_argument("--classes", type=_positive_int, help="number of identities K (default: from the data set)")
    summ.add_argument("--json", action="store_true", help="machine-readable output")
    summ.set_defaults(func=_summary)
