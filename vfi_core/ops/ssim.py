"""Structural similarity (SSIM) of ``(N,C,H,W)`` tensors, differentiable.

One definition for the quality metric (:func:`vfi_core.evaluation.metrics.ssim_uint8`) and the training loss
(:func:`vfi_core.losses.ssim_loss`): kornia's SSIM over valid windows, averaged per image.
"""
from __future__ import annotations

import torch
from kornia.metrics import ssim as kornia_ssim

from ..frames import check_image_pair

__all__ = ["ssim"]


def ssim(pred: torch.Tensor, target: torch.Tensor, window: int = 11, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM over valid (unpadded) windows and channels, per image: ``(B,)``.

    Gaussian ``window x window`` windows with sigma 1.5 (K1=0.01, K2=0.03), on float inputs with
    ``data_range``. Needs ``H, W >= window``.
    """
    check_image_pair(pred, target, "ssim", min_size=window)
    return kornia_ssim(pred, target, window, max_val=data_range, padding="valid").mean(dim=(1, 2, 3))
