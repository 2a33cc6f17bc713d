"""``dgnet evaluate``: CMC / mAP / mINP of a checkpoint on a data set's query and gallery,
and on any number of other data sets (direct transfer) in the same call.

    dgnet evaluate --checkpoint models/dgnet/last.pt --data-root data/synth_a
    dgnet evaluate --checkpoint CKPT --data-root /data/Market-1501-v15.09.15 --layout market1501 \\
        [--target duke=/data/DukeMTMC-reID --target msmt17=/data/MSMT17_V1] \\
        [--params params.yaml] [--beta 0.5] [--ap trapezoid|standard] [--rerank] [--multi-query] \\
        [--out reports/metrics/evaluate.json] [--figure reports/figures/rank_list.png] [--device cuda]

A teacher checkpoint is scored on its ``baseline`` feature, a DG-Net one on
``f_prim``, ``f_fine`` and ``f_prim+f_fine``. Settings: the flags, else
``--params`` (its ``eval`` and ``data`` sections), else the checkpoint's own
config; the image size and the resize interpolation (``data.resize`` /
``train.fidelity``) are always the checkpoint's (what the network was trained
at). The JSON (written atomically) holds Rank@1/5/10, mAP and mINP as
fractions rounded to 4 decimals, the query counts, beta, the AP definition and
the re-ranking / multi-query flags; the in-domain result at the top level and
one entry per ``--target`` under ``targets``. The same settings apply to every
data set (``--multi-query`` needs gt_bbox/ in each).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from dgnet import io
from dgnet.config import Config, ConfigError, config_from_dict, load_config
from dgnet.errors import UserError

FIGURE_QUERIES = 6


def _settings(args, ckpt_config: dict) -> tuple[Config, Config]:
    """(settings, checkpoint config): params file or checkpoint config, then the flags."""
    try:
        trained = config_from_dict(ckpt_config)
    except ConfigError as err:
        raise UserError(f"{args.checkpoint}: the stored config is not valid: {err}") from None
    cfg = load_config(args.params) if args.params else trained
    changes = {k: v for k, v in (("beta", args.beta), ("ap", args.ap)) if v is not None}
    if args.rerank:
        changes["rerank"] = True
    if args.multi_query:
        changes["multi_query"] = True
    eval_cfg = dataclasses.replace(cfg.eval, **changes)
    if eval_cfg.beta < 0:
        raise ConfigError(f"--beta: expected a value >= 0, got {eval_cfg.beta}")
    return dataclasses.replace(cfg, eval=eval_cfg), trained


def rounded(metrics: dict, digits: int = 4) -> dict:
    return {k: round(v, digits) if isinstance(v, float) else v for k, v in metrics.items()}


LAYOUTS = ["synthetic", "market1501", "duke", "msmt17", "cuhk03np"]


def target_spec(text: str) -> tuple[str, Path]:
    """``--target LAYOUT=ROOT`` -> ``(layout, root)``."""
    layout, sep, root = text.partition("=")
    if not sep or not root:
        raise argparse.ArgumentTypeError(f"expected LAYOUT=ROOT, e.g. duke=/data/DukeMTMC-reID; got {text!r}")
    if layout not in LAYOUTS:
        raise argparse.ArgumentTypeError(f"unknown layout {layout!r} in {text!r} (one of {', '.join(LAYOUTS)})")
    return layout, Path(root)


def _evaluate_domain(embed, cfg: Config, layout: str, root: Path, size: tuple[int, int], resize: str,
                     device: str, progress: bool):
    """Features and metrics of one data set's query / gallery: ``(evaluate_model output, splits)``."""
    from dgnet.data.dataset import ReidTestDataset
    from dgnet.data.layouts import load_layout
    from dgnet.eval import evaluate_model

    splits = load_layout(layout, root, cfg.data.cuhk03_subset)

    def dataset(samples):
        return ReidTestDataset(samples, *size, cache=False, progress=progress, resize=resize)

    multi = None
    if cfg.eval.multi_query:
        if not splits.multi_query:
            raise UserError(f"{root}: --multi-query needs gt_bbox/ (Market-1501 layout)")
        multi = dataset(splits.multi_query)
    try:
        out = evaluate_model(embed, dataset(splits.query), dataset(splits.gallery), cfg.eval,
                             torch.device(device), multi_query_dataset=multi, progress=progress)
    except ValueError as err:
        raise UserError(f"{root}: {err}") from None
    return out, splits


def _domain_doc(layout: str, root: Path, splits, out: dict) -> dict:
    return {
        "data_root": str(root),
        "layout": layout,
        "num_query_images": len(splits.query),
        "num_gallery_images": len(splits.gallery),
        "features": {name: rounded(m) for name, m in out["metrics"].items()},
    }


def _rank_list(out: dict, splits, path: Path) -> dict:
    """Rank-list figure of a few evenly spaced queries; returns its JSON entry."""
    from dgnet.eval import top_k_matches
    from dgnet.reports.rank_list import rank_list_figure

    name = "f_prim+f_fine" if "f_prim+f_fine" in out["features"] else next(iter(out["features"]))
    feats = out["features"][name]
    n_q = len(splits.query)
    picks = np.unique(np.linspace(0, n_q - 1, min(FIGURE_QUERIES, n_q)).round().astype(int))
    if "distmat" in feats:
        rows = feats["distmat"][picks]
    else:
        rows = -(feats["query"][torch.as_tensor(picks)] @ feats["gallery"].T)
    q, g = out["query"], out["gallery"]
    ranked, matches = top_k_matches(rows, q["pids"][picks], g["pids"], q["camids"][picks],
                                    g["camids"], k=10)
    rank_list_figure([splits.query[i].path for i in picks], [s.path for s in splits.gallery],
                     ranked, matches, path, k=10)
    return {"path": str(path), "feature": name, "queries": picks.tolist()}


def evaluate_checkpoint(args) -> dict:
    """Everything ``dgnet evaluate`` does except printing; returns the JSON document.

    The in-domain result (``--data-root``) stays at the top level of the
    document; each ``--target`` adds an entry to ``targets`` with the same
    fields (``data_root``, ``layout``, image counts, ``features``), all from
    one load of the checkpoint.
    """
    from dgnet.models import load_embedder

    io.require_writable(*[p for p in (args.out, args.figure) if p])  # before any work
    probe_device = args.device or "cpu"
    embed, ckpt_config = load_embedder(args.checkpoint, probe_device)
    cfg, trained = _settings(args, ckpt_config)
    device = args.device or cfg.runtime.device
    if device != probe_device:
        embed, _ = load_embedder(args.checkpoint, device)
    layout = args.layout or cfg.data.layout
    size = (trained.data.height, trained.data.width)
    resize = trained.switches.resize  # the interpolation the network was trained with
    progress = not args.quiet
    out, splits = _evaluate_domain(embed, cfg, layout, args.data_root, size, resize, device, progress)
    doc = {
        "checkpoint": str(args.checkpoint),
        "image_size": list(size),
        "resize": resize,
        "ap": cfg.eval.ap,
        "beta": cfg.eval.beta,
        "rerank": cfg.eval.rerank,
        "multi_query": cfg.eval.multi_query,
        **_domain_doc(layout, args.data_root, splits, out),
    }
    if args.figure:
        doc["figure"] = _rank_list(out, splits, args.figure)
    targets = []
    for target_layout, target_root in args.target or []:
        target_out, target_splits = _evaluate_domain(
            embed, cfg, target_layout, target_root, size, resize, device, progress)
        targets.append(_domain_doc(target_layout, target_root, target_splits, target_out))
    if targets:
        doc["targets"] = targets
    if args.out:
        io.write_json(args.out, doc)
    return doc


def _print_domain(domain: dict, title: str) -> None:
    print(f"{title}: {domain['data_root']} ({domain['layout']})")
    print(f"{'feature':<16}{'Rank@1':>8}{'Rank@5':>8}{'Rank@10':>8}{'mAP':>8}{'mINP':>8}  queries")
    for name, m in domain["features"].items():
        print(f"{name:<16}{100 * m['rank1']:8.2f}{100 * m['rank5']:8.2f}{100 * m['rank10']:8.2f}"
              f"{100 * m['mAP']:8.2f}{100 * m['mINP']:8.2f}  {m['num_evaluated']} ({m['num_skipped']} skipped)")


def _evaluate(args) -> int:
    doc = evaluate_checkpoint(args)
    print(f"{doc['checkpoint']}, AP {doc['ap']}"
          f"{', re-ranked' if doc['rerank'] else ''}{', multi-query' if doc['multi_query'] else ''}")
    _print_domain(doc, "in domain")
    for target in doc.get("targets", []):
        _print_domain(target, "cross domain")
    if args.out:
        print(f"wrote {args.out}")
    if args.figure:
        print(f"wrote {args.figure}")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("evaluate", help="Rank@k, mAP and mINP of a checkpoint, in domain and cross domain")
    p.add_argument("--checkpoint", required=True, type=Path, help="teacher or DG-Net checkpoint")
    p.add_argument("--data-root", required=True, type=Path, help="data-set root folder")
    p.add_argument("--layout", choices=LAYOUTS,
                   help="data-set layout (default: from the params / checkpoint config)")
    p.add_argument("--target", action="append", type=target_spec, metavar="LAYOUT=ROOT",
                   help="also evaluate on this data set (direct transfer); repeat for several")
    p.add_argument("--params", help="params file for the eval and data settings "
                                    "(default: the checkpoint's config)")
    p.add_argument("--beta", type=float, help="weight of f_fine in f_prim+f_fine (paper: 0.5)")
    p.add_argument("--ap", choices=["trapezoid", "standard"],
                   help="average precision: trapezoid (official Market-1501 code) or standard")
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (k1 20, k2 6, lambda 0.3)")
    p.add_argument("--multi-query", action="store_true", help="Market-1501 multiple query (gt_bbox)")
    p.add_argument("--out", type=Path, help="metrics JSON to write")
    p.add_argument("--figure", type=Path, help="rank-list PNG to write")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: runtime.device)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_evaluate)
