"""``flow-asb``: training-free interpolation by optical flow and asymmetric blending.

1. Bidirectional DIS optical flow ``F01``, ``F10``.
2. The motion at time t is found by forward splatting (flow reversal): each pixel of frame 0 carries
   its motion ``F01`` to ``p + t*F01``, each pixel of frame 1 carries ``-F10`` to ``p + (1-t)*F10``.
   Softmax splatting ranks colliding pixels by photometric consistency, so content that stays
   visible wins over content that is being covered. Holes are filled by push-pull.
3. Both frames are backward-warped to t with that motion (linear motion assumption).
4. Occlusion (PerVFI eqs. 5-6): splatting a ones map from frame 0 along ``t*F01``; a pixel at t that
   receives less than ``epsilon`` of frame 0 is occluded in frame 0, and likewise for frame 1.
5. Asymmetric blending (in the spirit of PerVFI eqs. 7-9): the frame nearer in time is primary;
   the binary occlusion masks are dilated into quasi-binary masks (``tanh`` of a smoothed dilation
   plus ``beta`` times the binary mask, eq. 8 without the learned projection), and the other frame
   fills only where the primary one is occluded. ``asymmetry`` sets how much of the non-occluded
   area comes from the primary frame alone (1, PerVFI's choice: sharpest, no ghosting) versus a
   time-weighted mix of both (0: smoother where the flow is slightly off).

It also gives a confidence map: low where the two warped frames disagree or neither frame sees
the pixel.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..interpolator import Interpolation, Interpolator
from ..ops.flow import DIS_PRESETS, DISFlow
from ..ops.warp import backward_warp, fill_holes, softmax_splat
from ..registry import ModelDescriptor, Param, register


def _dilate_soft(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Max-pool dilation by ``radius`` followed by a box blur of the same radius: a soft halo."""
    if radius <= 0:
        return mask
    k = 2 * radius + 1
    grown = F.max_pool2d(mask, k, stride=1, padding=radius)
    return F.avg_pool2d(grown, k, stride=1, padding=radius, count_include_pad=False)


def quasi_binary_mask(occluded: torch.Tensor, radius: int, beta: float = 2.0) -> torch.Tensor:
    """PerVFI eq. 8 without learned layers: ``tanh(|dilate(M_b)| + beta*M_b)``, in [0,1).

    ``occluded`` is the binary mask ``(B,1,H,W)``; the result is near 1 on occluded pixels, falls
    off over ``radius`` pixels around them, and is exactly 0 elsewhere (sparse).
    """
    return torch.tanh(_dilate_soft(occluded, radius).abs() + beta * occluded)


def asymmetric_blend(warped0: torch.Tensor, warped1: torch.Tensor, t: torch.Tensor,
                     mask0: torch.Tensor, mask1: torch.Tensor, asymmetry: float) -> torch.Tensor:
    """Blend two frames warped to t (PerVFI eq. 9 generalised to two occlusion masks).

    Args:
        warped0, warped1: ``(B,C,H,W)`` frames 0 and 1 warped to t.
        t: ``(B,)`` times.
        mask0, mask1: ``(B,1,H,W)`` quasi-binary masks, 1 where frame 0 (resp. 1) is occluded at t.
        asymmetry: 0 = time-weighted mix of both where both are visible, 1 = primary frame only.
    Returns:
        The blended ``(B,C,H,W)`` frame.
    """
    tt = t.view(-1, 1, 1, 1).to(warped0.dtype)
    primary_is_1 = (tt > 0.5).to(warped0.dtype)
    weight1 = (1.0 - asymmetry) * tt + asymmetry * primary_is_1
    weight1 = weight1 + (1.0 - weight1) * mask0      # frame 0 occluded: take frame 1
    weight1 = weight1 * (1.0 - mask1 * (1.0 - mask0))  # frame 1 occluded (and 0 not): take frame 0
    return warped0 * (1.0 - weight1) + warped1 * weight1


class FlowASB(Interpolator):
    descriptor = ModelDescriptor(
        name="flow-asb",
        summary="Training-free: DIS optical flow, splatted motion at t, occlusion-aware asymmetric blending.",
        arbitrary_t=True,
        size_multiple=1,
        supports_half=False,
        weight_file=None,
        gives_confidence=True,
        params=(
            Param("flow_preset", str, "medium", "DIS optical flow preset: faster or more accurate motion.",
                  choices=DIS_PRESETS),
            Param("asymmetry", float, 0.5, "0 mixes both frames where both are visible; 1 takes the nearer "
                  "frame alone (sharpest, never ghosts).", min=0.0, max=1.0, step=0.05),
            Param("dilation", int, 4, "Pixels by which occlusion masks grow before blending.",
                  min=0, max=32, step=1),
        ),
    )

    # photometric error scale of the softmax-splatting metric (errors are in [0,1] units)
    consistency_weight = 20.0
    occlusion_threshold = 0.5  # epsilon of PerVFI eq. 6

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._flow = None

    def _flow_estimator(self) -> DISFlow:
        preset = self.params["flow_preset"]
        if self._flow is None or self._flow[0] != preset:
            self._flow = (preset, DISFlow(preset))
        return self._flow[1]

    def motion_at_t(self, frame0, frame1, f01, f10, t):
        """Forward-splatted motion field at t (``(B,2,H,W)``, displacement from frame 0 to frame 1)
        and the coverages of frame 0 and frame 1 at t (``(B,1,H,W)`` each)."""
        tt = t.view(-1, 1, 1, 1)
        err0 = (frame0 - backward_warp(frame1, f01)).abs().mean(1, keepdim=True)
        err1 = (frame1 - backward_warp(frame0, f10)).abs().mean(1, keepdim=True)
        from0, cov0 = softmax_splat(torch.cat((f01, torch.ones_like(err0)), 1), tt * f01,
                                    -self.consistency_weight * err0)
        from1, cov1 = softmax_splat(torch.cat((-f10, torch.ones_like(err1)), 1), (1 - tt) * f10,
                                    -self.consistency_weight * err1)
        # Where both sides land, weight each by how much of it arrived and how consistent it was.
        w0 = cov0.clamp(max=1.0) * (1 - tt)
        w1 = cov1.clamp(max=1.0) * tt
        valid = ((w0 + w1) > 1e-3).to(f01.dtype)
        motion = (from0[:, :2] * w0 + from1[:, :2] * w1) / (w0 + w1).clamp_min(1e-6)
        motion = fill_holes(motion, valid)
        return motion, cov0, cov1

    def _interpolate(self, frame0, frame1, t) -> Interpolation:
        f01, f10 = self._flow_estimator()(frame0, frame1)
        motion, cov0, cov1 = self.motion_at_t(frame0, frame1, f01, f10, t)
        tt = t.view(-1, 1, 1, 1)
        warped0 = backward_warp(frame0, -tt * motion)
        warped1 = backward_warp(frame1, (1 - tt) * motion)
        occluded0 = (cov0 < self.occlusion_threshold).to(frame0.dtype)
        occluded1 = (cov1 < self.occlusion_threshold).to(frame0.dtype)
        radius = self.params["dilation"]
        mask0 = quasi_binary_mask(occluded0, radius)
        mask1 = quasi_binary_mask(occluded1, radius)
        frame = asymmetric_blend(warped0, warped1, t, mask0, mask1, self.params["asymmetry"])
        disagreement = (warped0 - warped1).abs().mean(1, keepdim=True)
        seen_by_neither = occluded0 * occluded1
        confidence = (1.0 - 4.0 * disagreement).clamp(0, 1) * (1.0 - seen_by_neither)
        # where one frame is occluded, the disagreement is expected and says nothing
        confidence = torch.maximum(confidence, torch.maximum(mask0, mask1) * (1.0 - seen_by_neither))
        return Interpolation(frame, confidence)


register(FlowASB.descriptor, FlowASB)
