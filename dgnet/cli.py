"""The ``dgnet`` command.

Each area registers its own sub-commands (``add_commands(subparsers)``) in a
``commands`` module beside its code, so this file only wires them together::

    dgnet --help
    dgnet config use market1501 --data-root /data/Market-1501-v15.09.15
    dgnet data synth --out data/synth_a --ids 120 --seed 0
"""

from __future__ import annotations

import argparse
import sys

from dgnet import __version__
from dgnet.errors import user_message


def build_parser() -> argparse.ArgumentParser:
    from dgnet import config_commands, tune_commands
    from dgnet.data import commands as data_commands
    from dgnet.eval import commands as eval_commands
    from dgnet.models import commands as model_commands
    from dgnet.train import commands as train_commands
    from dgnet.toolkit import commands as toolkit_commands

    parser = argparse.ArgumentParser(
        prog="dgnet", description="DG-Net reproducibility suite (CVPR 2019)."
    )
    parser.add_argument("--version", action="version", version=f"dgnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (config_commands, data_commands, model_commands, train_commands, eval_commands,
                   toolkit_commands, tune_commands):
        module.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. Expected failures: one ``dgnet: error:`` line, exit 2;
    Ctrl-C: one ``dgnet: interrupted:`` line, exit 130; bugs keep their traceback."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except KeyboardInterrupt as err:
        kept = str(err) or "every output is written atomically, so each file is complete or untouched"
        print(f"dgnet: interrupted: {kept}", file=sys.stderr)
        return 130
    except Exception as err:
        message = user_message(err)
        if message is None:
            raise
        print(f"dgnet: error: {' '.join(message.split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
