"""DVC stages ``summary`` (one flat file per measured row, ``dvc metrics show``) and ``timings``.

    python pipelines/summary.py              # reports/metrics/summary/*.json
    python pipelines/summary.py --timings    # reports/metrics/timings.json, with the graph's cost
"""

import argparse
import sys

from dgnet.config import load_config
from dgnet.entry import run_guarded
from dgnet.stage_seconds import graph_cost
from dgnet.summary import write_summary, write_timings
from dgnet.train.speed import default_step_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timings", action="store_true", help="collect the stages' seconds instead")
    args = parser.parse_args()
    if args.timings:
        graph = graph_cost(".", default_step_seconds())
        out = write_timings("reports/metrics", "reports/metrics/timings.json", graph)
        print(f"reports/metrics/timings.json: {len(out)} entries; the graph took {graph['graph_wall_seconds']:.0f} s "
              f"= {graph['default_step_equivalents']} default steps of {graph['default_step_seconds']:.3f} s here"
              + (f" (no record for {', '.join(graph['stages_without_a_record'])})"
                 if graph["stages_without_a_record"] else ""))
        return
    rows = write_summary("reports/metrics", "reports/metrics/summary", load_config("params.yaml").train.alpha)
    print(f"reports/metrics/summary: {len(rows)} rows")


if __name__ == "__main__":
    sys.exit(run_guarded(main))
