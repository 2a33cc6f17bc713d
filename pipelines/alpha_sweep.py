"""DVC stage ``alpha_sweep``: Figure 8 (left), one DG-Net training per alpha = lambda_fine / lambda_prim.

Each run continues the shared warm-up checkpoint (alpha only acts after
train.warm_iter); the main model (alpha = train.alpha) is evaluated by
``evaluate_dgnet`` and joins the curve in the ``report`` stage.
"""

import sys
from dgnet import io
from dgnet.config import load_config, replace
from dgnet.eval.variants import MAIN_FEATURE, evaluate_on
from dgnet.errors import run_guarded
from dgnet.train.runs import run_dgnet


def main() -> None:
    cfg = load_config("params.yaml")
    points = []
    for alpha in cfg.sweep.alphas:
        name = f"dgnet_alpha_{alpha:g}"
        variant = replace(cfg, **{"train.alpha": float(alpha)})
        run_dgnet(variant, "models/teacher.pt", f"models/alpha_sweep/{name}",
                  f"models/alpha_sweep/{name}/samples.png", f"models/alpha_sweep/{name}/train.json",
                  run_name=name, init_from="models/dgnet_warm/last.pt")
        metrics = evaluate_on(variant, f"models/alpha_sweep/{name}/last.pt")[MAIN_FEATURE]
        points.append({"alpha": float(alpha), "rank1": metrics["rank1"], "mAP": metrics["mAP"]})
    io.write_json("reports/metrics/alpha_sweep.json", {"points": points})


if __name__ == "__main__":
    sys.exit(run_guarded(main))
