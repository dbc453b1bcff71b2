"""The work of a batch job, one task at a time, independent of where it runs.

A task is a whole item (:class:`WholeTask`), one part of a split video (:class:`PartTask`: its
frames written losslessly as PNGs to a part folder) or the join of an item's parts
(:class:`JoinTask`: the parts' frames in order, encoded once, with the source's audio copied once).
:func:`run_task` runs any of them with a model from the process's cache; each returns a
:class:`TaskResult`, a failed one with the one-line reason, so one bad item never stops the others.
Every output is written under a temporary name and renamed when whole.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

from ..errors import Cancelled, InputError, VFIError
from ..io import VideoReader
from ..pipeline import FileResult, InterpolatedStream, SequencePart, interpolate_file
from ..timing import OutputFrame
from .plan import BatchItem, Part

ProgressFn = Callable[[int], None]  # source frames done since the last call
CancelFn = Callable[[], bool]


@dataclass(frozen=True)
class WholeTask:
    item: BatchItem


@dataclass(frozen=True)
class PartTask:
    item: BatchItem
    part: Part
    last: bool
    folder: Path  # where the part's frames go (a PNG folder, written atomically)
    source: VideoReader  # the planner's reader: its scan of the file travels with the task


@dataclass(frozen=True)
class JoinTask:
    item: BatchItem
    folders: tuple[Path, ...]
    source: VideoReader


Task = WholeTask | PartTask | JoinTask


@dataclass(frozen=True)
class TaskResult:
    """``status``: "done", "failed" (``reason`` says why, in one line) or "cancelled"."""

    task: Task
    status: str
    frames: int = 0          # output frames written
    source_frames: int = 0   # source frames read
    fps: Fraction | None = None
    scene_cuts: int = 0
    seconds: float = 0.0
    reason: str | None = None


def run_task(task: Task, *, device: str | None = None, progress: ProgressFn | None = None,
             cancel: CancelFn | None = None) -> TaskResult:
    """Run ``task`` with the item's model on ``device`` (None: the best available); ``progress`` gets
    source frames as they are read, ``cancel()`` is polled between pairs and inside model calls."""
    started = time.perf_counter()
    try:
        if isinstance(task, JoinTask):
            result = _join(task, cancel)
        else:
            result = _interpolate(task, device, progress, cancel)
    except Cancelled:
        return TaskResult(task, "cancelled", seconds=time.perf_counter() - started)
    except VFIError as exc:
        return TaskResult(task, "failed", seconds=time.perf_counter() - started, reason=str(exc).splitlines()[0])
    except (OSError, RuntimeError, ValueError) as exc:  # a decoder's or the model's failure on this item
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no message'}"
        return TaskResult(task, "failed", seconds=time.perf_counter() - started, reason=reason)
    return TaskResult(task, "done", seconds=time.perf_counter() - started, **result)


def _interpolate(task: WholeTask | PartTask, device, progress, cancel) -> dict:
    from ..model_cache import MODELS

    item = task.item
    settings = item.settings
    seen = [0]

    # a part's last source frame is the next part's first: it is counted there
    countable = task.part.stop - task.part.start - (0 if task.last else 1) if isinstance(task, PartTask) else None

    def report(done: int, total: int | None) -> None:
        done = min(done, countable) if countable is not None else done
        if progress is not None and done > seen[0]:
            progress(done - seen[0])
            seen[0] = done

    with MODELS.use(settings.model, settings.params, device=device, weight_dirs=settings.weight_dirs) as model:
        if isinstance(task, WholeTask):
            item.output.parent.mkdir(parents=True, exist_ok=True)
            result: FileResult = interpolate_file(item.input, item.output, model, settings.options(),
                                                  crf=settings.crf, preset=settings.preset, audio=settings.audio,
                                                  folder_fps=settings.folder_fps(), progress=report, cancel=cancel)
            return {"frames": result.frames, "source_frames": result.stats.source_frames, "fps": result.fps,
                    "scene_cuts": len(result.stats.scene_cuts)}
        return _interpolate_part(task, model, report, cancel)


def _interpolate_part(task: PartTask, model, report, cancel) -> dict:
    from ..io import PngSequenceWriter

    reader = task.source
    options = task.item.settings.options()
    part = SequencePart(first_index=task.part.start, origin=reader.start, last=task.last)
    stream = InterpolatedStream(reader.frames(task.part.start, task.part.stop), model, options, reader.fps,
                                source_count=task.part.stop - task.part.start, progress=report, cancel=cancel,
                                part=part)
    if task.folder.exists():  # written by an earlier attempt at this task (Ray ran it again): redo it whole
        shutil.rmtree(task.folder)
    task.folder.parent.mkdir(parents=True, exist_ok=True)
    writer = PngSequenceWriter(task.folder, alpha=reader.has_alpha)
    try:
        for frame in stream:
            writer.write(frame)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    # the part's last source frame is the next part's first: count it once
    read = stream.stats.source_frames - (0 if task.last else 1)
    return {"frames": writer.count, "source_frames": read, "fps": stream.fps,
            "scene_cuts": len(stream.stats.scene_cuts)}


def _join(task: JoinTask, cancel) -> dict:
    """The parts' frames, in order, into the item's output; the audio is copied from the source."""
    from ..io import open_writer
    from ..io.images import array_to_frame, list_images, read_image

    item = task.item
    settings = item.settings
    source = task.source
    fps = settings.options().target_fps(source.fps)
    missing = [str(f) for f in task.folders if not f.is_dir()]
    if missing:
        raise InputError(f"parts missing before the join: {', '.join(missing)}")
    item.output.parent.mkdir(parents=True, exist_ok=True)
    writer = open_writer(item.output, fps, source.width, source.height, alpha=source.has_alpha, crf=settings.crf,
                         preset=settings.preset, audio_source=source if settings.audio else None)
    try:
        for folder in task.folders:
            for path in list_images(folder):
                if cancel is not None and cancel():
                    raise Cancelled("cancelled by the user")
                frame = array_to_frame(read_image(path), Fraction(writer.count) / fps, 1 / fps)
                writer.write(OutputFrame(frame.rgb, frame.alpha))
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    for folder in task.folders:
        shutil.rmtree(folder, ignore_errors=True)
    try:  # the item's folder of parts, now empty
        task.folders[0].parent.rmdir()
    except OSError:
        pass
    return {"frames": writer.count, "fps": fps}
