"""Benchmark layouts: turn a dataset on disk into a list of :class:`EvalItem` (two inputs, a truth, t).

Layouts (``--layout`` of ``vfi bench``):

- ``triplets-csv``: a CSV with columns ``set,frame0,frame1,gt,t``, paths relative to the CSV
  (e.g. ``../shared/data/dev/triplets.csv``).
- ``ucf101``: UCF101-DVF, ``<id>/frame_00.png, frame_01_gt.png, frame_02.png`` (the
  ``<id>/frame0.png, frame1.png, frame2.png`` naming of the dev copy is read as well); set ``ucf101``.
- ``middlebury``: Middlebury "other", ``input/<seq>/frame10.png, frame11.png`` and
  ``gt/<seq>/frame10i11.png``; only sequences with a ground truth are scored; set ``middlebury``.
- ``vimeo-triplet``: Vimeo-90K triplets, ``sequences/<a>/<b>/im1..im3.png``, im2 from im1 and im3;
  set ``vimeo_triplet``. When ``tri_testlist.txt`` lies beside ``sequences/`` only the folders it
  lists are used (the official test split), otherwise every folder.
- ``vimeo-septuplet``: Vimeo-90K septuplets, ``sequences/<a>/<b>/im1..im7.png`` (``sep_testlist.txt``
  as above); three sets, as in the dev benchmark: ``vimeo_gap1`` (im4 from im3, im5),
  ``vimeo_gap3`` (im4 from im1, im7) and ``vimeo_t1of3`` (im3 from im1, im7 at t = 1/3).
- ``gap:K``: folders of frame sequences (``DIR/<seq>/*.png|jpg``, or images directly in ``DIR``),
  frames sorted by name; windows ``i, i+2K`` predict ``i+K`` at t = 0.5, for i = 0, 2K, 4K...
  (consecutive windows share an end frame, no truth is scored twice); one set per sequence.
- ``seven``: the 7-frame protocol on such folders: windows of 7 frames starting every 6 frames;
  given frames 1 and 7 of a window, predict frames 2..6 at t = 1/6..5/6; one set per sequence.

Each item has a ``key``, a relative POSIX path without extension, unique in the dataset
(``<set>/<gt path>``); a folder of predictions holds the prediction of an item at ``<key>.png``.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
LAYOUTS = ("triplets-csv", "ucf101", "middlebury", "vimeo-triplet", "vimeo-septuplet", "gap:K", "seven")


@dataclass(frozen=True)
class EvalItem:
    """One scored frame: predict ``gt`` from ``frame0`` and ``frame1`` at time ``t`` in (0, 1)."""

    set: str
    key: str
    frame0: Path
    frame1: Path
    gt: Path
    t: float


def _key(set_name: str, gt: Path, root: Path) -> str:
    """``<set>/<gt path without suffix>``, relative to ``root`` when ``gt`` lies under it (a manifest
    may also name absolute paths elsewhere: those keep their whole path, less the anchor)."""
    try:
        name = gt.relative_to(root)
    except ValueError:
        name = Path(*gt.parts[1:]) if gt.is_absolute() else gt
    return f"{set_name}/{name.with_suffix('').as_posix()}"


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _load_triplets_csv(manifest: Path) -> list[EvalItem]:
    root = manifest.parent
    with open(manifest, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"set", "frame0", "frame1", "gt", "t"} - set(reader.fieldnames or ())
        if missing:
            raise InputError(f"{manifest} is not a triplet manifest: missing column(s) {', '.join(sorted(missing))}")
        items = []
        for line, row in enumerate(reader, start=2):
            try:
                t = float(row["t"])
            except ValueError:
                raise InputError(f"{manifest}:{line}: t must be a number, got {row['t']!r}") from None
            if not 0.0 < t < 1.0:
                raise InputError(f"{manifest}:{line}: t must lie strictly between 0 and 1, got {t}")
            gt = root / row["gt"]
            items.append(EvalItem(row["set"], _key(row["set"], gt, root), root / row["frame0"],
                                  root / row["frame1"], gt, t))
    return items


def _load_ucf101(root: Path) -> list[EvalItem]:
    items = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for names in (("frame_00.png", "frame_02.png", "frame_01_gt.png"), ("frame0.png", "frame2.png", "frame1.png")):
            f0, f1, gt = (folder / n for n in names)
            if f0.is_file() and f1.is_file() and gt.is_file():
                items.append(EvalItem("ucf101", _key("ucf101", gt, root), f0, f1, gt, 0.5))
                break
    return items


def _load_middlebury(root: Path) -> list[EvalItem]:
    items = []
    for gt in sorted((root / "gt").glob("*/frame10i11.png")):
        seq = gt.parent.name
        f0, f1 = root / "input" / seq / "frame10.png", root / "input" / seq / "frame11.png"
        if not (f0.is_file() and f1.is_file()):
            raise InputError(f"Middlebury sequence {seq!r} has a ground truth but lacks {f0} or {f1}")
        items.append(EvalItem("middlebury", _key("middlebury", gt, root), f0, f1, gt, 0.5))
    return items


def _vimeo_folders(root: Path, test_list: str) -> tuple[Path, list[Path]]:
    """The ``sequences`` folder (or ``root`` itself when it has none) and its ``<a>/<b>`` folders."""
    base = root / "sequences" if (root / "sequences").is_dir() else root
    listing = root / test_list
    if listing.is_file():
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
        return base, [base / name for name in names]
    return base, sorted(p for p in base.glob("*/*") if p.is_dir())


def _load_vimeo(root: Path, septuplet: bool) -> list[EvalItem]:
    base, folders = _vimeo_folders(root, "sep_testlist.txt" if septuplet else "tri_testlist.txt")
    # (set, frame0, frame1, gt, t), frame numbers as in im<N>.png
    protocol = ((("vimeo_gap1", 3, 5, 4, 0.5), ("vimeo_gap3", 1, 7, 4, 0.5), ("vimeo_t1of3", 1, 7, 3, 1 / 3))
                if septuplet else (("vimeo_triplet", 1, 3, 2, 0.5),))
    items = []
    for folder in folders:
        for set_name, i0, i1, igt, t in protocol:
            f0, f1, gt = (folder / f"im{i}.png" for i in (i0, i1, igt))
            for p in (f0, f1, gt):
                if not p.is_file():
                    raise InputError(f"Vimeo folder {folder} lacks {p.name}")
            items.append(EvalItem(set_name, _key(set_name, gt, base), f0, f1, gt, t))
    return items


def _sequences(root: Path) -> list[tuple[str, list[Path]]]:
    """``(name, sorted frames)`` of each sequence folder under ``root``, or of ``root`` itself."""
    direct = _images_in(root)
    if direct:
        return [(root.name, direct)]
    return [(p.name, _images_in(p)) for p in sorted(root.iterdir()) if p.is_dir()]


def _load_gap(root: Path, gap: int) -> list[EvalItem]:
    items = []
    for name, frames in _sequences(root):
        for i in range(0, len(frames) - 2 * gap, 2 * gap):
            gt = frames[i + gap]
            items.append(EvalItem(name, _key(name, gt, root), frames[i], frames[i + 2 * gap], gt, 0.5))
    return items


def _load_seven(root: Path) -> list[EvalItem]:
    items = []
    for name, frames in _sequences(root):
        for i in range(0, len(frames) - 6, 6):
            for k in range(1, 6):
                gt = frames[i + k]
                items.append(EvalItem(name, _key(name, gt, root), frames[i], frames[i + 6], gt, k / 6))
    return items


def detect_layout(path: Path) -> str:
    """Guess the layout of ``path``; raise :class:`InputError` when it cannot be told."""
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return "triplets-csv"
        raise InputError(f"{path} is a file but not a .csv triplet manifest")
    if (path / "input").is_dir() and (path / "gt").is_dir():
        return "middlebury"
    base = path / "sequences" if (path / "sequences").is_dir() else path
    leaf = next((p for p in base.glob("*/*/im1.png")), None)
    if leaf is not None:
        return "vimeo-septuplet" if (leaf.parent / "im7.png").is_file() else "vimeo-triplet"
    if next(path.glob("*/frame_01_gt.png"), None) or next(path.glob("*/frame1.png"), None):
        return "ucf101"
    raise InputError(f"cannot tell the layout of {path}; pass --layout "
                     "(gap:K or seven for folders of frame sequences)")


def parse_layout(layout: str) -> tuple[str, int | None]:
    """Split ``gap:K`` into ``("gap", K)``; other layouts give ``(layout, None)``."""
    if layout.startswith("gap:"):
        try:
            gap = int(layout[4:])
        except ValueError:
            gap = 0
        if gap < 1:
            raise InputError(f"layout {layout!r}: K in gap:K must be a positive integer")
        return "gap", gap
    if layout not in LAYOUTS and layout != "auto":
        raise InputError(f"unknown layout {layout!r}; use auto or one of {', '.join(LAYOUTS)}")
    return layout, None


def load_eval_set(path: str | Path, layout: str = "auto", limit: int | None = None,
                  sets: list[str] | None = None) -> tuple[str, list[EvalItem]]:
    """Read the benchmark at ``path`` in ``layout`` (``auto`` detects it).

    Returns the resolved layout name and the items, in a stable order; ``sets`` keeps only the items
    of these sets (e.g. the five DAVIS validation sequences of a ``seven`` folder), then ``limit``
    keeps the first N. Raises :class:`InputError` for a missing path, an unknown layout, a set the
    dataset does not have or a dataset with no items.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"dataset {path} does not exist")
    kind, gap = parse_layout(layout)
    if kind == "auto":
        layout = detect_layout(path)
        kind, gap = parse_layout(layout)
    if kind != "triplets-csv" and not path.is_dir():
        raise InputError(f"layout {layout} needs a folder, but {path} is a file")
    if kind == "triplets-csv":
        items = _load_triplets_csv(path)
    elif kind == "ucf101":
        items = _load_ucf101(path)
    elif kind == "middlebury":
        items = _load_middlebury(path)
    elif kind in ("vimeo-triplet", "vimeo-septuplet"):
        items = _load_vimeo(path, septuplet=kind == "vimeo-septuplet")
    elif kind == "gap":
        items = _load_gap(path, gap)
    else:
        items = _load_seven(path)
    if sets:
        present = list(dict.fromkeys(item.set for item in items))
        missing = [name for name in sets if name not in present]
        if missing:
            raise InputError(f"dataset {path} has no set {', '.join(missing)} in layout {layout}; "
                             f"its sets: {', '.join(present)}")
        items = [item for item in items if item.set in sets]
    if limit is not None:
        if limit < 1:
            raise InputError(f"--limit must be at least 1, got {limit}")
        items = items[:limit]
    if not items:
        raise InputError(f"dataset {path} holds no items in layout {layout}")
    keys = [item.key for item in items]
    if len(set(keys)) != len(keys):
        duplicate = next(k for k in keys if keys.count(k) > 1)
        raise InputError(f"dataset {path} scores {duplicate!r} twice: each set must name a ground truth once")
    return layout, items
