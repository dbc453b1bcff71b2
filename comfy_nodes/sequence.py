"""IMAGE batches through the sequence pipeline, with the confidence map of every output frame.

ComfyUI's ``[B,H,W,C]`` layout exists only here, at the edge: source frames are channels-first
views of the input batch (no copy), and output frames are written one by one into tensors
allocated once at their final size, so memory holds the input, the output and one model batch,
never a second copy of the output.

The pipeline (:mod:`vfi_core.pipeline`) yields frames only; the confidence maps come from
:class:`ConfidenceRecorder`, which stands in for the model: it calls
``interpolate_with_confidence`` and queues each interpolated frame's map in call order, which
is the order in which the pipeline yields interpolated frames. Output frames that are source
frames passed through (``t == 0``, held at a scene cut or a duplicate) share the input's memory;
their confidence is 1.
"""
from __future__ import annotations

from collections import deque
from fractions import Fraction
from dataclasses import replace
from typing import Callable, NamedTuple

import torch

from vfi_core.errors import Cancelled, InputError
from vfi_core.pipeline import SequenceOptions, SequenceStats, frames_at_rate, interpolate_frames
from vfi_core.tiling import DEFAULT_OVERLAP, auto_tile_size, interpolate_tiled


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
        self.cancel = cancel

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel():
            raise Cancelled("cancelled by the user")

    def interpolate(self, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.check_cancel()
        return self.model.interpolate(frame0, frame1, t)


class ConfidenceRecorder(InterruptibleModel):
    """Like :class:`InterruptibleModel`, also keeping the confidence map of every frame it makes.

    Tiling happens here rather than in the pipeline (whose tiler blends frames only): the frame and
    its confidence are tiled together as four channels, so both get the same feathered seams.
    """

    def __init__(self, model, cancel: Callable[[], bool] | None, with_alpha: bool, overlap: int = DEFAULT_OVERLAP):
        super().__init__(model, cancel)
        self.with_alpha = with_alpha
        self.overlap = overlap
        self.pending: deque[torch.Tensor] = deque()
        self._tile: int | None = None

    def interpolate(self, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.check_cancel()
        tile = self._tile_size(frame0)
        if tile:
            pad = torch.zeros_like(frame0[:, :1])
            both = interpolate_tiled(self._frame_and_confidence, torch.cat([frame0, pad], 1),
                                     torch.cat([frame1, pad], 1), t, tile, self.overlap)
            frame, confidence = both[:, :3], both[:, 3:]
        else:
            frame, confidence = self.model.interpolate_with_confidence(frame0, frame1, t)
            if confidence is None:
                confidence = torch.ones_like(frame[:, :1])
        # with alpha, the pipeline appends the alpha channels as extra frames after the RGB ones
        rgb_rows = frame0.shape[0] // 2 if self.with_alpha else frame0.shape[0]
        self.pending.extend(confidence[:rgb_rows, 0])
        return frame

    def _frame_and_confidence(self, frame0, frame1, t) -> torch.Tensor:
        frame, confidence = self.model.interpolate_with_confidence(frame0[:, :3], frame1[:, :3], t)
        if confidence is None:
            confidence = torch.ones_like(frame[:, :1])
        return torch.cat([frame, confidence], 1)

    def _tile_size(self, batch: torch.Tensor) -> int | None:
        if self._tile is None:
            self._tile = auto_tile_size(batch.shape[2], batch.shape[3], batch.shape[0], torch.device(self.device),
                                        self.overlap) or 0
        return self._tile or None


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
    options = replace(options, tile=0)  # tiling happens in the recorder
    channels_first = source.movedim(-1, 1)  # a view: [B,C,H,W]
    rgb = (channels_first[i:i + 1, :3] for i in range(count))
    alpha = (channels_first[i:i + 1, 3:] for i in range(count)) if with_alpha else None
    recorder = ConfidenceRecorder(model, cancel, with_alpha)
    stream = interpolate_frames(frames_at_rate(rgb, source_fps, alpha), recorder, options, source_fps,
                                source_count=count, progress=progress, cancel=cancel)  # validates options
    total = options.output_count(count, source_fps)
    out_images = torch.empty((total, height, width, channels), dtype=dtype, device=device)
    out_confidence = torch.empty((total, height, width), dtype=dtype, device=device)
    source_memory = source.untyped_storage().data_ptr()
    written = 0
    for frame in stream:
        if written == total:
            raise RuntimeError(f"the pipeline yielded more than the {total} frames expected")
        out_images[written, :, :, :3] = frame.rgb[0].movedim(0, -1)
        if with_alpha:
            out_images[written, :, :, 3] = frame.alpha[0, 0]
        passed_through = frame.rgb.untyped_storage().data_ptr() == source_memory
        out_confidence[written] = 1.0 if passed_through else recorder.pending.popleft()
        written += 1
    if written != total or recorder.pending:
        raise RuntimeError(f"the pipeline yielded {written} frames and left {len(recorder.pending)} "
                           f"confidence maps; expected {total} frames")
    return InterpolatedBatch(out_images, out_confidence, stream.fps, stream.stats)

