"""DVC stage ``beta_sweep``: Figure 8 (right), the test-time weight beta of f_fine, no retraining."""

import sys
from dgnet import io, tracking
from dgnet.config import config_to_dict, load_config
from dgnet.entry import run_guarded
from dgnet.eval.variants import beta_sweep


def main() -> None:
    cfg = load_config("params.yaml")
    betas = sorted(set(cfg.sweep.betas) | {cfg.eval.beta})
    with tracking.start_run(cfg.tracking, "beta_sweep", params=config_to_dict(cfg)) as run:
        points = beta_sweep(cfg, "models/dgnet/last.pt", betas)
        for step, p in enumerate(points):
            run.log_metrics({"beta": p["beta"], "rank1": p["rank1"], "mAP": p["mAP"]}, step=step)
    io.write_json("reports/metrics/beta_sweep.json", {"points": points})


if __name__ == "__main__":
    sys.exit(run_guarded(main))
