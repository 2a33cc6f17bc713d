"""DVC stage ``evaluate_dgnet``: Table 3 (Baseline, f_prim, f_fine, f_prim + f_fine)."""

import sys
from dgnet.config import load_config
from dgnet.entry import run_guarded
from dgnet.stages.table3 import run_table3

REGISTERED_MODEL = "dgnet-reid"  # the full model's test-time re-id network in MLflow's registry


def main() -> None:
    run_table3(load_config("params.yaml"), "models/dgnet/last.pt", "reports/metrics/teacher.json",
               "reports/metrics/table3.json", "reports/table3.md", "reports/table3.csv",
               "reports/figures/rank_list.png", registered_name=REGISTERED_MODEL)


if __name__ == "__main__":
    sys.exit(run_guarded(main))
