"""DVC stage ``teacher``: train the teacher / baseline and evaluate it (Table 3 "Baseline")."""

from dgnet.config import load_config
from dgnet.train.runs import run_teacher


def main() -> None:
    run_teacher(load_config("params.yaml"), "models/teacher.pt", "reports/metrics/teacher.json")


if __name__ == "__main__":
    main()
