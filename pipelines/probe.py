"""DVC stage ``probe``: the ground-truth attribute probe of the disentanglement table, trained once.

    python pipelines/probe.py [--quiet]

Draws the probe's own synthetic set (fresh identities in the data set's style
and cameras, dgnet/eval/disentangle.py) and trains the probe on it at the
network input size. Writes ``models/attribute_probe.pt``, which
``generation_eval`` and every ``replicate@SEED`` read: one probe scores every
seed's generations. ``reports/metrics/train_probe.json`` has its size and time.
On a real data set (no ground-truth attributes) nothing reads the probe, so
the stage trains nothing and writes a marker saying why.
"""

import argparse
import sys
import time

from dgnet import io, stage_seconds, switches
from dgnet.config import load_config
from dgnet.entry import run_guarded
from dgnet.eval import disentangle
from dgnet.eval.generation import GENERATION_SEED

OUT = "models/attribute_probe.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args()
    cfg = load_config("params.yaml")
    io.require_writable(OUT, "reports/metrics/train_probe.json")
    if cfg.data.layout != "synthetic":  # generation_eval reads the probe on the synthetic set only
        switches.write_not_trained(f"data.layout {cfg.data.layout} has no ground-truth attributes to score",
                                   "reports/metrics/train_probe.json", checkpoint=OUT)
        return
    began = time.perf_counter()
    probe = disentangle.build_probe(cfg.data.synth, cfg.data.height, cfg.data.width, seed=GENERATION_SEED,
                                    epochs=cfg.probe.epochs, probe_ids=cfg.probe.ids, device=cfg.runtime.device,
                                    progress=not args.quiet, probe_width=cfg.probe.width)
    disentangle.save_probe(probe, OUT)
    stage_seconds.write_metrics("reports/metrics/train_probe.json",
                  {**probe.trained_on, "train_seconds": round(time.perf_counter() - began, 2)})
    print(f"{OUT}: {probe.trained_on['images']} images of {probe.trained_on['ids']} identities, "
          f"{probe.trained_on['epochs']} epochs")


if __name__ == "__main__":
    sys.exit(run_guarded(main))
