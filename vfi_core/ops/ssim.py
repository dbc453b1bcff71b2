"""Structural similarity (SSIM) of ``(N,C,H,W)`` tensors, differentiable.

One definition for the quality metric (:func:`vfi_core.metrics.ssim_uint8`) and the training loss
(:func:`vfi_core.losses.ssim_loss`).
"""
from __future__ import annotations

import torch

from ..frames import check_image_pair
from .filters import gaussian_blur

__all__ = ["ssim"]


def ssim(pred: torch.Tensor, target: torch.Tensor, window: int = 11, sigma: float = 1.5,
         data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM over valid (unpadded) windows and channels, per image: ``(B,)``.

    The definition of :func:`vfi_core.metrics.ssim_uint8` (Gaussian ``window x window`` with
    ``sigma``, K1=0.01, K2=0.03), differentiable and on float inputs with ``data_range``.
    Needs ``H, W >= window``.
    """
    check_image_pair(pred, target, "ssim", min_size=window)

    def blur(z: torch.Tensor) -> torch.Tensor:
        return gaussian_blur(z, sigma, window, pad=False)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = blur(pred), blur(target)
    sxx = blur(pred * pred) - mx * mx
    syy = blur(target * target) - my * my
    sxy = blur(pred * target) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean(dim=(1, 2, 3))
