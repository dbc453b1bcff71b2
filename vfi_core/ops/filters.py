"""Gaussian filtering of ``(N,C,H,W)`` tensors, per channel, differentiable."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_window(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    """``(size,)`` normalised 1D Gaussian in ``like``'s dtype and device."""
    x = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def gaussian_blur(x: torch.Tensor, sigma: float, size: int | None = None, pad: bool = True) -> torch.Tensor:
    """Separable Gaussian blur of ``(N,C,H,W)`` ``x``, each channel alone.

    Args:
        sigma: standard deviation in pixels.
        size: odd window side (default ``2 * max(1, round(3 * sigma)) + 1``).
        pad: replicate the edges so that the result keeps ``x``'s size; ``False``: valid windows
            only, ``(N,C,H-size+1,W-size+1)``.
    """
    if size is None:
        size = 2 * max(1, round(3 * sigma)) + 1
    c = x.shape[1]
    g = gaussian_window(size, sigma, x)
    if pad:
        x = F.pad(x, (size // 2,) * 4, mode="replicate")
    x = F.conv2d(x, g.view(1, 1, 1, size).expand(c, 1, 1, size), groups=c)
    return F.conv2d(x, g.view(1, 1, size, 1).expand(c, 1, size, 1), groups=c)
