"""Self-supervised training windows cut from the clip being interpolated.

A window is a run of ``span`` consecutive frames of the clip, cropped to the same square; a model's
adaptation predicts some of its known frames from the others at the clip's own frame spacing (e.g.
frame 3 from frames 1 and 5), so it learns from nothing but the footage it will interpolate.

:func:`collect_windows` reads the clip once, streaming, and keeps a bounded sample of windows
(reservoir sampling: every window of the clip is equally likely to be kept, whatever the clip's
length), stored as uint8, so memory is ``capacity * span * 3 * crop^2`` bytes at most. Windows that
cross a scene cut are never kept: their frames do not follow one another.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch

from ..cancellation import check_cancelled
from ..errors import InputError
from ..pipeline import DEFAULT_SCENE_THRESHOLD, frame_signature, scene_change_score

# Crop positions tried per kept window; the one whose first and last frames differ most is kept, so
# the sample leans towards the moving parts of the frame (what interpolation gets wrong).
CROP_CANDIDATES = 4


@dataclass
class ClipWindows:
    """A bounded sample of a clip's windows.

    Attributes:
        frames: ``(N, span, 3, crop_h, crop_w)`` uint8 RGB, one row per window.
        seen: how many windows the clip held (``N`` of them were kept).
    """

    frames: torch.Tensor
    seen: int

    def __len__(self) -> int:
        return self.frames.shape[0]

    @property
    def span(self) -> int:
        return self.frames.shape[1]

    def batch(self, indices, flip: torch.Tensor | None = None, reverse: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, span, 3, h, w)`` float in [0,1]: the windows at ``indices``, each mirrored left-right
        where ``flip`` ``(B,)`` bool is true and played backwards where ``reverse`` is."""
        runs = self.frames[torch.as_tensor(indices, dtype=torch.long)].float() / 255.0
        if flip is not None:
            runs = torch.where(flip.view(-1, 1, 1, 1, 1), runs.flip(-1), runs)
        if reverse is not None:
            runs = torch.where(reverse.view(-1, 1, 1, 1, 1), runs.flip(1), runs)
        return runs


def _crop_box(height: int, width: int, crop: int, rng: np.random.Generator, first: torch.Tensor,
              last: torch.Tensor) -> tuple[int, int]:
    """Top-left corner of the candidate crop where ``first`` and ``last`` differ most."""
    best, best_score = (0, 0), -1.0
    for _ in range(CROP_CANDIDATES):
        y = int(rng.integers(0, height - crop + 1))
        x = int(rng.integers(0, width - crop + 1))
        score = float((first[..., y:y + crop, x:x + crop] - last[..., y:y + crop, x:x + crop]).abs().mean())
        if score > best_score:
            best, best_score = (y, x), score
    return best


def collect_windows(frames: Iterable[torch.Tensor], span: int, capacity: int = 48, crop: int = 256,
                    multiple: int = 16, seed: int = 0, scene_threshold: float = DEFAULT_SCENE_THRESHOLD,
                    progress: Callable[[int], None] | None = None) -> ClipWindows:
    """Sample up to ``capacity`` windows of ``span`` consecutive frames from ``frames``.

    Args:
        frames: the clip, in order: ``(1,3,H,W)`` or ``(3,H,W)`` float RGB in [0,1], all one size.
        span: frames per window (at least 3).
        capacity: most windows kept (memory: ``capacity * span * 3 * crop^2`` bytes).
        crop: side of the square crop; frames smaller than it give crops of their size, rounded down
            to ``multiple``.
        seed: seeds the choice of windows and crop positions.
        scene_threshold: a window holding a pair of frames with a scene-change score above this
            (:func:`vfi_core.pipeline.scene_change_score`) is skipped.
        progress: called with the number of frames read so far.
    Returns:
        :class:`ClipWindows`. Raises :class:`InputError` when the clip holds no window (fewer than
        ``span`` frames between cuts, or frames smaller than ``multiple``).
    """
    if span < 3:
        raise InputError(f"windows need at least 3 frames, got span {span}")
    if capacity < 1:
        raise InputError(f"capacity must be at least 1, got {capacity}")
    rng = np.random.default_rng(seed)
    buffer: deque[torch.Tensor] = deque(maxlen=span)
    signatures: deque = deque(maxlen=span)
    kept: list[torch.Tensor] = []
    seen = count = 0
    since_cut = 0  # frames in the buffer since the last cut
    size = None
    for count, frame in enumerate(frames, 1):
        check_cancelled()
        rgb = frame if frame.ndim == 4 else frame[None]
        if size is None:
            height, width = rgb.shape[-2:]
            side = min(crop, height, width) // multiple * multiple
            if side < multiple:
                raise InputError(f"frames of {width}x{height} are too small to adapt on (at least "
                                 f"{multiple}x{multiple})")
            size = (height, width)
        elif rgb.shape[-2:] != size:
            raise InputError(f"frame {count - 1} is {rgb.shape[-1]}x{rgb.shape[-2]}, the clip's first "
                             f"{size[1]}x{size[0]}: every frame must have one size")
        signature = frame_signature(rgb)
        cut = bool(signatures) and scene_change_score(signatures[-1], signature) > scene_threshold
        since_cut = 1 if cut else since_cut + 1
        buffer.append((rgb[0].clamp(0, 1) * 255).round().to(torch.uint8))
        signatures.append(signature)
        if progress is not None:
            progress(count)
        if since_cut < span:
            continue
        seen += 1
        slot = len(kept) if len(kept) < capacity else int(rng.integers(0, seen))
        if slot >= capacity:
            continue
        y, x = _crop_box(*size, side, rng, buffer[0].float(), buffer[-1].float())
        window = torch.stack([f[:, y:y + side, x:x + side] for f in buffer]).clone()
        if slot == len(kept):
            kept.append(window)
        else:
            kept[slot] = window
    if not kept:
        raise InputError(f"the clip has no run of {span} frames without a scene cut ({count} frames read): "
                         "too short to adapt on")
    return ClipWindows(torch.stack(kept), seen)
