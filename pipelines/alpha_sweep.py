"""DVC stages ``alpha_sweep`` and ``evaluate_alpha_sweep``: Figure 8 (left), one DG-Net training per alpha.

    python pipelines/alpha_sweep.py              # models/alpha_sweep/dgnet_alpha_A/ for each sweep.alphas
    python pipelines/alpha_sweep.py --evaluate   # reports/metrics/alpha_sweep.json

alpha = lambda_fine / lambda_prim. Each run continues the shared warm-up
checkpoint (alpha only acts after train.warm_iter); the main model (alpha =
train.alpha) is evaluated by ``evaluate_dgnet`` and joins the curve in the
``report`` stage. An empty ``sweep.alphas`` switches the sweep off: the
training writes a marker (``models/alpha_sweep/switched_off.json``) and the
evaluation a result saying "not run" (dgnet/switches.py).
"""

import argparse
import sys

from dgnet import io, switches, tracking
from dgnet.config import config_to_dict, load_config, replace
from dgnet.entry import run_guarded
from dgnet.eval.variants import MAIN_FEATURE, evaluate_on
from dgnet.train.parallel import Job, run_side_by_side
from dgnet.stages.runs import run_dgnet


def folder(alpha: float) -> str:
    return f"models/alpha_sweep/dgnet_alpha_{alpha:g}"


OFF_MARKER = "models/alpha_sweep/switched_off.json"
RESULT = "reports/metrics/alpha_sweep.json"


def train(cfg) -> None:
    if switches.alpha_sweep_off(cfg):
        switches.write_not_trained(switches.ALPHAS_OFF, OFF_MARKER, folder="models/alpha_sweep")
        return
    run_side_by_side([Job(run_dgnet, replace(cfg, **{"train.alpha": float(alpha)}),
                          ("models/teacher.pt", folder(alpha), f"{folder(alpha)}/samples.png",
                           f"{folder(alpha)}/train.json"),
                          dict(run_name=f"dgnet_alpha_{alpha:g}",
                               init_from="models/dgnet_warm/last.pt", keep_progress=True))
                      for alpha in cfg.sweep.alphas])


def evaluate(cfg) -> None:
    if switches.alpha_sweep_off(cfg):
        switches.write_not_run(RESULT, switches.ALPHAS_OFF, points=[])
        return
    points = []
    with tracking.start_run(cfg.tracking, "evaluate_alpha_sweep", params=config_to_dict(cfg)) as run:
        for alpha in cfg.sweep.alphas:
            metrics = evaluate_on(cfg, f"{folder(alpha)}/last.pt")
            run.log_to_model_run(f"{folder(alpha)}/last.pt", tracking.test_metrics(metrics))
            main = metrics[MAIN_FEATURE]
            points.append({"alpha": float(alpha), "rank1": main["rank1"], "mAP": main["mAP"]})
    io.write_json(RESULT, {"points": points})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluate", action="store_true", help="evaluate the sweep's models")
    args = parser.parse_args()
    cfg = load_config("params.yaml")
    evaluate(cfg) if args.evaluate else train(cfg)


if __name__ == "__main__":
    sys.exit(run_guarded(main))
