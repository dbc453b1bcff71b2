"""One interpolation job of the web app, independent of Gradio: limits, the pipeline run and the views.

A job reads a video (or two images), checks it against the app's :class:`Limits`, interpolates it
with :func:`vfi_core.pipeline.interpolate_file` into the chosen format, and makes the result views:
a browser-playable copy, a side-by-side comparison (source at the output rate | result) and, for
models that give one, the confidence heat map of the middle frame pair. Everything is written into
the job's working folder, which the caller owns and removes.
"""
from __future__ import annotations

import itertools
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from vfi_core.errors import InputError
from vfi_core.io import open_reader, open_writer
from vfi_core.io.images import IMAGE_EXTENSIONS, PngSequenceWriter
from vfi_core.limits import WorkLimits
from vfi_core.model_cache import MODELS
from vfi_core.pipeline import OutputFrame, SequenceOptions, SequenceStats, interpolate_file, timing_options

# Output formats the writer supports, with the label the app shows.
OUTPUT_FORMATS = {"mp4": "MP4 (H.264)", "webm": "WebM (VP9)", "mov": "MOV (H.264)", "mkv": "MKV (H.264)",
                  "gif": "GIF"}
BROWSER_PLAYABLE = ("mp4", "webm")
IMAGE_PAIR_FPS = Fraction(25)  # the rate two uploaded images are taken at
COMPARISON_MAX_WIDTH = 1280

# 'inferno'-like colour map: (position, RGB) stops, dark = sure, bright = likely artefacts.
_HEAT_STOPS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
_HEAT_COLOURS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=float)


@dataclass(frozen=True)
class Limits:
    """What one job may ask for; uploads above ``max_upload_mb`` are refused by the server."""

    max_upload_mb: int = 200
    max_seconds: float = 60.0
    max_pixels: int = 1920 * 1080
    max_frames: int = 10_000
    max_minutes: float = 20.0
    max_adapt_steps: int = 500

    def work_limits(self) -> WorkLimits:
        """The core's bounds for this app's jobs: stricter than the command line's."""
        elsewhere = "this app's limit; `vfi interpolate` takes more"
        return WorkLimits(self.max_frames, self.max_pixels / 1e6, self.max_minutes / 60,
                          raise_with=(elsewhere, elsewhere, elsewhere))

    def check_adapt_steps(self, steps: int) -> None:
        """Raise :class:`InputError` for more adaptation steps than this app runs."""
        if steps > self.max_adapt_steps:
            raise InputError(f"this app adapts for up to {self.max_adapt_steps} steps, got {steps}; "
                             "use `vfi interpolate --adapt` for more")

    def check(self, reader, preview_seconds: float = 0.0) -> None:
        """Raise :class:`InputError` for a source the app does not take (its frame size is checked
        when it is opened, by :meth:`work_limits`); a preview of its first ``preview_seconds`` is
        measured by those seconds, not by the whole clip."""
        if reader.count < 2:
            raise InputError("the clip has only one frame; interpolation needs at least two")
        if reader.duration > self.max_seconds and not 0 < preview_seconds <= self.max_seconds:
            raise InputError(f"the clip lasts {float(reader.duration):.1f} s; this app takes up to "
                             f"{self.max_seconds:g} s: trim it, preview its first seconds (up to "
                             f"{self.max_seconds:g}), or use `vfi interpolate`")


@dataclass(frozen=True)
class JobSettings:
    """What the user chose. ``options``: the timing, checked against its declaration
    (:func:`vfi_core.pipeline.timing_options`); ``adapt``: the adaptation options by their declared
    names (:data:`vfi_core.adapt.ADAPT_PARAMS`), checked (:func:`adapt_settings`)."""

    model: str
    model_params: dict
    options: SequenceOptions = field(default_factory=timing_options)
    preview_seconds: float = 0.0  # 0: the whole clip
    output_format: str = "mp4"
    keep_audio: bool = True
    adapt: dict = field(default_factory=lambda: adapt_settings({}))


def adapt_settings(values: dict | None) -> dict:
    """The adaptation options ``{"adapt", "adapt_rate", "adapt_rank"}`` from ``values`` (missing ones
    take their declared default), each checked against its declaration; unknown names are refused."""
    from vfi_core.adapt import ADAPT_PARAMS

    values = dict(values or {})
    unknown = set(values) - {p.name for p in ADAPT_PARAMS}
    if unknown:
        raise InputError(f"unknown adaptation option(s) {', '.join(sorted(unknown))}; the options are "
                         f"{', '.join(p.name for p in ADAPT_PARAMS)}")
    return {p.name: p.validate(values.get(p.name, p.default)) for p in ADAPT_PARAMS}


@dataclass(frozen=True)
class JobResult:
    """The files a job wrote, its figures and the pipeline's notes."""

    video: Path        # the output in the chosen format
    playable: Path     # the output, or an MP4 copy of it, for the browser
    comparison: Path   # side by side: source at the output rate | interpolated
    heat_map: np.ndarray | None  # (H,W,3) uint8, for models that give confidence
    heat_map_pair: int | None    # index of the first frame of the pair the heat map is from
    frames: int
    fps: Fraction
    interpolation_seconds: float
    total_seconds: float
    stats: SequenceStats
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        rate = str(self.fps.numerator) if self.fps.denominator == 1 else f"{float(self.fps):.3f}"
        lines = [f"**{self.frames} frames at {rate} fps** ({self.video.suffix[1:]}), interpolated in "
                 f"{self.interpolation_seconds:.1f} s ({self.total_seconds:.1f} s with the comparison views)"]
        if self.stats.scene_cuts:
            lines.append(f"{len(self.stats.scene_cuts)} scene cut(s) held, not morphed")
        if self.stats.duplicates:
            lines.append(f"{self.stats.duplicates} duplicate frame(s) found")
        if self.heat_map_pair is not None:
            lines.append(f"Confidence heat map: frames {self.heat_map_pair} and {self.heat_map_pair + 1} at t=0.5 "
                         "(dark: sure, bright: artefacts likely)")
        lines += self.notes
        return "\n\n".join(lines)


def public_message(message: str, uploads: dict[str, str | None], work: Path) -> str:
    """``message`` as the app's user may read it: no path of this server. Uploaded files are named as
    the user named them (``uploads``: role -> the upload's server path, e.g. ``{"video": ...}``), the
    copies :func:`image_pair_folder` makes as "the first image" / "the second image", and any other
    path inside the job's working folder or Gradio's upload folders by its file name only."""
    replacements = {}
    for role, upload in uploads.items():
        if upload:
            replacements[str(Path(upload))] = Path(upload).name
    for index, role in ((1, "the first image"), (2, "the second image")):
        for suffix in IMAGE_EXTENSIONS:
            replacements[str(work / "image_pair" / f"{index}{suffix}")] = role
    replacements[str(work / "image_pair")] = "the two images"
    for path in sorted(replacements, key=len, reverse=True):  # longest first: a folder after its files
        message = message.replace(path, replacements[path])
    # any other absolute path left (a work file, Gradio's cache): its last part only
    roots = {str(work), str(Path(tempfile.gettempdir()))}
    for upload in uploads.values():
        if upload:
            roots.add(str(Path(upload).parent.parent))
    for root in sorted(roots, key=len, reverse=True):
        message = re.sub(re.escape(root) + r"(/[^\s'\":,]*)?", lambda m: Path(m.group(0)).name or "a work file",
                         message)
    return message


def image_pair_folder(first: str | Path, second: str | Path, work: Path) -> Path:
    """Copy two images into a folder the image reader takes in order."""
    folder = work / "image_pair"
    folder.mkdir()
    for index, image in enumerate((Path(first), Path(second)), start=1):
        if image.suffix.lower() not in IMAGE_EXTENSIONS:
            raise InputError(f"{image.name} is not an image ({', '.join(IMAGE_EXTENSIONS)})")
        shutil.copy(image, folder / f"{index}{image.suffix.lower()}")
    return folder


def run_job(source: Path, settings: JobSettings, limits: Limits, work: Path, *,
            progress: Callable[[int, int | None], None] | None = None,
            cancel: Callable[[], bool] | None = None,
            adapting: Callable[[int, int], None] | None = None) -> JobResult:
    """Interpolate ``source`` (a video file, or a folder from :func:`image_pair_folder`) into ``work``;
    with ``settings.adapt["adapt"]`` steps, the model is first adapted to the frames it will
    interpolate (``adapting(step, steps)`` reports it; the loaded model itself is not changed)."""
    started = time.perf_counter()
    if settings.output_format not in OUTPUT_FORMATS:
        raise InputError(f"output format {settings.output_format!r} is not one of {', '.join(OUTPUT_FORMATS)}")
    limits.check_adapt_steps(settings.adapt["adapt"])
    folder_fps = IMAGE_PAIR_FPS if source.is_dir() else None
    bounds = limits.work_limits()  # frame size (from the header), output frames, time
    reader = open_reader(source, folder_fps, limits=bounds)
    limits.check(reader, settings.preview_seconds)
    options = settings.options
    options.validate(reader.fps, reader.count)
    notes = []
    if settings.preview_seconds and reader.duration > settings.preview_seconds:
        source = _first_seconds(reader, settings.preview_seconds, work / "preview_source")
        folder_fps = reader.fps
        notes.append(f"preview: the first {settings.preview_seconds:g} s only, without audio")
    destination = work / f"interpolated.{settings.output_format}"
    # the core's cache keeps the model loaded between jobs; a job holds it while it runs
    with MODELS.use(settings.model, settings.model_params) as model:
        if settings.adapt["adapt"]:
            model, note = _adapted(model, open_reader(source, folder_fps), settings.adapt, adapting, cancel)
            notes.append(note)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            interpolation_started = time.perf_counter()
            result = interpolate_file(source, destination, model, options, audio=settings.keep_audio,
                                      folder_fps=folder_fps, progress=progress, cancel=cancel,
                                      limits=bounds)
            interpolation_seconds = time.perf_counter() - interpolation_started
        heat_map = pair = None
        if model.descriptor.gives_confidence:
            heat_map, pair = _confidence_heat_map(model, open_reader(source, folder_fps))
    notes += [str(w.message) for w in caught]
    playable = result.path if settings.output_format in BROWSER_PLAYABLE else \
        _transcode_to_mp4(result.path, result.fps, work / "playable.mp4")
    comparison = _side_by_side(open_reader(source, folder_fps), playable, work / "comparison.mp4")
    return JobResult(result.path, playable, comparison, heat_map, pair, result.frames, result.fps,
                     interpolation_seconds, time.perf_counter() - started, result.stats, notes)


def _adapted(model, reader, options: dict, progress, cancel):
    """``model`` adapted to the frames of ``reader`` for ``options["adapt"]`` steps, and the summary's note."""
    from vfi_core.adapt import adapt_to_frames

    # adapt_to_frames refuses a model that cannot adapt in one line, before reading a frame
    result = adapt_to_frames(model, (f.rgb for f in reader.frames()), options["adapt"], options["adapt_rate"],
                             options["adapt_rank"], progress=progress, cancel=cancel)
    losses = result.adapter.losses
    own = "".join(f", {p.name} {model.params[p.name]:g}" for p in model.descriptor.params if p.group == "adapt")
    return result.model, (f"adapted to the clip in {result.seconds:.1f} s ({options['adapt']} steps{own}, "
                          f"loss {losses[0]:.4f} -> {losses[-1]:.4f})")


def _first_seconds(reader, seconds: float, folder: Path) -> Path:
    """The frames of the first ``seconds`` (at least two) as a PNG folder, read at the source rate."""
    count = max(2, round(seconds * reader.fps))
    writer = PngSequenceWriter(folder, reader.has_alpha)
    try:
        for frame in itertools.islice(reader.frames(), count):
            writer.write(OutputFrame(frame.rgb, frame.alpha))
        return writer.commit()
    except BaseException:
        writer.abort()
        raise


def _transcode_to_mp4(path: Path, fps: Fraction, destination: Path) -> Path:
    """An H.264 copy of ``path`` at ``fps`` for the browser (which plays neither GIF, MOV nor MKV reliably).

    The rate is given, not read back: GIF delays are whole hundredths, so a GIF does not keep 60 fps."""
    reader = open_reader(path)
    writer = open_writer(destination, fps, reader.width, reader.height, alpha=False,
                         audio_source=reader if reader.audio_streams else None)
    try:
        for frame in reader.frames():
            writer.write(OutputFrame(frame.rgb, None))
        return writer.commit()
    except BaseException:
        writer.abort()
        raise


def _side_by_side(source_reader, result_path: Path, destination: Path) -> Path:
    """Source (left, each frame held until the next: the source at the output rate) | result (right)."""
    result_reader = open_reader(result_path)
    width, height = _even_size(2 * source_reader.width, source_reader.height)
    writer = open_writer(destination, result_reader.fps, width, height, alpha=False)
    source_frames = source_reader.frames()
    shown = next(source_frames)
    origin = shown.time
    upcoming = next(source_frames, None)
    try:
        for index, frame in enumerate(result_reader.frames()):
            output_time = origin + Fraction(index) / result_reader.fps
            while upcoming is not None and upcoming.time <= output_time:
                shown, upcoming = upcoming, next(source_frames, None)
            pair = torch.cat([shown.rgb, frame.rgb[..., :source_reader.height, :source_reader.width]], dim=3)
            writer.write(OutputFrame(F.interpolate(pair, size=(height, width), mode="area"), None))
        return writer.commit()
    except BaseException:
        writer.abort()
        raise


def _even_size(width: int, height: int) -> tuple[int, int]:
    """``width`` x ``height`` scaled to at most :data:`COMPARISON_MAX_WIDTH` wide, both even (H.264)."""
    scale = min(1.0, COMPARISON_MAX_WIDTH / width)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def _confidence_heat_map(model, reader) -> tuple[np.ndarray, int]:
    """The confidence of the middle frame pair at t=0.5 as an (H,W,3) uint8 heat map, and the pair's index."""
    first = reader.count // 2 - 1
    frame0, frame1 = itertools.islice(reader.frames(), first, first + 2)
    confidence = model.interpolate_with_confidence(frame0.rgb, frame1.rgb, 0.5).confidence
    return heat_map_colours(1.0 - confidence[0, 0].float().cpu().numpy()), first


def heat_map_colours(values: np.ndarray) -> np.ndarray:
    """(H,W) values in [0,1] to an (H,W,3) uint8 'inferno'-like image (0 dark, 1 bright)."""
    channels = [np.interp(values, _HEAT_STOPS, _HEAT_COLOURS[:, c]) for c in range(3)]
    return np.stack(channels, axis=-1).round().astype(np.uint8)
