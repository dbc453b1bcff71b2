"""IMAGE batches through the sequence pipeline, with the confidence map of every output frame.

ComfyUI's ``[B,H,W,C]`` layout exists only here, at the edge: source frames are channels-first
views of the input batch (no copy), and output frames are written one by one into tensors
allocated once at their final size, so memory holds the input, the output and one model batch,
never a second copy of the output.

The pipeline (:mod:`vfi_core.pipeline`) yields each interpolated frame with its confidence map;
source frames passed through (held at a scene cut or a duplicate) and frames of models without
confidence get 1.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Callable, NamedTuple

import torch

from vfi_core.errors import Cancelled, InputError
from vfi_core.limits import WorkLimits
from vfi_core.pipeline import SequenceOptions, SequenceStats, frames_at_rate, interpolate_frames


class InterpolatedBatch(NamedTuple):
    """Output of :func:`interpolate_images`: ``images`` ``[M,H,W,C]``, ``confidence`` ``[M,H,W]``
    (1 = sure), the output frame rate and the pipeline's statistics."""

    images: torch.Tensor
    confidence: torch.Tensor
    fps: Fraction
    stats: SequenceStats


def check_images(images: torch.Tensor) -> None:
    """Raise :class:`InputError` unless ``images`` is an IMAGE batch the pipeline can take."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise InputError(f"expected an IMAGE batch [frames, height, width, channels], got {shape}")
    if images.shape[-1] not in (3, 4):
        raise InputError(f"IMAGE must have 3 (RGB) or 4 (RGBA) channels, got {images.shape[-1]}")
    if images.shape[0] < 2:
        raise InputError(f"interpolation needs at least two frames; the IMAGE batch has {images.shape[0]}")


class InterruptibleModel:
    """Looks like the interpolator to the pipeline and checks ``cancel()`` before every model call.

    The pipeline checks it between frame pairs only; with a large multiplier one pair is many model
    calls, so this keeps an interrupt's latency to one model call.
    """

    def __init__(self, model, cancel: Callable[[], bool] | None):
        self.model = model
        self.device = model.device
        self.descriptor = getattr(model, "descriptor", None)  # its declared cost, for the work limits
        self.seconds_per_megapixel = getattr(model, "seconds_per_megapixel", None)  # with its parameters
        self.cancel = cancel

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel():
            raise Cancelled("cancelled by the user")

    def interpolate(self, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.check_cancel()
        return self.model.interpolate(frame0, frame1, t)

    def interpolate_with_confidence(self, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor):
        self.check_cancel()
        return self.model.interpolate_with_confidence(frame0, frame1, t)


# a node cannot pass options: its refusals say how to get the work done instead
NODE_LIMITS = WorkLimits(raise_with=("split the clip into shorter batches", "scale the frames down first",
                                     "split the clip into shorter batches"))


def interpolate_images(images: torch.Tensor, model, options: SequenceOptions, source_fps: Fraction, *,
                       dtype: torch.dtype, device: torch.device,
                       progress: Callable[[int, int], None] | None = None,
                       cancel: Callable[[], bool] | None = None) -> InterpolatedBatch:
    """Interpolate an IMAGE batch ``[B,H,W,C]`` (C = 3 or 4) timed at ``source_fps``.

    Returns the output frames and confidence maps in ``dtype`` on ``device`` (ComfyUI's
    intermediate dtype and device). ``progress(done, total)`` runs after each source frame and
    ``cancel()`` between frame pairs (see :func:`vfi_core.pipeline.interpolate_frames`).
    """
    check_images(images)
    source = images.cpu()
    count, height, width, channels = source.shape
    with_alpha = channels == 4
    channels_first = source.movedim(-1, 1)  # a view: [B,C,H,W]
    # ComfyUI's IMAGE is [0, 1] by convention, but a resampling node upstream (bicubic, Lanczos)
    # overshoots it slightly; ComfyUI's own save nodes clamp, so frames are clamped here, one at a
    # time (the core refuses values outside [0, 1]; NaN stays NaN and is still refused)
    rgb = (channels_first[i:i + 1, :3].clamp(0.0, 1.0) for i in range(count))
    alpha = (channels_first[i:i + 1, 3:].clamp(0.0, 1.0) for i in range(count)) if with_alpha else None
    stream = interpolate_frames(frames_at_rate(rgb, source_fps, alpha), InterruptibleModel(model, cancel), options,
                                source_fps, source_count=count, progress=progress,
                                cancel=cancel, limits=NODE_LIMITS)  # validates options
    total = options.output_count(count, source_fps)
    # the outputs are held in memory (ComfyUI's IMAGE batch): checked before they are allocated
    stream.check_limits(width, height, held_bytes=total * height * width * (channels + 1) * dtype.itemsize)
    out_images = torch.empty((total, height, width, channels), dtype=dtype, device=device)
    out_confidence = torch.empty((total, height, width), dtype=dtype, device=device)
    written = 0
    for frame in stream:
        if written == total:
            raise RuntimeError(f"the pipeline yielded more than the {total} frames expected")
        out_images[written, :, :, :3] = frame.rgb[0].movedim(0, -1)
        if with_alpha:
            out_images[written, :, :, 3] = frame.alpha[0, 0]
        out_confidence[written] = 1.0 if frame.confidence is None else frame.confidence[0, 0]
        written += 1
    if written != total:
        raise RuntimeError(f"the pipeline yielded {written} frames; expected {total}")
    return InterpolatedBatch(out_images, out_confidence, stream.fps, stream.stats)

