"""Image quality metrics, with the definitions the dev benchmark and the peers use.

- PSNR on 8-bit RGB: both images rounded to uint8, MSE over all pixels and channels, peak 255.
- SSIM: Gaussian window 11x11, sigma 1.5, K1=0.01, K2=0.03, data range 255, statistics over valid
  (unpadded) windows, averaged over channels and pixels. This agrees with scikit-image's
  ``structural_similarity(gaussian_weights=True, use_sample_covariance=False, data_range=255,
  channel_axis=-1)`` and with ``pytorch_msssim.ssim`` used by ``../shared/peers/eval_triplets.py``.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 ``(H,W,C)`` images; ``inf`` when identical."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0 ** 2 / mse))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def ssim_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM between two uint8 ``(H,W,C)`` images (definition in the module docstring)."""
    x = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].double()
    y = torch.from_numpy(np.ascontiguousarray(b)).permute(2, 0, 1)[None].double()
    c = x.shape[1]
    g = _gaussian_window()
    wx = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    wy = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(z):
        return F.conv2d(F.conv2d(z, wx, groups=c), wy, groups=c)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())
