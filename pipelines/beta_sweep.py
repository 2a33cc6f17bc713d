"""DVC stage ``beta_sweep``: Figure 8 (right), the test-time weight beta of f_fine, no retraining."""

from dgnet import io
from dgnet.config import load_config
from dgnet.eval.variants import beta_sweep


def main() -> None:
    cfg = load_config("params.yaml")
    betas = sorted(set(cfg.sweep.betas) | {cfg.eval.beta})
    io.write_json("reports/metrics/beta_sweep.json", {"points": beta_sweep(cfg, "models/dgnet/last.pt", betas)})


if __name__ == "__main__":
    main()
