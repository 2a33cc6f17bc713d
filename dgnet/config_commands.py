"""``dgnet config``: switch params.yaml between named configurations, or check it.

    dgnet config use market1501 --data-root /data/Market-1501-v15.09.15
    dgnet config use default
    dgnet config use micro --set train.iterations=12
    dgnet config check [params.yaml]
"""

from __future__ import annotations

from pathlib import Path

import yaml

from dgnet import io
from dgnet.config import PRESET_CHAIN, config_from_dict, load_config, preset_dict, set_keys

HEADER = (
    "# Written by `dgnet config use {name}`; every key is documented in configs/default.yaml.\n"
    "# Edit values here (or with `dvc exp run -S key=value`); dgnet/config.py validates them.\n"
)


def use_preset(name: str, out: Path, data_root: str | None = None, device: str | None = None,
               overrides: list[str] | None = None) -> dict:
    params = preset_dict(name)
    if data_root is not None:
        params["data"]["root"] = data_root
    if device is not None:
        params.setdefault("runtime", {})["device"] = device
    set_keys(params, overrides or [])
    config_from_dict(params)
    io.write_text(out, HEADER.format(name=name) + yaml.safe_dump(params, sort_keys=False))
    return params


def _use(args) -> int:
    use_preset(args.name, Path(args.params), args.data_root, args.device, args.set)
    print(f"{args.params}: now the {args.name!r} configuration")
    return 0


def _check(args) -> int:
    cfg = load_config(args.params)
    print(f"{args.params}: valid ({cfg.name}: {cfg.data.layout} at {cfg.data.root}, "
          f"{cfg.data.height}x{cfg.data.width}, backbone {cfg.model.backbone.arch})")
    return 0


def add_commands(sub) -> None:
    parser = sub.add_parser("config", help="switch or check params.yaml")
    csub = parser.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    use = csub.add_parser("use", help="write a named configuration to params.yaml")
    use.add_argument("name", choices=list(PRESET_CHAIN))
    use.add_argument("--data-root", help="data-set root (real data sets)")
    use.add_argument("--device", help="runtime.device, e.g. cuda or cpu")
    use.add_argument("--params", default="params.yaml")
    use.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="change one key of the written configuration (repeatable), e.g. train.iterations=12")
    use.set_defaults(func=_use)
    check = csub.add_parser("check", help="validate a params file")
    check.add_argument("params", nargs="?", default="params.yaml")
    check.set_defaults(func=_check)
