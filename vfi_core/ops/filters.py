"""Gaussian filtering of ``(N,C,H,W)`` tensors, per channel, differentiable (kornia's, with the
suite's window-size convention)."""
from __future__ import annotations

import torch
from kornia.filters import gaussian_blur2d


def gaussian_blur(x: torch.Tensor, sigma: float, size: int | None = None) -> torch.Tensor:
    """Separable Gaussian blur of ``(N,C,H,W)`` ``x``, each channel alone, edges replicated (the
    result keeps ``x``'s size).

    Args:
        sigma: standard deviation in pixels.
        size: odd window side (default ``2 * max(1, round(3 * sigma)) + 1``).
    """
    if size is None:
        size = 2 * max(1, round(3 * sigma)) + 1
    return gaussian_blur2d(x, (size, size), (sigma, sigma), border_type="replicate")
