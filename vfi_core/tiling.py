"""Tiled interpolation for frames too large to interpolate in one piece (4K and up).

The frame pair is cut into overlapping square tiles; each tile pair is interpolated on its own and
the results are blended back with feathered weights: inside an overlap the weight of a tile falls
linearly towards its edge, so seams fade across ``overlap`` pixels instead of showing as lines.
Tiles that touch the border of the frame keep full weight up to that border.

The overlap also gives the model context: motion larger than about half the overlap can be cut at
a tile edge, so the overlap should exceed the largest expected motion (the default, 64 px, suits
most footage; raise it for fast pans).

The tile size is chosen automatically from the memory available on the model's device
(:func:`auto_tile_size`) or forced by the caller.
"""
from __future__ import annotations

import os
import warnings

import torch

from .cancellation import check_cancelled
from .errors import ParameterError

DEFAULT_OVERLAP = 64
# Working memory one interpolation needs per pixel of the frame, per batch item: flow-asb in float32
# measured about 350 bytes/pixel (peak RSS growth of one 640x360 call on CPU); three times that for
# headroom and for models with larger intermediates.
WORKING_BYTES_PER_PIXEL = 1024
# Share of the available memory a single interpolation may take.
MEMORY_SHARE = 0.5
MIN_TILE = 256


def tile_spans(size: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Start/end pairs covering ``[0, size)`` with tiles of ``tile`` that overlap by at least ``overlap``.

    The last tile is aligned to the end, so every tile has the full size when ``size >= tile``.
    """
    if tile >= size:
        return [(0, size)]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride)) + [size - tile]
    return [(s, s + tile) for s in starts]


def _ramp(length: int, start: int, end: int, size: int, overlap: int, device) -> torch.Tensor:
    """1-D weights of one tile span: rising over ``overlap`` pixels at edges that are not frame edges."""
    pos = torch.arange(length, dtype=torch.float32, device=device)
    weight = torch.ones(length, device=device)
    if overlap > 0:
        ramp_up = (pos + 1) / (overlap + 1)
        ramp_down = (length - pos) / (overlap + 1)
        if start > 0:
            weight = torch.minimum(weight, ramp_up)
        if end < size:
            weight = torch.minimum(weight, ramp_down)
    return weight


def interpolate_tiled(interpolate, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor,
                      tile: int, overlap: int = DEFAULT_OVERLAP) -> torch.Tensor:
    """Interpolate a frame pair tile by tile and blend the tiles with feathered seams.

    Args:
        interpolate: ``f(frame0, frame1, t) -> frame`` on ``(B,C,h,w)`` tiles (e.g. ``model.interpolate``);
            it may return another channel count ``C'`` (e.g. a frame and its confidence map).
        frame0, frame1: ``(B,C,H,W)`` float in [0,1].
        t: ``(B,)`` times in [0,1].
        tile: tile side in pixels (> ``overlap``); a frame no larger than a tile is done in one piece.
        overlap: overlap between neighbouring tiles in pixels.

    Returns:
        ``(B,C',H,W)`` float in [0,1], same dtype and device as ``frame0``.
    """
    if tile <= overlap:
        raise ParameterError(f"tile size {tile} must be larger than the tile overlap {overlap}")
    _, _, h, w = frame0.shape
    if h <= tile and w <= tile:
        return interpolate(frame0, frame1, t)
    out = None
    weight_sum = torch.zeros((1, 1, h, w), dtype=frame0.dtype, device=frame0.device)
    for y0, y1 in tile_spans(h, tile, overlap):
        wy = _ramp(y1 - y0, y0, y1, h, overlap, frame0.device)
        for x0, x1 in tile_spans(w, tile, overlap):
            wx = _ramp(x1 - x0, x0, x1, w, overlap, frame0.device)
            weight = (wy[:, None] * wx[None, :]).to(frame0.dtype)[None, None]
            check_cancelled()
            part = interpolate(frame0[..., y0:y1, x0:x1], frame1[..., y0:y1, x0:x1], t)
            if out is None:
                out = frame0.new_zeros((frame0.shape[0], part.shape[1], h, w))
            out[..., y0:y1, x0:x1] += part * weight
            weight_sum[..., y0:y1, x0:x1] += weight
    return out / weight_sum


def available_memory(device: torch.device) -> int | None:
    """Bytes free on ``device`` now: CUDA's free memory, or the system's available RAM; None if unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def auto_tile_size(height: int, width: int, batch: int, device: torch.device,
                   overlap: int = DEFAULT_OVERLAP) -> int | None:
    """The tile side to use for ``batch`` interpolations of ``height x width``, or None if they fit whole.

    A frame fits when ``batch * H * W * WORKING_BYTES_PER_PIXEL`` is within ``MEMORY_SHARE`` of the
    available memory; otherwise the largest square tile that fits is used (at least ``MIN_TILE`` and
    larger than ``overlap``). When the available memory cannot be read, a warning says so and the
    frames are not tiled (force tiling with an explicit tile size).
    """
    free = available_memory(device)
    if free is None:
        warnings.warn("cannot tell how much memory is available, so frames are not tiled; "
                      "force tiling with an explicit tile size if memory runs out", stacklevel=2)
        return None
    budget = free * MEMORY_SHARE / (batch * WORKING_BYTES_PER_PIXEL)
    if height * width <= budget:
        return None
    side = int(budget ** 0.5)
    return max(side, MIN_TILE, 2 * overlap + 1)
