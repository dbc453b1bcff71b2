"""The dropped-frame protocol: how well a model restores a clip's own frames, with and without
adapting to the clip first.

Every second frame of a clip is dropped; the model sees only the frames that remain (adaptation
learns from them alone, :func:`vfi_core.adapt.adapt_to_frames`), doubles their rate through the
sequence pipeline as ``vfi interpolate -m 2`` does, and each dropped frame is scored against the
frame the pipeline puts in its place (PSNR, SSIM and, if asked, the perceptual distance, with the
definitions of :mod:`vfi_core.evaluation.bench`). Clips are read streaming; memory does not grow
with their length.
"""
from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

from ..frames import to_numpy_uint8
from ..timing import TimedFrame
from .bench import score_images


def _limited(frames: Iterator[TimedFrame], limit: int | None) -> Iterator[TimedFrame]:
    for index, frame in enumerate(frames):
        if limit is not None and index >= limit:
            return
        yield frame


def clip_name(clip: str | Path) -> str:
    """A clip's name in reports: a video file's stem, an image folder's name."""
    return Path(clip).stem if Path(clip).is_file() else Path(clip).name


def kept_frames(clip: str | Path, limit: int | None = None) -> Iterator[TimedFrame]:
    """The frames of ``clip`` (a video file or an image folder) that remain: 0, 2, 4, ... of its first
    ``limit`` frames."""
    from ..io import open_reader

    for index, frame in enumerate(_limited(open_reader(clip).frames(), limit)):
        if index % 2 == 0:
            yield frame


def score_clip(model, clip: str | Path, limit: int | None = None, perceptual=None,
               progress: Callable[[int, int | None], None] | None = None) -> list[dict]:
    """Records ``{"set", "key", "t", "psnr", "ssim", ["perceptual"]}`` of every dropped frame of
    ``clip`` (its first ``limit`` frames) as ``model`` restores it from the frames that remain."""
    from ..io import open_reader
    from ..pipeline import interpolate_frames, timing_options

    reader = open_reader(clip)
    name = clip_name(clip)
    dropped: dict[int, TimedFrame] = {}

    def remaining() -> Iterator[TimedFrame]:
        for index, frame in enumerate(_limited(reader.frames(), limit)):
            if index % 2:
                dropped[index] = frame
            else:
                yield frame

    options = timing_options(multiplier=2, scene_threshold=None)
    stream = interpolate_frames(remaining(), model, options, Fraction(reader.fps) / 2, progress=progress)
    records = []
    for index, frame in enumerate(stream):
        truth = dropped.pop(index, None)
        if index % 2 == 0 or truth is None:
            continue
        scores = score_images(to_numpy_uint8(frame.rgb)[0], to_numpy_uint8(truth.rgb)[0], perceptual)
        records.append({"set": name, "key": f"{name}/{index:05d}", "t": 0.5, **scores})
    return records


def adapted_model(model, clip: str | Path, steps: int, limit: int | None = None, rate: float | None = None,
                  rank: int | None = None, seed: int = 0,
                  progress: Callable[[int, int], None] | None = None) -> tuple[object, float]:
    """``model`` adapted for ``steps`` steps to the remaining frames of ``clip``, and the seconds it
    took (reading the clip included); ``model`` itself for 0 steps."""
    from ..adapt import adapt_to_frames

    if steps == 0:
        return model, 0.0
    began = time.perf_counter()
    result = adapt_to_frames(model, (f.rgb for f in kept_frames(clip, limit)), steps, rate, rank, seed=seed,
                             progress=progress)
    return result.model, time.perf_counter() - began
