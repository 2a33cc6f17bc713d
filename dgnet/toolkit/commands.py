"""``dgnet export``, ``dgnet embed`` and ``dgnet search``: a trained model on your own images.

    dgnet export --checkpoint models/dgnet/last.pt --format onnx --out dgnet.onnx
    dgnet embed --checkpoint models/dgnet/last.pt photos/ --out gallery.npz
    dgnet search --features gallery.npz query.jpg --top 10 --figure ranks.png [--out ranks.json]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dgnet import io
from dgnet.errors import UserError

#: Rows drawn by ``dgnet search --figure`` (the printout and JSON list every query).
FIGURE_MAX_QUERIES = 16


def _export(args) -> int:
    from dgnet.toolkit.export import export

    io.require_writable(args.out)  # before any work
    info = export(args.checkpoint, args.format, args.out, args.beta)
    beta = "" if info["beta"] is None else f", beta {info['beta']:g}"
    print(f"wrote {args.out} ({args.format}, {info['kind']} checkpoint{beta})")
    print(f"input  images: float32 (batch, 3, {info['height']}, {info['width']}), RGB in [0, 1]")
    print(f"output {', '.join(info['outputs'])}; max |difference| to PyTorch on 3 images: "
          f"{info['max_abs_difference']:.1e}")
    return 0


def _embed(args) -> int:
    from dgnet.toolkit.folder import embed_folder, save_features

    io.require_writable(args.out)
    doc = embed_folder(args.checkpoint, args.folder, args.batch_size, args.device, args.beta,
                       progress=not args.quiet)
    save_features(args.out, doc)
    n, dim = doc["features"].shape
    print(f"wrote {args.out}: {n} images x {dim} dims ({doc['feature_name']}) from {doc['root']}")
    return 0


def _search_results(query_paths, gallery_paths, ranked, scores) -> list[dict]:
    return [{"query": str(q),
             "matches": [{"rank": r + 1, "path": str(gallery_paths[g]), "score": round(float(s), 6)}
                         for r, (g, s) in enumerate(zip(row, row_scores)) if g >= 0]}
            for q, row, row_scores in zip(query_paths, ranked, scores)]


def _search(args) -> int:
    from dgnet.toolkit.folder import embed_images, load_features, nearest, query_files
    from dgnet.reports.rank_list import rank_list_figure

    if args.top < 1:
        raise UserError(f"--top: expected a number >= 1, got {args.top}")
    io.require_writable(*[p for p in (args.out, args.figure) if p])
    gallery = load_features(args.features)
    checkpoint = args.checkpoint or Path(str(gallery["checkpoint"]))
    beta = float(gallery["beta"])
    queries = embed_images(checkpoint, query_files(args.query), args.batch_size, args.device,
                           None if np.isnan(beta) else beta, progress=not args.quiet)
    if queries["features"].shape[1] != gallery["features"].shape[1]:
        raise UserError(f"{args.features}: {gallery['features'].shape[1]}-dim features, but {checkpoint} "
                        f"gives {queries['features'].shape[1]} dims: embed the gallery with the same checkpoint")
    q_paths, g_paths = queries["paths"], gallery["paths"]
    own_image = q_paths[:, None] == g_paths[None, :]  # a query found in the gallery is not its own match
    ranked, scores = nearest(queries["features"], gallery["features"], args.top, own_image)
    results = _search_results(q_paths, g_paths, ranked, scores)
    for result in results:
        print(result["query"])
        for m in result["matches"]:
            print(f"  {m['rank']:3d}  {m['score']:.4f}  {m['path']}")
    if args.out:
        io.write_json(args.out, {"features": str(args.features), "checkpoint": str(checkpoint),
                                 "score": "q . g (higher is more similar)", "results": results})
        print(f"wrote {args.out}")
    if args.figure:
        n = min(len(q_paths), FIGURE_MAX_QUERIES)
        rank_list_figure(q_paths[:n], g_paths, ranked[:n], None, args.figure, k=args.top, scores=scores[:n])
        shown = "" if n == len(q_paths) else f" (the first {n} of {len(q_paths)} queries)"
        print(f"wrote {args.figure}{shown}")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("export", help="export the test-time re-id network as ONNX or TorchScript")
    p.add_argument("--checkpoint", required=True, type=Path, help="teacher or DG-Net checkpoint")
    p.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    p.add_argument("--out", required=True, type=Path, help="file to write (e.g. dgnet.onnx)")
    p.add_argument("--beta", type=float, help="weight of f_fine in the output feature "
                                              "(default: the checkpoint's eval.beta if it stores one, as older "
                                              "checkpoints do, else 0.5)")
    p.set_defaults(func=_export)

    p = sub.add_parser("embed", help="features of every image in a folder, to a .npz file")
    p.add_argument("--checkpoint", required=True, type=Path, help="teacher or DG-Net checkpoint")
    p.add_argument("folder", type=Path, help="folder of images (searched recursively)")
    p.add_argument("--out", required=True, type=Path, help="feature file to write (.npz)")
    p.add_argument("--beta", type=float, help="weight of f_fine (default: the checkpoint's eval.beta "
                                                              "if it stores one, else 0.5)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_embed)

    p = sub.add_parser("search", help="nearest gallery images of a query image or folder")
    p.add_argument("--features", required=True, type=Path, help="gallery feature file from `dgnet embed`")
    p.add_argument("query", type=Path, help="query image, or folder of query images")
    p.add_argument("--top", type=int, default=10, help="matches per query (default 10)")
    p.add_argument("--figure", type=Path, help="rank-list PNG to write")
    p.add_argument("--out", type=Path, help="results JSON to write")
    p.add_argument("--checkpoint", type=Path,
                   help="checkpoint that embeds the queries (default: the one that made --features)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_search)
