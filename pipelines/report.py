"""DVC stage ``report``: the remaining tables, Figure 8 and reports/README.md from the metrics files."""

import sys

from dgnet import tracking
from dgnet.config import config_to_dict, load_config
from dgnet.entry import run_guarded
from dgnet.reports.build import build_reports


def main() -> None:
    cfg = load_config("params.yaml")
    with tracking.start_run(cfg.tracking, "report", params=config_to_dict(cfg)) as run:
        build_reports(cfg)
        run.log_artifact("reports/README.md")


if __name__ == "__main__":
    sys.exit(run_guarded(main))
