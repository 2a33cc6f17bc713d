"""DVC stage ``train_dgnet``: joint DG-Net training from the teacher stage's model."""

from dgnet.config import load_config
from dgnet.train.runs import run_dgnet


def main() -> None:
    run_dgnet(load_config("params.yaml"), "models/teacher.pt", "models/dgnet",
              "reports/figures/dgnet_samples.png", "reports/metrics/train_dgnet.json")


if __name__ == "__main__":
    main()
