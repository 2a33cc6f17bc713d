"""Parsers for the on-disk layouts of the re-id data sets (as published with each data set).

The labels live in the file names (or, for MSMT17, in list files), so a parser
only lists folders and reads names; :func:`check_layout` additionally opens
every image and compares the counts with the published ones::

    from dgnet.data.layouts import load_layout, relabel
    splits = load_layout("market1501", "/data/Market-1501-v15.09.15")
    train, pid_map = relabel(splits.train)

    dgnet data check --layout market1501 /data/Market-1501-v15.09.15 --json

Conventions: ``camid`` is 0-based (``c1`` -> 0); pid ``-1`` (junk) and pid
``0`` (distractors) are kept in the gallery (evaluation handles them) and
pid -1 is dropped from training.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from dgnet.errors import UserError

LAYOUTS = ("synthetic", "market1501", "duke", "msmt17", "cuhk03np")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class DataLayoutError(UserError):
    """A data-set tree does not have the expected folders, names or images."""


@dataclass(frozen=True)
class Sample:
    """One image: its path, identity label and 0-based camera index."""

    path: str
    pid: int
    camid: int


@dataclass(frozen=True)
class ReidSplits:
    """The standard re-id splits; ``multi_query`` is Market-1501's ``gt_bbox`` (else empty)."""

    train: tuple[Sample, ...]
    query: tuple[Sample, ...]
    gallery: tuple[Sample, ...]
    multi_query: tuple[Sample, ...] = ()


# Published counts (ids, images) per split as published with each data set. Gallery ids
# count every distinct pid in the folder, distractors (0) and junk (-1) included.
PUBLISHED: dict[str, dict[str, tuple[int, int]]] = {
    "market1501": {"train": (751, 12936), "query": (750, 3368), "gallery": (752, 19732)},
    "duke": {"train": (702, 16522), "query": (702, 2228), "gallery": (1110, 17661)},
    "msmt17": {"train": (1041, 32621), "query": (3060, 11659), "gallery": (3060, 82161)},
    "cuhk03np/labeled": {"train": (767, 7368), "query": (700, 1400), "gallery": (700, 5328)},
    "cuhk03np/detected": {"train": (767, 7365), "query": (700, 1400), "gallery": (700, 5332)},
}


# ---------------------------------------------------------------- folder layouts
# (regex on the file stem, human-readable pattern for error messages)

# re.ASCII: identities and cameras are ASCII digits only (``\d`` would accept any Unicode digit)
_MARKET_NAME = (re.compile(r"^(-1|\d{1,5})_c(\d+)s\d+_\d+_\d+$", re.ASCII),
                "PPPP_cCsS_FFFFFF_BB.jpg, e.g. 0002_c1s1_000451_03.jpg")
_DUKE_NAME = (re.compile(r"^(-1|\d{1,5})_c(\d+)_f\d+$", re.ASCII), "PPPP_cC_fFFFFFFF.jpg, e.g. 0001_c2_f0046182.jpg")
_CUHK_NAME = (re.compile(r"^(-1|\d{1,5})_c(\d+)_\d+$", re.ASCII), "PPPP_cC_N.png, e.g. 0001_c1_1.png")
_MSMT_NAME = re.compile(r"^\d+_\d+_(\d+)_", re.ASCII)
_MSMT_PATTERN = "PPPP/PPPP_NNN_CC_..._N.jpg PID, e.g. 0000/0000_000_01_0303morning_0015_0.jpg 0"

_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


def _require_root(root: Path) -> None:
    if not root.is_dir():
        raise DataLayoutError(f"{root}: data-set root not found (expected a folder)")


def _split_dir(root: Path, name: str, what: str) -> Path:
    folder = root / name
    if not folder.is_dir():
        raise DataLayoutError(f"{folder}: missing split folder {name}/ (expected {what})")
    return folder


def _image_names(folder: Path) -> list[str]:
    """Sorted image file names in ``folder`` (other files such as Thumbs.db are ignored).

    An image name that is a symbolic link to nothing is an error naming it.
    """
    with os.scandir(folder) as it:
        entries = [e for e in it if e.name.lower().endswith(IMAGE_SUFFIXES)]
    dangling = sorted(e.name for e in entries if e.is_symlink() and not os.path.exists(e.path))
    if dangling:
        first = folder / dangling[0]
        raise DataLayoutError(f"{first}: dangling symbolic link (its target {os.readlink(first)} does not exist; "
                              f"{len(dangling)} dangling link(s) in {folder}); restore the targets or remove the links")
    return sorted(e.name for e in entries if e.is_file())


def _parse_folder(folder: Path, name_rule: tuple[re.Pattern, str]) -> list[Sample]:
    regex, pattern = name_rule
    out = []
    for name in _image_names(folder):
        m = regex.match(os.path.splitext(name)[0])
        if m is None:
            raise DataLayoutError(
                f"{folder / name}: file name does not parse; expected {pattern}"
            )
        cam = int(m.group(2))
        if cam < 1:
            raise DataLayoutError(
                f"{folder / name}: camera number must be >= 1 (1-based); expected {pattern}"
            )
        out.append(Sample(str(folder / name), int(m.group(1)), cam - 1))
    return out


def _folder_layout(root: Path, name_rule, what: str, multi_query: bool = False) -> ReidSplits:
    _require_root(root)
    parts = {}
    for split, folder in _FOLDERS.items():
        parts[split] = _parse_folder(_split_dir(root, folder, what), name_rule)
    mq: list[Sample] = []
    if multi_query and (root / "gt_bbox").is_dir():
        mq = _parse_folder(root / "gt_bbox", name_rule)
    train = [s for s in parts["train"] if s.pid >= 0]
    return ReidSplits(tuple(train), tuple(parts["query"]), tuple(parts["gallery"]), tuple(mq))


# ---------------------------------------------------------------- MSMT17


def _list_lines(list_path: Path) -> list[str]:
    """The lines of a list file; bytes that are not UTF-8 are an error naming the line."""
    data = list_path.read_bytes()
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        lineno = data.count(b"\n", 0, err.start) + 1
        raise DataLayoutError(f"{list_path} line {lineno}: not UTF-8 text (byte {data[err.start]:#04x}); "
                              f"re-save the list as UTF-8") from None


def _read_list(root: Path, list_name: str, image_dir: Path, seen: dict[str, tuple[str, int]]) -> list[Sample]:
    """Parse one MSMT17 list file. ``seen`` maps every image already listed (in any list) to
    its line and pid: a duplicate line, one image under two ids or an image in both train and
    test lists is an error naming both lines."""
    list_path = root / list_name
    if not list_path.is_file():
        raise DataLayoutError(f"{list_path}: missing list file (expected lines '{_MSMT_PATTERN}')")
    root_norm = os.path.normpath(os.path.abspath(root))
    out = []
    for lineno, line in enumerate(_list_lines(list_path), 1):
        line = line.strip()
        if not line:
            continue
        fields = line.split()
        where = f"{list_path} line {lineno}"
        if len(fields) != 2 or not re.fullmatch(r"-?[0-9]+", fields[1]):
            raise DataLayoutError(f"{where}: expected '{_MSMT_PATTERN}', got {line!r}")
        rel, pid = fields[0], int(fields[1])
        path = image_dir / rel
        norm = os.path.normpath(os.path.abspath(path))  # lexical: symlinked folders are fine
        if os.path.isabs(rel) or os.path.commonpath([norm, root_norm]) != root_norm:
            raise DataLayoutError(f"{where}: path {rel!r} points outside ROOT {root}")
        m = _MSMT_NAME.match(Path(rel).name)
        if m is None or int(m.group(1)) < 1:
            raise DataLayoutError(
                f"{where}: file name {Path(rel).name!r} does not parse; expected {_MSMT_PATTERN}"
            )
        if not path.is_file():
            raise DataLayoutError(f"{where}: image {path} does not exist")
        if norm in seen:
            first, first_pid = seen[norm]
            what = (f"listed with pid {pid} here and pid {first_pid}" if first_pid != pid
                    else "listed again")
            raise DataLayoutError(f"{where}: image {rel!r} is {what} at {first}; each image may be listed once")
        seen[norm] = (where, pid)
        out.append(Sample(str(path), pid, int(m.group(1)) - 1))
    return out


def _msmt17(root: Path) -> ReidSplits:
    _require_root(root)
    what = "MSMT17: train/, test/, list_train.txt, list_val.txt, list_query.txt, list_gallery.txt"
    train_dir = _split_dir(root, "train", what)
    test_dir = _split_dir(root, "test", what)
    seen: dict[str, tuple[str, int]] = {}
    train = _read_list(root, "list_train.txt", train_dir, seen) + _read_list(root, "list_val.txt", train_dir, seen)
    query = _read_list(root, "list_query.txt", test_dir, seen)
    gallery = _read_list(root, "list_gallery.txt", test_dir, seen)
    train = [s for s in train if s.pid >= 0]
    return ReidSplits(tuple(train), tuple(query), tuple(gallery))


# ---------------------------------------------------------------- public API


def load_layout(layout: str, root: str | Path, cuhk03_subset: str = "labeled") -> ReidSplits:
    """Parse the data set at ``root`` laid out as ``layout`` (one of :data:`LAYOUTS`).

    Raises :class:`DataLayoutError` naming the folder, file or list line that
    does not fit, and when a split is empty.
    """
    root = Path(root)
    if layout in ("synthetic", "market1501"):
        what = "Market-1501: bounding_box_train/, bounding_box_test/, query/ (gt_bbox/ optional)"
        splits = _folder_layout(root, _MARKET_NAME, what, multi_query=True)
    elif layout == "duke":
        what = "DukeMTMC-reID: bounding_box_train/, bounding_box_test/, query/"
        splits = _folder_layout(root, _DUKE_NAME, what)
    elif layout == "msmt17":
        splits = _msmt17(root)
    elif layout == "cuhk03np":
        if cuhk03_subset not in ("labeled", "detected"):
            raise DataLayoutError(f"cuhk03 subset must be 'labeled' or 'detected', got {cuhk03_subset!r}")
        _require_root(root)
        sub = _split_dir(root, cuhk03_subset, "CUHK03-NP: labeled/ and detected/")
        what = f"CUHK03-NP {cuhk03_subset}/: bounding_box_train/, bounding_box_test/, query/"
        splits = _folder_layout(sub, _CUHK_NAME, what)
    else:
        raise DataLayoutError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    for split in ("train", "query", "gallery"):
        if not getattr(splits, split):
            raise DataLayoutError(f"{root}: the {split} split has no images (layout {layout})")
    return splits


def relabel(samples: Iterable[Sample]) -> tuple[tuple[Sample, ...], dict[int, int]]:
    """Map pids to ``0..K-1`` in sorted pid order; returns the new samples and ``{old: new}``."""
    samples = tuple(samples)
    mapping = {pid: i for i, pid in enumerate(sorted({s.pid for s in samples}))}
    return tuple(Sample(s.path, mapping[s.pid], s.camid) for s in samples), mapping


def split_counts(samples: Sequence[Sample]) -> dict[str, int]:
    """``{"ids": distinct pids (0 and -1 included), "images": n}``."""
    return {"ids": len({s.pid for s in samples}), "images": len(samples)}


def verify_images(samples: Sequence[Sample], progress: bool = False) -> None:
    """Open every image with PIL (``verify``); a corrupt or unreadable file is a DataLayoutError."""
    from PIL import Image
    from dgnet.progress import tqdm

    for s in tqdm(samples, desc="verify images", unit="img", disable=not progress, leave=False):
        try:
            with Image.open(s.path) as im:
                im.verify()
        except Exception as err:  # PIL raises several types for truncated/corrupt files
            raise DataLayoutError(f"{s.path}: unreadable or corrupt image ({err})") from None


def published_key(layout: str, cuhk03_subset: str = "labeled") -> str | None:
    if layout == "cuhk03np":
        return f"cuhk03np/{cuhk03_subset}"
    return layout if layout in PUBLISHED else None


def count_warnings(layout: str, counts: dict, cuhk03_subset: str = "labeled") -> list[str]:
    """Differences between ``counts`` and the published numbers of ``layout``."""
    key = published_key(layout, cuhk03_subset)
    if key is None:
        return []
    warnings = []
    for split, (ids, images) in PUBLISHED[key].items():
        got = counts[split]
        if (got["ids"], got["images"]) != (ids, images):
            warnings.append(
                f"{key} {split}: found {got['ids']} ids / {got['images']} images, "
                f"published {ids} ids / {images} images"
            )
    return warnings


def check_layout(
    layout: str, root: str | Path, cuhk03_subset: str = "labeled", progress: bool = False
) -> dict:
    """Parse ``root``, open every image, and count ids and images per split.

    Returns ``{"train": {"ids", "images"}, "query": {...}, "gallery": {...},
    "warnings": [...]}``; warnings (counts that differ from the published ones,
    query ids without a gallery image, ids shared by train and test) never fail.
    """
    splits = load_layout(layout, root, cuhk03_subset)
    verify_images(splits.train + splits.query + splits.gallery + splits.multi_query, progress)
    counts = {name: split_counts(getattr(splits, name)) for name in ("train", "query", "gallery")}
    warnings = count_warnings(layout, counts, cuhk03_subset)
    gallery_ids = {s.pid for s in splits.gallery}
    lonely = sorted({s.pid for s in splits.query} - gallery_ids)
    if lonely:
        warnings.append(f"{len(lonely)} query ids have no gallery image (e.g. pid {lonely[0]})")
    if layout != "msmt17":  # MSMT17 numbers train and test ids from 0 independently
        shared = sorted({s.pid for s in splits.train} & ({s.pid for s in splits.query} | gallery_ids) - {0, -1})
        if shared:
            warnings.append(f"{len(shared)} ids appear in both train and test (e.g. pid {shared[0]})")
    return {**counts, "warnings": warnings}


__all__ = [
    "LAYOUTS", "PUBLISHED", "DataLayoutError", "ReidSplits", "Sample", "check_layout",
    "count_warnings", "load_layout", "relabel", "split_counts", "verify_images",
]
