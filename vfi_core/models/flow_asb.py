"""``flow-asb``: training-free interpolation by optical flow and asymmetric blending.

1. Bidirectional optical flow ``F01``, ``F10`` from the core's estimator (``motion``, :mod:`vfi_core.flow`;
   by default DIS started from RAFT's flow where the RAFT weights are installed, else DIS alone).
   On 110 windows of training-allowed video (ten DAVIS training sequences at gaps of 1 and 2 frames,
   the bedroom clip), RAFT's start gained 0.31 dB on gap 2 and 0.17 dB on gap 1 over DIS alone
   (docs/results.md). DIS: frames up to 640 pixels on their long side get
   DIS refined down to full resolution (measured: +0.12 dB at 448x256, but -0.13 dB at 960x540,
   where the preset's half-resolution finest level is better). More variational refinement
   looked good on small motion (+0.04 dB) but over-smooths large motion: 5-7 dB lost on a Vimeo
   septuplet moving 70 px, so the preset's refinement is kept.
   ``global_motion`` (default on) starts DIS from the frames' dominant translation, found by an
   exhaustive coarse search (:func:`~vfi_core.ops.flow.global_shift`), instead of zero: DIS's
   coarse-to-fine search corrects only a few pixels per level, and a fast pan over fine texture
   left whole backgrounds at the wrong motion. On 60 gap-2 windows of the ten training-allowed
   DAVIS sequences at 854x480: 20.78 -> 20.96 dB (scooter-black +1.1, soapbox +0.6, drift-straight
   +0.2; camel -0.14), for about 15 ms per pair.
2. Two hypotheses of the motion at time t:
   - splatted (flow reversal): each pixel of frame 0 carries its motion ``F01`` to ``p + t*F01``,
     each pixel of frame 1 carries ``-F10`` to ``p + (1-t)*F10``; softmax splatting ranks colliding
     pixels by photometric consistency, so content that stays visible wins over content being
     covered; holes are filled by push-pull. Sharp at motion boundaries when the flow is right.
   - linear (Super SloMo's approximation from the flows at the same pixel): smoother, more
     forgiving where the flow is wrong, e.g. large motion on small frames.
   With RAFT's start and ``raft_hypotheses`` on (off by default), RAFT's own flow, before DIS
   refined it, gives two more the same way: DIS's refinement makes the flow photometrically precise
   but sometimes locks onto the wrong match (repeated texture, fast non-rigid motion), where RAFT's
   smoother flow is right. On the training-allowed windows below, at ``selection`` 0.5: +0.26 dB on
   DAVIS gap 2, +0.21 on gap 1, +0.18 on the indoor clip, but a perceptual distance 6%, 9% and 40%
   higher: the frames are softer (docs/results.md).
3. For each hypothesis both frames are backward-warped to t and blended:
   - occlusion (PerVFI eqs. 5-6): a ones map splatted from frame 0 along ``t*F01``; a pixel at t
     that receives less than ``epsilon`` of frame 0 is occluded in it; likewise for frame 1; and,
     per hypothesis, a pixel whose sample in a frame falls outside that frame (content out of view
     there, which the border replication of backward warping would smear in) counts as occluded in
     it; out of view in both, the pixel keeps the time-weighted blend. The rule answers a dev-benchmark
     failure (a Vimeo septuplet panning 70 px lost 4.3 dB at its borders); it was checked on
     training-allowed frames (0.00-0.03 dB better on every proxy set, no loss) before the dev run,
     where it moved vimeo_t1of3 from 31.71 to 32.42 dB;
   - asymmetric blending (in the spirit of PerVFI eqs. 7-9): the binary masks become quasi-binary
     masks (``tanh`` of a dilation plus ``beta`` times the binary mask, eq. 8 without learned
     layers) and the visible frame alone fills where the other is occluded; ``asymmetry`` sets how
     much of the area both frames see comes from the frame nearer in time alone (1, PerVFI's
     choice: crisp, never ghosts) versus a time-weighted mix (0: best PSNR when the flow is off).
4. The results of the hypotheses are averaged: their errors are partly independent, so the ensemble
   beats each.
   Averaging two alignments also softens detail and ghosts where one of them is wrong:
   ``selection`` (default 0.5; 0 is the plain mean) weights each hypothesis per pixel by how well
   its two warped frames agree where both are visible
   (:func:`~vfi_core.ops.motion.agreement_weights`): sharper frames for little or no PSNR
   (docs/results.md has the figures).
5. Bilinear sampling at fractional positions averages neighbouring pixels, so every warped frame
   loses fine detail, by an amount known per pixel from the sampling offsets. ``sharpness``
   (default 0.5; 0 leaves the blend as it is) subtracts that blur's second-order term from the
   frame where the hypotheses' warped frames agree (the motion is sure there), 1 everywhere
   (:func:`~vfi_core.ops.motion.restore_sampling_detail`).

Defaults are the best measured on frames that training may use, never the dev benchmark: ten DAVIS
training sequences at 854x480 (gaps of 1 and 2 frames) and at 448x256, the four SAM 2 clips at
448x256 (gaps of 1 and 3 frames, t = 1/2 and 1/3) and the bedroom clip. There, against plain DIS
warp-and-blend, the ensemble gained 0.04-0.43 dB (splatted motion alone lost up to 0.15 dB on large
gaps of small frames; the linear hypothesis alone tied DIS); a time-weighted mix beat the
primary-only blend by 0.25-0.4 dB; dilating the masks cost PSNR. Hence ``asymmetry=0`` and
``dilation=0``: asymmetric only inside detected occlusions. Raise both for the PerVFI look.

The confidence map is low where the two warped frames disagree or neither frame sees the pixel.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..cancellation import check_cancelled
from ..interpolator import Interpolation, Interpolator
from ..flow import PairFlows, frame_estimator, motion_param, raft_hypotheses_param
from ..ops.flow import DIS_PRESETS
from ..ops.motion import (CONSISTENCY_WEIGHT, agreement_weights, linear_motion, restore_sampling_detail,
                          sampling_blur, selection_param, sharpness_param, splatted_motion)
from ..ops.warp import backward_warp, outside_frame
from ..registry import ModelDescriptor, Param, register
from .refine import DetailRestorer, RefineNet, RestorationInputs, add_cost, refine_param


# epsilon of PerVFI eq. 6: a pixel that receives less than this much of a frame is occluded in it.
# The paper's 0.5 flags the stretched areas DIS flow leaves around moving edges as occluded
# (measured -0.3 dB); 0.05 keeps only real holes.
OCCLUSION_THRESHOLD = 0.05


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
    weight1 = blend_weight(t, mask0, mask1, asymmetry)
    return warped0 * (1.0 - weight1) + warped1 * weight1


def blend_weight(t: torch.Tensor, mask0: torch.Tensor, mask1: torch.Tensor, asymmetry: float) -> torch.Tensor:
    """The share of frame 1 in :func:`asymmetric_blend`, ``(B,1,H,W)`` in [0,1]."""
    tt = t.view(-1, 1, 1, 1).to(mask0.dtype)
    primary_is_1 = (tt > 0.5).to(mask0.dtype)
    weight1 = (1.0 - asymmetry) * tt + asymmetry * primary_is_1
    weight1 = weight1 + (1.0 - weight1) * mask0      # frame 0 occluded: take frame 1
    return weight1 * (1.0 - mask1 * (1.0 - mask0))    # frame 1 occluded (and 0 not): take frame 0


def occlusion_weight(t: torch.Tensor, to0: torch.Tensor, to1: torch.Tensor, occluded0: torch.Tensor,
                     occluded1: torch.Tensor, asymmetry: float = 0.0, dilation: int = 0
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The share of frame 1 at t for one motion hypothesis, and the quasi-binary occlusion masks.

    Args:
        t: ``(B,)`` times.
        to0, to1: ``(B,2,H,W)`` backward flows from t to frames 0 and 1, in pixels.
        occluded0, occluded1: ``(B,1,H,W)`` 1 where a frame's content does not reach t (splatting
            coverage below :data:`OCCLUSION_THRESHOLD`).
        asymmetry, dilation: as flow-asb's declared parameters.
    Returns:
        ``(weight1, mask0, mask1)``, each ``(B,1,H,W)`` in [0,1] (:func:`blend_weight`).
    """
    # a frame is also occluded where its sample falls outside it (content out of view, which
    # border replication would otherwise smear in); out of both: the plain blend
    hidden0 = torch.maximum(occluded0, outside_frame(to0))
    hidden1 = torch.maximum(occluded1, outside_frame(to1))
    both = hidden0 * hidden1
    mask0 = quasi_binary_mask(hidden0 - both, dilation)
    mask1 = quasi_binary_mask(hidden1 - both, dilation)
    return blend_weight(t, mask0, mask1, asymmetry), mask0, mask1


class FlowASB(Interpolator):
    descriptor = ModelDescriptor(
        name="flow-asb",
        summary="Training-free: DIS optical flow, splatted and linear motion at t, occlusion-aware asymmetric blending.",
        arbitrary_t=True,
        size_multiple=1,
        supports_half=True,   # the motion estimator (RAFT) in half precision, the rest float32
        weight_file=None,
        gives_confidence=True,
        seconds_per_megapixel={"cpu": 4.3, "cuda": 0.11},  # one CPU core (854x480), one H200 (1080p)
        params=(
            motion_param(),
            # off: on training-allowed windows +0.18 to +0.26 dB, but a 6-40% higher perceptual distance
            # (docs/results.md, "RAFT's own flow as hypotheses")
            raft_hypotheses_param(),
            Param("flow_preset", str, "medium", "DIS optical flow preset: faster or more accurate motion.",
                  choices=DIS_PRESETS),
            Param("global_motion", bool, True, "Start the flow from the frames' dominant motion (a camera "
                  "pan): follows fast pans over fine texture that plain DIS loses."),
            Param("asymmetry", float, 0.0, "0 mixes both frames where both are visible; 1 takes the nearer "
                  "frame alone (sharpest, never ghosts).", min=0.0, max=1.0, step=0.05),
            Param("dilation", int, 0, "Pixels by which occlusion masks grow before blending.",
                  min=0, max=32, step=1),
            # 0.5: on training-allowed windows within 0.03 dB for 4-6% lower perceptual distance
            # (docs/results.md, "Sharpness")
            selection_param(0.5),
            # 0.5: on training-allowed windows -0.03 to +0.02 dB for 6-12% lower perceptual distance,
            # at the cost of a few elementwise operations (docs/results.md, "Sharpness")
            sharpness_param(0.5),
            refine_param(),
        ),
    )


    def __init__(self, *, refiner: RefineNet | None = None, **kwargs):
        super().__init__(**kwargs)
        self._flows = PairFlows()
        self._restorer = DetailRestorer(self.device, refiner, search_dirs=self.weight_dirs)

    def seconds_per_megapixel(self) -> float | None:
        return add_cost(super().seconds_per_megapixel(),
                        self._restorer.added_seconds_per_megapixel(self.device.type, self.params["refine"]))

    def flows(self, frame0: torch.Tensor, frame1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Bidirectional flows; reused when the same pair comes again (every t of a pair in a sequence)."""
        return self.flows_with_start(frame0, frame1)[:2]

    def flows_with_start(self, frame0: torch.Tensor, frame1: torch.Tensor):
        """``(F01, F10, start)``: the flows and RAFT's flows that DIS started from
        (:meth:`~vfi_core.flow.MotionEstimator.with_start`; ``None`` without them), kept per pair."""
        estimator = frame_estimator(*frame0.shape[-2:], self.params["motion"], self.params["flow_preset"],
                                    self.params["global_motion"])
        return self._flows.get(frame0, frame1, lambda: estimator.with_start(frame0, frame1), key=estimator)

    def _interpolate(self, frame0, frame1, t) -> Interpolation:
        f01, f10, start = self.flows_with_start(frame0, frame1)  # RAFT runs in the model's dtype
        result, inputs = synthesize(frame0, frame1, f01, f10, t, self.params["asymmetry"], self.params["dilation"],
                                    self.params["selection"], self.params["sharpness"],
                                    more=start if self.params["raft_hypotheses"] else None)
        if self.params["refine"] > 0:
            result = result._replace(frame=self._restorer(inputs, t.float(), self.params["refine"]))
        return result


def hypothesis_shares(warped0: torch.Tensor, warped1: torch.Tensor, mask0: torch.Tensor, mask1: torch.Tensor,
                      selection: float, hypotheses: int = 2) -> torch.Tensor | None:
    """Per-pixel shares of the motion hypotheses in the frame, from how well each one's warps agree.

    Args:
        warped0, warped1: ``(N*B,3,H,W)`` frames 0 and 1 warped to t, hypothesis-major (N = ``hypotheses``).
        mask0, mask1: ``(N*B,1,H,W)`` occlusion masks in [0,1] (1: that frame is occluded); where
            either is set, the warps are expected to differ and say nothing of the motion.
        selection: the declared parameter, in [0,1].
    Returns:
        ``(N,B,1,H,W)`` shares summing to 1 over N, or ``None`` for ``selection`` 0 (the plain mean).
    """
    if selection <= 0:
        return None
    visible = 1.0 - torch.maximum(mask0, mask1)
    disagree = (warped0 - warped1).abs().mean(1, keepdim=True) * visible
    share = agreement_weights(disagree.view(hypotheses, -1, *disagree.shape[1:]), selection)
    return share / share.sum(0, keepdim=True)


def synthesize(frame0: torch.Tensor, frame1: torch.Tensor, f01: torch.Tensor, f10: torch.Tensor, t: torch.Tensor,
               asymmetry: float = 0.0, dilation: int = 0, selection: float = 0.0, sharpness: float = 0.0,
               more: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[Interpolation, RestorationInputs]:
    """flow-asb's frame at ``t`` from given flows (steps 2-5 of the module docstring).

    Args:
        frame0, frame1: ``(B,3,H,W)`` in [0,1].
        f01, f10: ``(B,2,H,W)`` flows in pixels.
        t: ``(B,)`` times.
        asymmetry, dilation, selection, sharpness: as the declared parameters.
        more: another estimate ``(F01, F10)`` (e.g. RAFT's flows before DIS refined them): its two
            hypotheses join the two of ``f01``, ``f10``.
    Returns:
        The :class:`Interpolation` (float32, not clamped) and what the detail-restoration stage
        takes (:class:`~vfi_core.models.refine.RestorationInputs`: both frames warped to t and
        the blend weight, combined over the motion hypotheses as the frame is).
    """
    # splatting sums many contributions and a half-precision sampling grid is off by a fraction
    # of a pixel: warping and blending stay float32 under half precision
    frame0, frame1, t = frame0.float(), frame1.float(), t.float()
    tt = t.view(-1, 1, 1, 1)
    to0, to1, occluded0, occluded1 = [], [], [], []
    for g01, g10 in [(f01, f10)] + ([] if more is None else [more]):
        g01, g10 = g01.float(), g10.float()
        check_cancelled()
        motion, cov0, cov1 = splatted_motion(frame0, frame1, g01, g10, t, CONSISTENCY_WEIGHT)
        # backward flows from t to frames 0 and 1: splatted motion, then the linear approximation
        linear = linear_motion(g01, g10, t)
        to0 += [-tt * motion, linear[:, :2]]
        to1 += [(1 - tt) * motion, linear[:, 2:]]
        occluded0 += [(cov0 < OCCLUSION_THRESHOLD).to(frame0.dtype)] * 2
        occluded1 += [(cov1 < OCCLUSION_THRESHOLD).to(frame0.dtype)] * 2
    n = len(to0)
    to0, to1, occluded0, occluded1 = (torch.cat(x) for x in (to0, to1, occluded0, occluded1))
    check_cancelled()
    warped0 = backward_warp(frame0.repeat(n, 1, 1, 1), to0)
    warped1 = backward_warp(frame1.repeat(n, 1, 1, 1), to1)
    check_cancelled()
    weight1, mask0, mask1 = occlusion_weight(t.repeat(n), to0, to1, occluded0, occluded1, asymmetry, dilation)
    blended = warped0 * (1.0 - weight1) + warped1 * weight1
    share = hypothesis_shares(warped0, warped1, mask0, mask1, selection, hypotheses=n)

    def mean(x: torch.Tensor) -> torch.Tensor:  # over the hypotheses
        x = x.view(n, -1, *x.shape[1:])
        return x.mean(0) if share is None else (x * share).sum(0)

    frame = mean(blended)
    disagreement = mean((warped0 - warped1).abs().mean(1, keepdim=True))
    if sharpness > 0:  # occlusions count as disagreement: the motion is unsure there
        blur = mean(sampling_blur(to0) * (1.0 - weight1) + sampling_blur(to1) * weight1)
        frame = restore_sampling_detail(frame, blur, disagreement, sharpness)
    occluded0, occluded1 = occluded0[: len(t)], occluded1[: len(t)]  # the first estimate's
    seen_by_neither = occluded0 * occluded1
    confidence = (1.0 - 4.0 * disagreement).clamp(0, 1) * (1.0 - seen_by_neither)
    # where one frame is occluded, the disagreement is expected and says nothing
    confidence = torch.maximum(confidence, torch.maximum(mask0[: len(t)], mask1[: len(t)]) * (1.0 - seen_by_neither))
    inputs = RestorationInputs(mean(warped0), mean(warped1), frame, mean(weight1), confidence)
    return Interpolation(frame, confidence), inputs


register(FlowASB.descriptor, FlowASB)
