"""DVC stage ``evaluate_dgnet``: Table 3 (Baseline, f_prim, f_fine, f_prim + f_fine)."""

import sys
from dgnet.config import load_config
from dgnet.errors import run_guarded
from dgnet.eval.table3 import run_table3


def main() -> None:
    run_table3(load_config("params.yaml"), "models/dgnet/last.pt", "reports/metrics/teacher.json",
               "reports/metrics/table3.json", "reports/table3.md", "reports/table3.csv",
               "reports/figures/rank_list.png")


if __name__ == "__main__":
    sys.exit(run_guarded(main))
