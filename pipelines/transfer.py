"""DVC stage ``transfer``: Table 9, direct transfer between two domains (default: synthetic style A <-> B)."""

from dgnet import io
from dgnet.config import load_config
from dgnet.eval.variants import direct_transfer


def main() -> None:
    cfg = load_config("params.yaml")
    domains = {"A": (cfg.data.layout, cfg.data.root), "B": (cfg.data.transfer_layout, cfg.data.transfer_root)}
    models = {
        "A": {"Baseline (teacher)": "models/teacher.pt", "DG-Net": "models/dgnet/last.pt"},
        "B": {"Baseline (teacher)": "models/teacher_b.pt", "DG-Net": "models/dgnet_b/last.pt"},
    }
    io.write_json("reports/metrics/transfer.json", {"domains": domains, "rows": direct_transfer(cfg, domains, models)})


if __name__ == "__main__":
    main()
