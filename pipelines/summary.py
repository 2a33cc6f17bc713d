"""DVC stages ``summary`` (one flat file per measured row, ``dvc metrics show``) and ``timings``.

    python pipelines/summary.py              # reports/metrics/summary/*.json
    python pipelines/summary.py --timings    # reports/metrics/timings.json
"""

import argparse
import sys

from dgnet.config import load_config
from dgnet.errors import run_guarded
from dgnet.summary import write_summary, write_timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timings", action="store_true", help="collect the stages' seconds instead")
    args = parser.parse_args()
    if args.timings:
        print(f"reports/metrics/timings.json: {len(write_timings('reports/metrics', 'reports/metrics/timings.json'))} entries")
        return
    rows = write_summary("reports/metrics", "reports/metrics/summary", load_config("params.yaml").train.alpha)
    print(f"reports/metrics/summary: {len(rows)} rows")


if __name__ == "__main__":
    sys.exit(run_guarded(main))
