"""``dgnet export``, ``dgnet embed`` and ``dgnet search``: a trained model on your own images.

    dgnet export --checkpoint models/dgnet/last.pt --format onnx --out dgnet.onnx
    dgnet embed --checkpoint models/dgnet/last.pt photos/ --out gallery.npz
    dgnet search --features gallery.npz query.jpg --top 10 --figure ranks.png [--out ranks.json]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from dgnet import io
from dgnet.errors import UserError
from dgnet.toolkit.checks import check_at_least_one, check_device, check_outputs

#: Rows drawn by ``dgnet search --figure`` (the printout and JSON list every query).
FIGURE_MAX_QUERIES = 16
#: Matches per row drawn by ``dgnet search --figure`` (the printout and JSON list ``--top``).
FIGURE_MAX_RANKS = 20


def _export(args) -> int:
    from dgnet.toolkit.export import export

    check_outputs({"--out": args.out}, {"--checkpoint": [args.checkpoint]})  # before any work
    info = export(args.checkpoint, args.format, args.out, args.beta)
    beta = "" if info["beta"] is None else f", beta {info['beta']:g}"
    print(f"wrote {args.out} ({args.format}, {info['kind']} checkpoint{beta})")
    print(f"input  {info['input']}")
    print(f"output {', '.join(info['outputs'])}; max |difference| to PyTorch on 3 images: "
          f"{info['max_abs_difference']:.1e}")
    return 0


def _skipped_note(doc: dict, where: str) -> str:
    n = len(doc["skipped"])
    return f"; skipped {n} unreadable image{'s' * (n != 1)} (listed in {where})" if n else ""


def _embed(args) -> int:
    from dgnet.toolkit.folder import embed_images, image_files, load_model, save_features

    images = image_files(args.folder)
    check_outputs({"--out": args.out}, {"--checkpoint": [args.checkpoint], "an image to embed": images})
    check_device(args.device)
    model = load_model(args.checkpoint, args.device, args.beta)
    doc = embed_images(model, images, args.batch_size, not args.quiet, args.skip_unreadable)
    doc["root"] = str(args.folder.resolve())
    save_features(args.out, doc)
    n, dim = doc["features"].shape
    print(f"wrote {args.out}: {n} images x {dim} dims ({doc['feature_name']}, images read as "
          f"{model.preprocessing}) from {doc['root']}{_skipped_note(doc, 'its skipped array')}")
    return 0


def _search_results(query_paths, gallery_paths, ranked, scores) -> list[dict]:
    return [{"query": str(q),
             "matches": [{"rank": r + 1, "path": str(gallery_paths[g]), "score": round(float(s), 6)}
                         for r, (g, s) in enumerate(zip(row, row_scores)) if g >= 0]}
            for q, row, row_scores in zip(query_paths, ranked, scores)]


def _mismatches(features: Path, gallery: dict, model) -> list[str]:
    """How the checkpoint that embeds the queries differs from the one that made the gallery."""
    from dgnet.toolkit.folder import feature_preprocessing

    found = []
    if str(gallery["checkpoint_sha256"]) != model.sha256:
        found.append(f"{features} was embedded by a checkpoint with sha256 {str(gallery['checkpoint_sha256'])[:12]}, "
                     f"but {model.path} has sha256 {model.sha256[:12]} (it was changed, or is another checkpoint)")
    gallery_prep = feature_preprocessing(gallery)
    if gallery_prep != model.preprocessing:
        found.append(f"the gallery images were read as {gallery_prep}, the queries would be read as "
                     f"{model.preprocessing}")
    return found


def _check_figure_images(gallery_paths) -> None:
    missing = [p for p in gallery_paths if not Path(p).is_file()]
    if missing:
        raise UserError(f"--figure: {len(missing)} of the {len(gallery_paths)} gallery images were moved or "
                        f"deleted since they were embedded (e.g. {missing[0]}); the figure draws them: put "
                        f"them back, embed the gallery again, or leave out --figure")


def _figure(args, q_paths, g_paths, ranked, scores) -> str:
    """Draw the rank list; returns the note on what was left out of it."""
    from dgnet.reports.rank_list import rank_list_figure

    n, k = min(len(q_paths), FIGURE_MAX_QUERIES), min(args.top, FIGURE_MAX_RANKS)
    rank_list_figure(q_paths[:n], g_paths, ranked[:n], None, args.figure, k=k, scores=scores[:n])
    left_out = [f"the first {n} of {len(q_paths)} queries"] * (n < len(q_paths))
    left_out += [f"the first {k} of {args.top} matches each"] * (k < args.top)
    return f" ({', '.join(left_out)})" if left_out else ""


def _search(args) -> int:
    from dgnet.toolkit.folder import embed_images, load_features, load_model, nearest, query_files

    check_at_least_one("--top", args.top)
    gallery = load_features(args.features)
    checkpoint = args.checkpoint or Path(str(gallery["checkpoint"]))
    if args.checkpoint is None and not checkpoint.is_file():
        raise UserError(f"{checkpoint}: the checkpoint that made {args.features} is not there any more; "
                        f"pass the same checkpoint as --checkpoint")
    queries = query_files(args.query)
    g_paths = gallery["paths"]
    checkpoint_option = "--checkpoint" if args.checkpoint else "the checkpoint"
    check_outputs({"--out": args.out, "--figure": args.figure},
                  {"--features": [args.features], checkpoint_option: [checkpoint], "a query": queries,
                   "a gallery image": g_paths})
    if args.figure:
        _check_figure_images(g_paths)
    check_device(args.device)
    beta = float(gallery["beta"])
    model = load_model(checkpoint, args.device, None if np.isnan(beta) else beta)
    mismatches = _mismatches(args.features, gallery, model)
    if mismatches and not args.allow_other_checkpoint:
        raise UserError(f"{'; '.join(mismatches)}: embed the gallery again with this checkpoint, "
                        f"or pass --allow-other-checkpoint to rank anyway")
    for line in mismatches:
        print(f"dgnet: warning: {line} (--allow-other-checkpoint)", file=sys.stderr)
    doc = embed_images(model, queries, args.batch_size, not args.quiet, args.skip_unreadable)
    if doc["features"].shape[1] != gallery["features"].shape[1]:
        raise UserError(f"{args.features}: {gallery['features'].shape[1]}-dim features, but {checkpoint} "
                        f"gives {doc['features'].shape[1]} dims: embed the gallery with the same checkpoint")
    q_paths = doc["paths"]
    own_image = q_paths[:, None] == g_paths[None, :]  # a query found in the gallery is not its own match
    ranked, scores = nearest(doc["features"], gallery["features"], args.top, own_image)
    results = _search_results(q_paths, g_paths, ranked, scores)
    for result in results:
        print(result["query"])
        for m in result["matches"]:
            print(f"  {m['rank']:3d}  {m['score']:.4f}  {m['path']}")
    if args.figure:  # first: it reads the gallery images, the JSON reads nothing
        print(f"wrote {args.figure}{_figure(args, q_paths, g_paths, ranked, scores)}")
    if args.out:
        io.write_json(args.out, {
            "features": str(args.features), "checkpoint": str(model.path), "checkpoint_sha256": model.sha256,
            "mismatches": mismatches, "skipped_queries": dict(zip(doc["skipped"].tolist(),
                                                                  doc["skipped_reasons"].tolist())),
            "score": "q . g (higher is more similar)", "results": results})
        print(f"wrote {args.out}")
    if len(doc["skipped"]):
        print(f"skipped {len(doc['skipped'])} unreadable query images: {', '.join(doc['skipped'])}")
    return 0


def _add_embedding_options(p) -> None:
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--skip-unreadable", action="store_true",
                   help="leave out images that cannot be read (listed in the output) instead of stopping")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


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
    _add_embedding_options(p)
    p.set_defaults(func=_embed)

    p = sub.add_parser("search", help="nearest gallery images of a query image or folder")
    p.add_argument("--features", required=True, type=Path, help="gallery feature file from `dgnet embed`")
    p.add_argument("query", type=Path, help="query image, or folder of query images")
    p.add_argument("--top", type=int, default=10, help="matches per query (default 10)")
    p.add_argument("--figure", type=Path, help=f"rank-list PNG to write (at most {FIGURE_MAX_QUERIES} queries "
                                               f"x {FIGURE_MAX_RANKS} matches)")
    p.add_argument("--out", type=Path, help="results JSON to write")
    p.add_argument("--checkpoint", type=Path,
                   help="checkpoint that embeds the queries (default: the one that made --features; "
                        "it must be the same file content)")
    p.add_argument("--allow-other-checkpoint", action="store_true",
                   help="rank even if the checkpoint or its preprocessing is not the one that made --features")
    _add_embedding_options(p)
    p.set_defaults(func=_search)
