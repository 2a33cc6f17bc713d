"""DVC stage ``evaluate_ablations``: re-id metrics of the w/o-feed and w/o-id models."""

from dgnet import io
from dgnet.config import load_config
from dgnet.eval.variants import evaluate_variants

CHECKPOINTS = {"w/o feed": "models/dgnet_nofeed/last.pt", "w/o id": "models/dgnet_noid/last.pt"}


def main() -> None:
    metrics = evaluate_variants(load_config("params.yaml"), CHECKPOINTS)
    io.write_json("reports/metrics/ablations.json", metrics)


if __name__ == "__main__":
    main()
