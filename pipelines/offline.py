"""DVC stage ``offline``: generate offline with the w/o-feed generator, then train re-id separately."""

import sys
from dgnet.config import load_config
from dgnet.errors import run_guarded
from dgnet.train.runs import run_offline


def main() -> None:
    run_offline(load_config("params.yaml"), "models/dgnet_nofeed/last.pt", "models/teacher.pt",
                "data/generated/offline", "models/offline_reid.pt", "reports/metrics/offline.json")


if __name__ == "__main__":
    sys.exit(run_guarded(main))
