"""DVC stage ``report``: the remaining tables, Figure 8 and reports/README.md from the metrics files."""

from dgnet.config import load_config
from dgnet.reports_index import build_reports


def main() -> None:
    build_reports(load_config("params.yaml"))


if __name__ == "__main__":
    main()
