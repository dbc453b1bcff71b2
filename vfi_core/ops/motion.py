"""Motion at an intermediate time t from bidirectional optical flow."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..registry import Param
from .warp import backward_warp, fill_holes, softmax_splat

CONSISTENCY_WEIGHT = 20.0  # softmax-splatting importance: -weight * photometric error (in [0,1] units)

# Per-pixel choice among motion hypotheses (:func:`agreement_weights`): the disagreement is
# averaged over a (2r+1)^2 window, r = SELECTION_RADIUS, and a hypothesis' weight falls as
# exp(-disagreement / sigma), sigma = SELECTION_SIGMA * 100 ** (1 - selection).
SELECTION_RADIUS = 2
SELECTION_SIGMA = 0.01
# Detail restored where the motion is sure (:func:`restore_sampling_detail`): the correction falls as
# exp(-disagreement / sigma) over the same window, sigma = SHARPNESS_SIGMA * s / (1 - s) for sharpness s.
# SHARPNESS_GAIN scales it: 1 is exactly bilinear sampling's own second-order term; 1.5 looked sharper
# on training-allowed windows for 0.02 dB less on large motion.
SHARPNESS_SIGMA = 0.02
SHARPNESS_GAIN = 1.0


def selection_param(default: float = 0.0) -> Param:
    """The ``selection`` parameter, declared once for every model that blends several motion hypotheses."""
    return Param("selection", float, default, "0 averages the motion hypotheses (highest PSNR); higher values "
                 "take, per pixel, the hypothesis whose two warped frames agree best (sharper frames, less "
                 "ghosting, slightly lower PSNR).", min=0.0, max=1.0, step=0.05)


def agreement_weights(disagreement: torch.Tensor, selection: float, dim: int = 0) -> torch.Tensor:
    """Relative weights of motion hypotheses from how much their two warped frames disagree.

    Args:
        disagreement: ``(..., N, ..., 1, H, W)`` with the N hypotheses along ``dim``: per pixel, the
            mean absolute difference between frame 0 and frame 1 warped to t by each hypothesis, in
            [0,1] units, and 0 where one frame is occluded (there the difference says nothing).
        selection: in [0,1]; 0 gives every hypothesis weight 1, 1 the sharpest choice.
    Returns:
        Factors in (0,1], the same shape: 1 for the best-agreeing hypothesis at each pixel, falling as
        ``exp(-(disagreement - best) / sigma)`` with the window-averaged disagreement (module
        constants). Multiply a blend's weights by them and renormalise.
    """
    if selection <= 0:
        return torch.ones_like(disagreement)
    sigma = SELECTION_SIGMA * 100.0 ** (1.0 - selection)
    smooth = _window_mean(disagreement)
    return torch.exp(-(smooth - smooth.amin(dim, keepdim=True)) / sigma)


def _window_mean(x: torch.Tensor) -> torch.Tensor:
    """``x`` ``(..., H, W)`` averaged over the ``(2r+1)^2`` window around each pixel (r = ``SELECTION_RADIUS``),
    the window cut at the frame's edges (the mean of the pixels inside it)."""
    # separable running sums of shifted slices: avg_pool2d with count_include_pad=False gives the same
    # means but took three times as long on eight 1280x720 maps (one thread)
    h, w = x.shape[-2:]
    box = _running_sum(_running_sum(x.reshape(-1, h, w), -1), -2)
    counts = _window_count(h, x)[:, None] * _window_count(w, x)[None]
    return box.div_(counts).view(x.shape)


def _running_sum(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Sums of ``x`` ``(N,H,W)`` over the ``2r+1`` positions around each one along ``dim`` (-1 or -2),
    zero beyond the edges."""
    r, n = SELECTION_RADIUS, x.shape[dim]
    padded = F.pad(x, (r, r) if dim == -1 else (0, 0, r, r))
    total = padded.narrow(dim, 0, n).clone()
    for i in range(1, 2 * r + 1):
        total.add_(padded.narrow(dim, i, n))
    return total


def _window_count(n: int, like: torch.Tensor) -> torch.Tensor:
    """``(n,)``: how many of ``n`` positions the ``2r+1`` window around each one holds."""
    r = SELECTION_RADIUS
    i = torch.arange(n, dtype=like.dtype, device=like.device)
    return i.clamp(max=r) + (n - 1 - i).clamp(max=r) + 1


def sharpness_param(default: float = 0.0) -> Param:
    """The ``sharpness`` parameter, declared once for every model that warps frames to t."""
    return Param("sharpness", float, default, "0 leaves the softening of bilinear sampling in the warped frames; "
                 "higher values undo it where the motion is sure, 1 everywhere (finer detail; at 1, lower "
                 "PSNR where the motion is uncertain).", min=0.0, max=1.0, step=0.05)


def sampling_blur(offsets: torch.Tensor) -> torch.Tensor:
    """How much bilinear sampling at ``p + offsets`` blurs, per axis: ``f (1 - f)`` of the fractional
    part ``f`` of each offset (0 at whole pixels, 1/4 half way).

    Args:
        offsets: ``(..., 2, H, W)`` sampling offsets in pixels (x, y), any float dtype.
    Returns:
        ``(..., 2, H, W)`` in [0, 1/4]: the variance of the two-tap kernel bilinear sampling applies
        along each axis there.
    """
    # |frac| is the fractional part for positive offsets and one minus it for negative ones; f (1 - f)
    # is the same for both
    fraction = offsets.frac().abs_()
    if fraction.requires_grad:
        return torch.addcmul(fraction, fraction, fraction, value=-1.0)
    return fraction.addcmul_(fraction, fraction, value=-1.0)  # in place: half the time


def restore_sampling_detail(frame: torch.Tensor, blur: torch.Tensor, disagreement: torch.Tensor,
                            sharpness: float) -> torch.Tensor:
    """Undo the blur of bilinear sampling in a frame built from warped samples, where the motion is sure.

    A bilinear sample at fractional offset ``f`` along an axis equals the image there plus
    ``f (1 - f) / 2`` times its second derivative along that axis (to second order), so every warped
    frame is softened by a blur whose strength is known per pixel. Subtracting that term restores the
    detail at the cost of a few elementwise operations, where sampling the frames with a wider kernel
    would cost a second warp of every map. Where the warped frames disagree the motion is unsure: the
    correction would sharpen the double edges of wrong motion, so it fades out there.

    Args:
        frame: ``(B,C,H,W)`` the blended frame (float).
        blur: ``(B,2,H,W)`` the weighted mean over the samples that made each pixel of their
            :func:`sampling_blur` (x, y), with the samples' blend weights.
        disagreement: ``(B,1,H,W)`` the weighted mean absolute difference between the two frames
            warped to t (occlusions included: the motion is unsure there).
        sharpness: the declared parameter, in [0,1]: 0 returns ``frame``, 1 corrects everywhere.
    Returns:
        The corrected frame, ``frame``'s shape and dtype, clamped to [0,1]: ``frame - g * SHARPNESS_GAIN *
        (bx * d2x + by * d2y) / 2`` with the second differences ``d2x``, ``d2y`` of the frame (edges
        replicated) and ``g = exp(-d / sigma)`` of the window-averaged disagreement ``d``,
        ``sigma = SHARPNESS_SIGMA * s / (1 - s)``.
    """
    if sharpness <= 0:
        return frame
    # second differences along x and y by hand: kornia's spatial_gradient (order 2) also computes the
    # mixed term, as a 3x3 convolution, and took 5 times as long at 1280x720
    px = F.pad(frame, (1, 1, 0, 0), mode="replicate")
    py = F.pad(frame, (0, 0, 1, 1), mode="replicate")
    d2x = px[..., :, :-2] + px[..., :, 2:] - 2.0 * frame
    d2y = py[..., :-2, :] + py[..., 2:, :] - 2.0 * frame
    correction = blur[:, :1] * d2x + blur[:, 1:2] * d2y
    gain = 0.5 * SHARPNESS_GAIN
    if sharpness < 1:
        sigma = SHARPNESS_SIGMA * sharpness / (1.0 - sharpness)
        gain = gain * torch.exp(-_window_mean(disagreement) / sigma)
    return (frame - gain * correction).clamp(0.0, 1.0)


def linear_motion(f01: torch.Tensor, f10: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Super SloMo's approximation of the backward flows from t: ``(B,4,H,W)`` = ``F_t0, F_t1``.

    ``F_t0 = -(1-t) t F01 + t^2 F10``, ``F_t1 = (1-t)^2 F01 - t(1-t) F10``; ``f01``, ``f10`` are
    ``(B,2,H,W)`` in pixels, ``t`` is ``(B,)``.
    """
    tt = t.to(f01.dtype).view(-1, 1, 1, 1)
    return torch.cat((-(1 - tt) * tt * f01 + tt * tt * f10, (1 - tt) ** 2 * f01 - tt * (1 - tt) * f10), 1)


def splatted_motion(frame0: torch.Tensor, frame1: torch.Tensor, f01: torch.Tensor, f10: torch.Tensor,
                    t: torch.Tensor, consistency_weight: float = CONSISTENCY_WEIGHT
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flow reversal by softmax splatting: the motion field at t and what each frame covers there.

    Each pixel of frame 0 carries ``F01`` to ``p + t*F01``, each pixel of frame 1 carries ``-F10`` to
    ``p + (1-t)*F10``; colliding pixels are ranked by photometric consistency (content that stays
    visible wins over content being covered); holes are filled by push-pull.

    Args:
        frame0, frame1: ``(B,3,H,W)`` in [0,1]. f01, f10: ``(B,2,H,W)`` flows in pixels. t: ``(B,)``.
    Returns:
        ``motion`` ``(B,2,H,W)`` (displacement from frame 0 to frame 1 at each pixel at t; the
        backward flows from t are ``-t*motion`` and ``(1-t)*motion``), and the coverages ``cov0``,
        ``cov1`` ``(B,1,H,W)``: how much of frame 0 / frame 1 lands on each pixel at t (0: occluded).
    """
    tt = t.to(f01.dtype).view(-1, 1, 1, 1)
    err0 = (frame0 - backward_warp(frame1, f01)).abs().mean(1, keepdim=True)
    err1 = (frame1 - backward_warp(frame0, f10)).abs().mean(1, keepdim=True)
    from0, cov0 = softmax_splat(torch.cat((f01, torch.ones_like(err0)), 1), tt * f01, -consistency_weight * err0)
    from1, cov1 = softmax_splat(torch.cat((-f10, torch.ones_like(err1)), 1), (1 - tt) * f10,
                                -consistency_weight * err1)
    # where both sides land, weight each by how much of it arrived and how near in time it is
    w0 = cov0.clamp(max=1.0) * (1 - tt)
    w1 = cov1.clamp(max=1.0) * tt
    valid = ((w0 + w1) > 1e-3).to(f01.dtype)
    motion = (from0[:, :2] * w0 + from1[:, :2] * w1) / (w0 + w1).clamp_min(1e-6)
    return fill_holes(motion, valid), cov0, cov1
