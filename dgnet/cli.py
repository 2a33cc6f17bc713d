"""The ``dgnet`` command.

Each area registers its own sub-commands (``add_commands(subparsers)``) in a
``commands`` module beside its code (``train_commands`` and ``eval_commands``
sit here, at the top: they call the stage runs and draw report figures, which
``dgnet.train`` and ``dgnet.eval`` never import), so this file only wires them
together::

    dgnet --help
    dgnet config use market1501 --data-root /data/Market-1501-v15.09.15
    dgnet data synth --out data/synth_a --ids 120 --seed 0
    dgnet env
"""

from __future__ import annotations

import argparse
import sys

from dgnet import __version__
from dgnet.entry import run_guarded


def build_parser() -> argparse.ArgumentParser:
    from dgnet import config_commands, environment, eval_commands, rehearse, train_commands, tune_commands
    from dgnet.data import commands as data_commands
    from dgnet.models import commands as model_commands
    from dgnet.toolkit import commands as toolkit_commands

    parser = argparse.ArgumentParser(
        prog="dgnet", description="DG-Net reproducibility suite (CVPR 2019)."
    )
    parser.add_argument("--version", action="version", version=f"dgnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (config_commands, data_commands, model_commands, train_commands, eval_commands,
                   toolkit_commands, tune_commands, rehearse, environment):
        module.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. Expected failures: one ``dgnet: error:`` line, exit 2;
    Ctrl-C: one ``dgnet: interrupted:`` line, exit 130; bugs keep their traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_guarded(lambda: args.func(args))

if __name__ == "__main__":
    sys.exit(main())
