"""DVC stage ``evaluate_ablations``: re-id metrics of the w/o-feed and w/o-id models."""

import sys
from dgnet import io, tracking
from dgnet.config import config_to_dict, load_config
from dgnet.entry import run_guarded
from dgnet.eval.variants import MAIN_FEATURE, evaluate_variants
from dgnet.summary import slug

CHECKPOINTS = {"w/o feed": "models/dgnet_nofeed/last.pt", "w/o id": "models/dgnet_noid/last.pt"}


def main() -> None:
    cfg = load_config("params.yaml")
    with tracking.start_run(cfg.tracking, "evaluate_ablations", params=config_to_dict(cfg)) as run:
        metrics = evaluate_variants(cfg, CHECKPOINTS)
        for name, m in metrics.items():
            key = slug(name)  # "w/o feed" -> "w_o_feed"
            run.log_metrics({f"{key}/rank1": m[MAIN_FEATURE]["rank1"], f"{key}/mAP": m[MAIN_FEATURE]["mAP"]})
            run.log_to_model_run(CHECKPOINTS[name], tracking.test_metrics(m))
    io.write_json("reports/metrics/ablations.json", metrics)


if __name__ == "__main__":
    sys.exit(run_guarded(main))
