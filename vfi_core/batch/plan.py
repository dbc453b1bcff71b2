"""What a batch job does: its items (a source, an output, the settings) and how a long video splits.

Items come from a folder (:func:`folder_items`: every video file and every folder of frames under
it, outputs mirroring the tree) or a manifest (:func:`manifest_items`: one row per item, CSV or
JSON Lines, with per-item overrides of the command's settings). A bad value in one row makes that
item fail with its reason; the others still run.
"""
from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path

from .. import registry
from ..errors import InputError, VFIError
from ..io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from ..pipeline import DEFAULT_SCENE_THRESHOLD, SequenceOptions, timing_options

# Containers read as videos when a folder is searched (any PyAV can open; written: VIDEO_EXTENSIONS).
VIDEO_INPUTS = VIDEO_EXTENSIONS + (".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".flv", ".wmv", ".3gp")
# Output formats: "same" keeps a video's container (.mp4 for ones that cannot be written), a folder
# of frames stays a PNG folder; "png" writes PNG folders; the others a video of that container.
FORMATS = ("same", "png") + tuple(ext[1:] for ext in VIDEO_EXTENSIONS)
# Manifest columns besides input and output: the per-item settings they override.
SETTING_COLUMNS = ("model", "params", "multiplier", "fps", "scene_threshold", "loop", "dedup", "crf", "preset",
                   "audio", "input_fps", "format")


@dataclass(frozen=True)
class ItemSettings:
    """How one item is interpolated: the model and its parameters, the timing, the encoder.

    ``fps`` "0" uses ``multiplier``; ``scene_threshold`` None never cuts; ``input_fps`` is the rate of
    a folder of frames (None: 25); ``weight_dirs``: folders searched for weight files before the
    shipped ones (as ``vfi interpolate --weight-dir``).
    """

    model: str
    params: dict = field(default_factory=dict)
    multiplier: int = 2
    fps: str = "0"
    scene_threshold: float | None = DEFAULT_SCENE_THRESHOLD
    loop: bool = False
    dedup: bool = False
    crf: int | None = None
    preset: str | None = None
    audio: bool = True
    input_fps: str | None = None
    format: str = "same"
    weight_dirs: tuple[str, ...] = ()

    def checked(self) -> "ItemSettings":
        """These settings with the model's parameters resolved (defaults filled in), every value checked
        against its declaration (:class:`~vfi_core.errors.VFIError` with one line otherwise)."""
        descriptor = registry.get_descriptor(self.model)
        if self.format not in FORMATS:
            raise InputError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        self.options()
        return replace(self, model=descriptor.name, params=descriptor.resolve_params(self.params))

    def options(self) -> SequenceOptions:
        return timing_options(multiplier=self.multiplier, target_fps=self.fps, scene_threshold=self.scene_threshold,
                              loop=self.loop, dedup=self.dedup)

    def folder_fps(self) -> Fraction | None:
        from ..timing import parse_fps
        return parse_fps(self.input_fps) if self.input_fps is not None else None

    def with_overrides(self, row: dict) -> "ItemSettings":
        """These settings with a manifest row's values (text from CSV, JSON values from JSON Lines)."""
        values = {}
        for key, value in row.items():
            if value is None or value == "":
                continue
            if key == "params":
                values["params"] = {**self.params, **_params(value)}
            elif key in ("loop", "dedup", "audio"):
                values[key] = _boolean(key, value)
            elif key in ("multiplier", "crf"):
                values[key] = _integer(key, value)
            elif key == "scene_threshold":
                values[key] = None if str(value).strip().lower() == "none" else _number(key, value)
            else:
                values[key] = str(value).strip()
        return replace(self, **values)


@dataclass(frozen=True)
class BatchItem:
    """One source to interpolate into ``output``; ``error`` is set when the item cannot run (its
    one-line reason) and it is then reported as failed without running."""

    input: Path
    output: Path
    settings: ItemSettings
    error: str | None = None

    @property
    def key(self) -> str:
        """Identifies the item's work: its source, output and settings (a changed setting is new work)."""
        text = json.dumps([str(self.input.resolve()), str(self.output.resolve()), asdict(self.settings)],
                          sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Part:
    """Source frames ``[start, stop)`` of a split video: ``stop - 1`` is the next part's first frame."""

    index: int
    start: int
    stop: int


def is_frame_folder(path: Path) -> bool:
    """Whether ``path`` is a folder holding image files directly."""
    return path.is_dir() and any(p.suffix.lower() in IMAGE_EXTENSIONS for p in path.iterdir() if p.is_file())


def find_sources(root: Path) -> list[Path]:
    """Every video file and folder of frames under ``root`` (itself included), in path order; hidden
    files and folders (names starting with a dot) are skipped."""
    found = []
    if is_frame_folder(root):
        found.append(root)
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and path.suffix.lower() in VIDEO_INPUTS:
            found.append(path)
        elif is_frame_folder(path):
            found.append(path)
    return found


def output_path(source: Path, relative: Path, outdir: Path, fmt: str) -> Path:
    """Where ``source`` (at ``relative`` in the input tree) goes under ``outdir`` for format ``fmt``."""
    folder_source = source.is_dir()
    if fmt == "png" or (fmt == "same" and folder_source):
        name = relative.stem if not folder_source else relative.name
        return outdir / relative.parent / name if relative.name else outdir / source.name
    if fmt == "same":
        ext = source.suffix.lower() if source.suffix.lower() in VIDEO_EXTENSIONS else ".mp4"
    else:
        ext = f".{fmt}"
    if folder_source:
        return outdir / relative.parent / f"{relative.name or source.name}{ext}"
    return outdir / relative.with_suffix(ext)


def folder_items(root: Path, outdir: Path, settings: ItemSettings) -> list[BatchItem]:
    """An item per source under ``root`` (see :func:`find_sources`), its output at the same place
    under ``outdir``."""
    root, outdir = Path(root), Path(outdir)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder")
    if outdir.resolve().is_relative_to(root.resolve()) and outdir.resolve() != root.resolve() and \
            not any(p.startswith(".") for p in outdir.resolve().relative_to(root.resolve()).parts):
        raise InputError("the output folder is inside the input folder: its outputs would be read as inputs "
                         "next time; choose an output folder outside it")
    sources = find_sources(root)
    if not sources:
        raise InputError(f"{root} holds no video files ({', '.join(VIDEO_INPUTS)}) or folders of images")
    items = []
    for source in sources:
        relative = source.relative_to(root)
        items.append(_item(source, output_path(source, relative, outdir, settings.format), settings))
    return _without_collisions(items)


def manifest_items(manifest: Path, outdir: Path, settings: ItemSettings) -> list[BatchItem]:
    """Items from a CSV (header row) or JSON Lines manifest. Columns: ``input`` (required; relative
    to the manifest's folder), ``output`` (relative to ``outdir``; default the input's name there) and
    any of :data:`SETTING_COLUMNS`, which override ``settings`` for that row. ``params`` is
    ``name=value`` pairs separated by spaces (CSV) or an object (JSON Lines)."""
    manifest, outdir = Path(manifest), Path(outdir)
    rows = _read_manifest(manifest)
    items = []
    for number, row in rows:
        unknown = set(row) - {"input", "output", *SETTING_COLUMNS}
        if unknown:
            raise InputError(f"{manifest.name} line {number}: unknown column(s) {', '.join(sorted(unknown))}; "
                             f"known: input, output, {', '.join(SETTING_COLUMNS)}")
        if not str(row.get("input") or "").strip():
            raise InputError(f"{manifest.name} line {number}: no input")
        source = Path(str(row["input"]).strip())
        source = source if source.is_absolute() else manifest.parent / source
        overrides = {k: v for k, v in row.items() if k in SETTING_COLUMNS}
        try:
            item_settings = settings.with_overrides(overrides)
        except VFIError as exc:
            items.append(BatchItem(source, outdir / source.name, settings, f"line {number}: {exc}"))
            continue
        given = str(row.get("output") or "").strip()
        output = outdir / given if given else output_path(source, Path(source.name), outdir, item_settings.format)
        items.append(_item(source, output, item_settings))
    if not items:
        raise InputError(f"{manifest} lists no items")
    return _without_collisions(items)


def _without_collisions(items: list[BatchItem]) -> list[BatchItem]:
    """``items`` where an item whose output another item already writes fails instead (``a.mov`` and
    ``a.mkv`` both as ``a.mp4``, say), so that no output is written twice."""
    first: dict[Path, Path] = {}
    checked = []
    for item in items:
        key = item.output.resolve()
        if key in first and item.error is None:
            item = replace(item, error=f"its output {item.output} is also the output of {first[key]}; give it "
                                       "another output (a manifest) or keep the containers (--format same)")
        first.setdefault(key, item.input)
        checked.append(item)
    return checked


def _item(source: Path, output: Path, settings: ItemSettings) -> BatchItem:
    try:
        return BatchItem(source, output, settings.checked())
    except VFIError as exc:
        return BatchItem(source, output, settings, str(exc))


def _read_manifest(path: Path) -> list[tuple[int, dict]]:
    """``(line number, row)`` pairs of a ``.csv`` or ``.jsonl`` manifest."""
    if path.suffix.lower() not in (".csv", ".jsonl", ".ndjson"):
        raise InputError(f"a manifest is a .csv or .jsonl file, got {path.name} (give a folder of videos, or a "
                         "manifest listing them)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the manifest {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or "input" not in [f.strip() for f in reader.fieldnames]:
            raise InputError(f"{path.name}: the first row must name the columns, one of them 'input'")
        return [(i + 2, {k.strip(): v for k, v in row.items() if k is not None})
                for i, row in enumerate(reader) if any((v or "").strip() for v in row.values() if isinstance(v, str))]
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path.name} line {number}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise InputError(f"{path.name} line {number}: expected an object with an 'input' key")
        rows.append((number, row))
    return rows


def split_points(count: int, keyframes: list[int], part_frames: int) -> list[Part]:
    """Parts of about ``part_frames`` source frames covering frames ``0..count-1``, each starting at
    a keyframe where one lies within a quarter part of the even cut (decoding then starts right
    there), else exactly at the cut. Consecutive parts share their boundary frame."""
    if part_frames < 2 or count <= part_frames:
        return [Part(0, 0, count)]
    n = round((count - 1) / part_frames)
    if n < 2:
        return [Part(0, 0, count)]
    cuts = []
    for k in range(1, n):
        ideal = round(k * (count - 1) / n)
        near = [f for f in keyframes if abs(f - ideal) <= part_frames // 4]
        cut = min(near, key=lambda f: abs(f - ideal)) if near else ideal
        if cuts and cut <= cuts[-1] or cut <= 0 or cut >= count - 1:
            continue
        cuts.append(cut)
    bounds = [0, *cuts, count - 1]
    return [Part(i, a, b + 1) for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]


def _params(value) -> dict:
    if isinstance(value, dict):
        return dict(value)
    params = {}
    for pair in str(value).split():
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise InputError(f"params expects name=value pairs separated by spaces, got {pair!r}")
        params[name] = text
    return params


def _boolean(key: str, value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise InputError(f"{key} must be true or false, got {value!r}")


def _integer(key: str, value) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if number is None or not number.is_integer():
        raise InputError(f"{key} must be a whole number, got {value!r}")
    return int(number)


def _number(key: str, value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{key} must be a number, got {value!r}") from None
