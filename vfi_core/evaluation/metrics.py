"""Image quality metrics, with the definitions the dev benchmark and the peers use.

- PSNR on 8-bit RGB: both images rounded to uint8, MSE over all pixels and channels, peak 255.
- SSIM: Gaussian window 11x11, sigma 1.5, K1=0.01, K2=0.03, data range 255, statistics over valid
  (unpadded) windows, averaged over channels and pixels. This agrees with scikit-image's
  ``structural_similarity(gaussian_weights=True, use_sample_covariance=False, data_range=255,
  channel_axis=-1)`` and with ``pytorch_msssim.ssim`` used by the peers' evaluation script
(``eval_triplets.py``).
"""
from __future__ import annotations

import numpy as np
import torch

from ..ops.ssim import ssim


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 ``(H,W,C)`` images; ``inf`` when identical."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0 ** 2 / mse))


def ssim_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM between two uint8 ``(H,W,C)`` images (definition in the module docstring), in float64."""
    x = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].double()
    y = torch.from_numpy(np.ascontiguousarray(b)).permute(2, 0, 1)[None].double()
    return float(ssim(x, y, data_range=255.0)[0])
