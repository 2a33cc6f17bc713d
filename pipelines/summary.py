"""DVC stage ``summary``: one flat file per measured row (``dvc metrics show``) and the timings apart."""

from dgnet.config import load_config
from dgnet.errors import run_guarded
from dgnet.summary import write_summary


def main() -> None:
    cfg = load_config("params.yaml")
    rows = write_summary("reports/metrics", "reports/metrics/summary", "reports/metrics/timings.json", cfg.train.alpha)
    print(f"reports/metrics/summary: {len(rows)} rows")


if __name__ == "__main__":
    sys.exit(run_guarded(main))
