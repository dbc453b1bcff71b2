"""Spatiotemporal variance-aware supervision for :mod:`vfi_core.models.svmv` (the poster's ``L_BV``).

The network predicts, for every output pixel ``q`` at time t, an ensemble of ``M`` backward
offsets ``u^m_{t->i}(q)`` towards each input frame ``I_i`` (i = 0, 1), with weights ``w^m_i(q)``.

- Spatial variance enhance loss (:func:`spatial_variance_loss`):
  ``L_sv(q) = V_s[u_{t->i}](q) / (V_e[u_{t->i}](q) + eps)``, where ``V_s`` is the local spatial
  variance (``window x window`` box) of the ensemble's weighted mean offset ``ū_{t->i}`` and ``V_e``
  the per-pixel weighted variance of the ``M`` members around it (both summed over x and y, in
  pixels^2). It asks for smooth mean motion and for diverse members, most where motion varies.
- Temporal variance enhance loss (:func:`temporal_variance_loss`): per member ``m`` and frame
  ``i``, with ``W^m_i = I_i(q + u^m_{t->i}(q))`` and ``j = 1 - i``,
  ``L_tv(q) = min(PE(W^m_i, W^m_j), PE(W^m_i, I_t))``: each member's reprojection must agree with
  the other frame's reprojection or with the frame at t, whichever is better (the minimum lets a
  pixel occluded in one frame be explained by the other). ``PE`` is the channel-mean absolute
  difference. Averaged over q, i and m (unweighted: every member must be plausible).

Our reading of the poster: it writes the terms with offsets from ``I_i`` to ``I_j`` and ``I_t``;
SVMV here samples backwards from t, so both reprojections are expressed at the output pixel.

:class:`SVMVLoss` adds them to the reconstruction loss; every term has a weight, 0 switches it off
(ablations). A batch with ground-truth motion (synthetic data: ``flow_t0``/``flow_t1``) also gets
a flow term on the ensembles' mean offsets, masked by visibility (supervised); a batch cut from
raw video gets the frame terms only (self-supervised: the video's own middle frame is the target).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ...config import LossWeights
from ...errors import InputError
from ...losses import census_loss, charbonnier, sharpness_deficit

__all__ = ["SVMVLoss", "SVMVLossWeights", "spatial_variance_loss", "temporal_variance_loss"]


def _check_ensemble(offsets: torch.Tensor, weights: torch.Tensor) -> None:
    if offsets.ndim != 6 or offsets.shape[1] != 2 or offsets.shape[3] != 2:
        raise InputError(f"offsets must be (B,2,M,2,H,W), got {tuple(offsets.shape)}")
    expected = (*offsets.shape[:3], 1, *offsets.shape[4:])
    if tuple(weights.shape) != expected:
        raise InputError(f"weights must be {expected} to match the offsets, got {tuple(weights.shape)}")


def ensemble_mean_and_variance(offsets: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean offset ``(B,2,2,H,W)`` and weighted member variance ``(B,2,1,H,W)`` (x and y summed).

    The weights are normalised per frame (over the ``M`` members of that frame).
    """
    _check_ensemble(offsets, weights)
    w = weights / weights.sum(2, keepdim=True).clamp_min(1e-8)
    mean = (w * offsets).sum(2)
    variance = (w * (offsets - mean.unsqueeze(2)) ** 2).sum(2).sum(2, keepdim=True)
    return mean, variance


def spatial_variance_loss(offsets: torch.Tensor, weights: torch.Tensor, window: int = 3,
                          eps: float = 1e-2) -> torch.Tensor:
    """``mean_q V_s[ū](q) / (V_e[u](q) + eps)`` (see the module docstring).

    Args:
        offsets: ``(B,2,M,2,H,W)`` ensemble offsets in pixels towards ``I0`` and ``I1``.
        weights: ``(B,2,M,1,H,W)`` non-negative member weights.
        window: odd box size of the local spatial variance (edges replicated).
        eps: pixels^2 added to ``V_e``, so that a collapsed ensemble gives a finite loss.
    Returns:
        scalar >= 0; 0 when the mean offset field is locally constant.
    """
    if window < 3 or window % 2 == 0:
        raise InputError(f"spatial_variance_loss: window must be odd and at least 3, got {window}")
    mean, variance = ensemble_mean_and_variance(offsets, weights)
    b, _, _, h, w = mean.shape
    flat = F.pad(mean.reshape(b, 4, h, w), (window // 2,) * 4, mode="replicate")
    local_mean = F.avg_pool2d(flat, window, stride=1)
    local_sq = F.avg_pool2d(flat * flat, window, stride=1)
    spatial = (local_sq - local_mean ** 2).clamp_min(0).view(b, 2, 2, h, w).sum(2, keepdim=True)
    return (spatial / (variance + eps)).mean()


def temporal_variance_loss(samples: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean min(PE(W^m_i, W^m_j), PE(W^m_i, I_t))`` over pixels, frames i and members m.

    Args:
        samples: ``(B,2,M,3,H,W)`` ``I0``/``I1`` sampled at each member's offsets (``W^m_i``).
        target: ``(B,3,H,W)`` the frame at t.
    Returns:
        scalar in [0, 1] for inputs in [0, 1].
    """
    if samples.ndim != 6 or samples.shape[1] != 2 or samples.shape[3] != target.shape[1]:
        raise InputError(f"samples must be (B,2,M,C,H,W), got {tuple(samples.shape)}")
    if target.shape != (samples.shape[0], samples.shape[3], *samples.shape[4:]):
        raise InputError(f"target {tuple(target.shape)} does not match samples {tuple(samples.shape)}")
    other = samples.flip(1)  # W^m_j for j = 1 - i
    pe_other = (samples - other).abs().mean(3)
    pe_target = (samples - target.unsqueeze(1).unsqueeze(1)).abs().mean(3)
    return torch.minimum(pe_other, pe_target).mean()


@dataclass(frozen=True)
class SVMVLossWeights(LossWeights):
    """Weights of the terms of :class:`SVMVLoss`; 0 switches a term off (and skips computing it).

    reconstruction: Charbonnier between the output and the target.
    census: census loss between them (structure, robust to brightness changes).
    spatial_variance, temporal_variance: ``L_sv`` and ``L_tv``.
    flow: L1 between the ensembles' mean offsets and the ground-truth motion, where visible, in
        pixels (only for batches that carry ``flow_t0``/``flow_t1``).
    sharpness: :func:`~vfi_core.losses.sharpness_deficit` of the output against the target: prices
        the blur a pixel-wise loss rewards where motion is uncertain. Off in training; per-clip
        adaptation uses it.
    spatial_variance_eps: not a weight: the ``eps`` (pixels^2) of :func:`spatial_variance_loss`.
        ``L_sv`` rewards member spread wherever the mean motion varies at all, and the output, a
        weighted mean of the members' samples, blurs by that spread: with a small ``eps`` the
        sub-pixel noise of a flow field is enough to spread the members everywhere (measured in
        the loss ablation, README: with 0.01, adding ``L_sv`` cost 0.3-7.8 dB per dev set, most on
        the sharp Vimeo clips); a larger ``eps`` leaves spreads below ``sqrt(eps)`` unrewarded.
    """

    reconstruction: float = 1.0
    census: float = 0.1
    spatial_variance: float = 0.01
    temporal_variance: float = 0.1
    flow: float = 0.01
    sharpness: float = 0.0
    spatial_variance_eps: float = 1e-2

    loss_name: ClassVar[str] = "svmv"
    settings: ClassVar[tuple[str, ...]] = ("spatial_variance_eps",)

    def check(self) -> None:
        if self.spatial_variance_eps <= 0:
            raise InputError("loss.spatial_variance_eps must be > 0")


class SVMVLoss(nn.Module):
    """Reconstruction + variance-aware (+ flow, when known) loss for an :class:`SVMVOutput`.

    ``forward(output, batch)`` returns ``(total, terms)``: the weighted sum (a scalar tensor) and
    each enabled term's unweighted value (floats, for logging). ``batch`` holds ``gt`` ``(B,3,H,W)``
    and optionally ``flow_t0``, ``flow_t1`` ``(B,2,H,W)`` and ``visible_t0``, ``visible_t1`` ``(B,1,H,W)``.
    """

    def __init__(self, weights: SVMVLossWeights | None = None):
        super().__init__()
        self.weights = weights or SVMVLossWeights()

    def forward(self, output, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        gt, w = batch["gt"], self.weights
        terms: dict[str, torch.Tensor] = {}
        if w.reconstruction:
            terms["reconstruction"] = charbonnier(output.frame, gt)
        if w.census:
            terms["census"] = census_loss(output.frame, gt)
        if w.sharpness:
            terms["sharpness"] = sharpness_deficit(output.frame, gt)
        if w.spatial_variance:
            terms["spatial_variance"] = spatial_variance_loss(output.offsets, output.weights,
                                                               eps=w.spatial_variance_eps)
        if w.temporal_variance:
            terms["temporal_variance"] = temporal_variance_loss(output.samples, gt)
        if w.flow and "flow_t0" in batch:
            mean, _ = ensemble_mean_and_variance(output.offsets, output.weights)
            error = torch.stack(((mean[:, 0] - batch["flow_t0"]).abs().sum(1) * batch["visible_t0"][:, 0],
                                 (mean[:, 1] - batch["flow_t1"]).abs().sum(1) * batch["visible_t1"][:, 0]))
            terms["flow"] = error.mean()
        if not terms:
            raise InputError("every loss weight is 0: enable at least one term")
        total = sum(getattr(w, name) * value for name, value in terms.items())
        return total, {name: float(value.detach()) for name, value in terms.items()}
