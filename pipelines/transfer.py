"""DVC stage ``transfer``: Table 9, direct transfer between two domains (default: synthetic style A <-> B).

    python pipelines/transfer.py   # reports/metrics/transfer.json

Under ``data.transfer_layout: none`` the result says "not run" (dgnet/switches.py); under
``sweep.transfer_b_to_a: false`` it holds the rows of the models trained on A only.
"""

import sys
from dgnet import io, switches, tracking
from dgnet.config import config_to_dict, load_config
from dgnet.entry import run_guarded
from dgnet.eval.variants import direct_transfer, transfer_domains
from dgnet.summary import METHODS, slug

RESULT = "reports/metrics/transfer.json"


def main() -> None:
    cfg = load_config("params.yaml")
    if switches.transfer_off(cfg):
        switches.write_not_run(RESULT, switches.TRANSFER_OFF, rows=[])
        return
    switches.require_transfer_root(cfg)
    domains = transfer_domains(cfg)
    models = {"A": {"Baseline (teacher)": "models/teacher.pt", "DG-Net": "models/dgnet/last.pt"}}
    b_to_a_off = switches.key_off(cfg, "sweep.transfer_b_to_a")
    if not b_to_a_off:
        models["B"] = {"Baseline (teacher)": "models/teacher_b.pt", "DG-Net": "models/dgnet_b/last.pt"}
    with tracking.start_run(cfg.tracking, "transfer", params=config_to_dict(cfg)) as run:
        rows = direct_transfer(cfg, domains, models)
        for r in rows:
            key = f"{r['train']}_to_{r['test']}/{METHODS.get(r['method'], slug(r['method']))}"
            run.log_metrics({f"{key}/rank1": r["rank1"], f"{key}/mAP": r["mAP"]})
    io.write_json(RESULT, {"domains": domains, "rows": rows,
                           **({"b_to_a": f"not run: {b_to_a_off}"} if b_to_a_off else {})})


if __name__ == "__main__":
    sys.exit(run_guarded(main))
