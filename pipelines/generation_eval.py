"""DVC stage ``generation_eval``: Table 2 (FID, SSIM), the disentanglement table and the generation figures.

    python pipelines/generation_eval.py [--params params.yaml] [--inception-weights PATH] [--quiet]

Reads params.yaml and models/dgnet/last.pt, models/teacher.pt (and, when they
exist, the ablations models/dgnet_nofeed/last.pt, models/dgnet_noid/last.pt).
Writes the generated sets (data/generated/dgnet, ..._nofeed, ..._noid),
reports/table2.md/.csv, reports/disentanglement.md/.csv,
reports/metrics/generation.json and reports/figures/fig{1,4,5,6,9}_*.png, and
logs one MLflow run ``generation_eval``.

FID needs pytorch-fid's Inception weights ``pt_inception-2015-12-05-6726825d.pth``,
which are never downloaded here: put the file in ``$TORCH_HOME/hub/checkpoints``
(``~/.cache/torch/hub/checkpoints``), or pass ``--inception-weights PATH``, or
set ``DGNET_FID_WEIGHTS=PATH``. Without it the FID cells say "not computed"
and the other columns are still measured.
"""

from __future__ import annotations

import argparse
import logging
import sys

from dgnet.config import load_config
from dgnet.entry import run_guarded
from dgnet.stages.generation import run_generation_eval


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--inception-weights", default=None, metavar="PATH",
                        help="pt_inception-2015-12-05-6726825d.pth, or a folder holding it")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="generation_eval: %(levelname)s: %(message)s")
    cfg = load_config(args.params)
    metrics = run_generation_eval(cfg, inception_weights=args.inception_weights,
                                  progress=not args.quiet and sys.stderr.isatty())

    def num(x, digits: int) -> str:
        return "n/a" if x is None else f"{x:.{digits}f}"

    for name, row in metrics["table2"].items():
        fid = num(row["fid_inception"], 2) if row["fid_inception"] is not None else "not computed"
        print(f"{name}: FID {fid}, Fréchet distance (teacher features) {num(row['frechet_teacher'], 2)}, "
              f"SSIM {num(row['ssim'], 3)} ± {num(row['ssim_half_range'], 3)}")
    print(f"reports/table2.md, reports/disentanglement.md: {metrics['seconds']['total']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(run_guarded(main))
