"""``svmv``: spatiotemporal variance-aware motion volumes (after the SVMV poster: motion volumes
with spatiotemporal variance-aware supervision), sized for CPU inference.

Pipeline, for an output time ``t`` between ``I0`` and ``I1`` (``I-1`` and ``I2`` optional):

1. Motion prior: bidirectional DIS flow ``F01``, ``F10`` (:class:`~vfi_core.ops.flow.DISFlow`, refined
   down to the finest pyramid level) on the frames downscaled so that their longer side is at most
   ``dis_max_side``, started from the frames' dominant translation (``dis_global_motion``,
   :func:`~vfi_core.ops.flow.global_shift`: DIS alone loses fast camera pans over fine texture);
   at inference the ``motion`` parameter starts DIS from RAFT's flow instead (:mod:`vfi_core.flow`,
   the default where the RAFT weights are installed: +0.34 dB on gap-2 and +0.26 dB on gap-1
   windows of training-allowed DAVIS video, docs/results.md). The prior is
   turned into two hypotheses of the backward flows from t (``base_motion``
   "splat-linear", as flow-asb): the flow reversed by softmax splatting
   (:func:`~vfi_core.ops.motion.splatted_motion`) and Super SloMo's linear approximation
   (:func:`~vfi_core.ops.motion.linear_motion`). With RAFT's start, ``raft_hypotheses`` (off by
   default) keeps RAFT's own flow as a second prior with two hypotheses of its own: DIS's refinement
   makes the flow photometrically precise but sometimes locks onto the wrong match (repeated texture,
   fast non-rigid motion), where RAFT's smoother flow is right; half of the members start from each
   prior and ``selection`` weighs them per pixel. Higher PSNR, softer frames (docs/results.md).
   The network only learns residuals around the hypotheses, and at every level the prior is
   resized afresh, so detail finer than the network's coarse levels survives (small motion stays as
   precise as DIS gives it). Learned capacity goes to residual motion, occlusion and blending, not
   to relearning motion: untrained (zero heads), the network is flow-asb's two-hypothesis ensemble
   without its occlusion masks.
2. Motion-volume construction: one shared encoder (the same convolutions for every input frame:
   shared spatiotemporal features) gives features at 1/4, 1/8 and 1/16 of the input size; a
   decoder, coarse to fine, refines ``F_t0``/``F_t1`` (a residual added to the mean hypothesis) from
   the features of ``I-1`` and ``I2``, those of ``I0``/``I1`` warped to t, the current flows and t. At 1/4 it also emits the motion volume:
   ``M_max`` offset approximations per pixel towards each of ``I0`` and ``I1`` (residuals around the
   refined flows; member ``k`` starts from hypothesis ``k mod n`` of the ``n`` = 2 or 4) and a
   weight logit for each.
3. Synthesis: the offsets and logits are upsampled to full size; each output pixel is the
   softmax-weighted sum of ``2M`` bilinear samples (``M`` from ``I0``, ``M`` from ``I1``). ``M`` (the
   ``ensemble`` parameter) selects the first ``M`` members; training draws ``M`` at random in the
   trained range so that every prefix is a valid ensemble. ``selection`` (default 0.5; 0 keeps the
   learned weights) scales each member's weight per pixel by how well its two samples agree (its
   motion is right there): sharper frames for little or no PSNR
   (:func:`~vfi_core.ops.motion.agreement_weights`). ``sharpness`` (default 0.5; 0 leaves
   the blend as it is) undoes, where the members' two samples agree, the blur that bilinear sampling
   at fractional positions adds (:func:`~vfi_core.ops.motion.restore_sampling_detail`).
4. Confidence: ``exp(-std / confidence_scale)`` of the weighted standard deviation of the ``2M``
   samples (the ensemble's colour variance): 1 where the members agree, low where they diverge
   (occlusion, uncertain motion).

Two-frame input (pairs, clip ends): ``I-1`` and ``I2`` are replaced by ``I0`` and ``I1``, as a clip
end replicates its edge frame; training does the same at random so that both inputs are trained.

Compute: the network runs on the frames halved (the encoder's first level is 1/4 of the input
size), so at 1280x720 the convolutions cost about 8 GFLOP; only the final sampling is full size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ...config import ModelConfig
from ...cancellation import check_cancelled
from ...errors import InputError
from ...frames import as_time_tensor, check_frame_pair, crop_to, pad_to_multiple
from ...interpolator import Interpolation, Interpolator
from ...flow import MotionEstimator, PairFlows, capped_flows, motion_param, raft_hypotheses_param
from ...ops.flow import DIS_PRESETS, capped_dis, capped_size
from ...ops.motion import (agreement_weights, linear_motion, restore_sampling_detail, sampling_blur,
                           selection_param, sharpness_param, splatted_motion)
from ...ops.warp import backward_warp, outside_frame, resize_flow
from ...registry import ModelDescriptor, Param, register
from ..refine import DetailRestorer, RefineNet, RestorationInputs, add_cost, refine_param
from .loss import SVMVLoss, SVMVLossWeights

BASE_MOTIONS = ("linear", "splat-linear")
# Per-clip adaptation (vfi_core.adapt): low-rank adapters on the decoder and its heads (the shared
# encoder stays as trained), learning from 7-frame windows of the clip: I-1, I0, I1, I2 are its frames
# 0, 2, 4, 6 and frame 3 the target at t = 0.5. Its known frames lie twice as far apart as the ones
# it will interpolate, so the windows are cut from the clip at half size (ADAPT_SCALE): the motion the
# model learns from then has the size in pixels of the motion it meets (at full size, adaptation at
# the default rate learnt the doubled motion and cost 3.2 dB on a 21-frame DAVIS clip, docs/results.md).
ADAPTER_TARGETS = ("decoders", "heads")
ADAPT_SPAN = 7
ADAPT_SCALE = 0.5
ADAPT_TWO_FRAME = 0.25  # share of adaptation batches given as two-frame input (a clip's ends)
ADAPT_TERMS = {"spatial_variance": 0.0, "temporal_variance": 0.0, "flow": 0.0}  # the shipped training terms
ENSEMBLE_RANGE = (1, 8)  # the M range the architecture is trained for (random M per step)


@dataclass(frozen=True)
class SVMVConfig(ModelConfig):
    """Architecture of :class:`SVMVNet` (saved in the model card as ``architecture.config``).

    Args:
        encoder_widths: channels of the shared encoder at 1/4, 1/8, 1/16 of the input size.
        decoder_widths: channels of the decoder blocks at 1/4, 1/8, 1/16.
        decoder_depths: 3x3 convolutions per decoder block at 1/4, 1/8, 1/16 (each at least 2).
        ensemble_max: ``M_max``, offset approximations per pixel and per frame.
        flow_prior: "dis" (classical DIS flow as initial motion) or "none" (learned from zero).
        dis_preset: DIS preset of the prior (refined to full resolution of the resized frames).
        dis_max_side: the prior is computed on the frames downscaled to this longer side (never upscaled).
        dis_global_motion: start DIS from the frames' dominant translation (a camera pan) instead of
            zero (:func:`~vfi_core.ops.flow.global_shift`).
        base_motion: the motion the network refines: "linear" (Super SloMo's approximation from the
            prior flows) or "splat-linear" (two hypotheses, as flow-asb: the flow reversed by softmax
            splatting, and the linear approximation; ensemble members alternate between them and the
            decoder refines around their mean).
        member_spread: initial distance in pixels of the ensemble members from their hypothesis
            (breaks their symmetry; small, or the untrained ensemble blurs).
        confidence_scale: colour standard deviation at which confidence falls to 1/e.
        hidden: channels of the state passed from one decoder level to the next finer one.
    """

    config_name = "svmv"  # names the model in config errors (not a field: no annotation)

    encoder_widths: tuple[int, int, int] = (12, 24, 48)
    decoder_widths: tuple[int, int, int] = (24, 40, 64)
    decoder_depths: tuple[int, int, int] = (2, 3, 3)
    ensemble_max: int = ENSEMBLE_RANGE[1]
    flow_prior: str = "dis"
    dis_preset: str = "medium"
    dis_max_side: int = 640
    dis_global_motion: bool = True
    confidence_scale: float = 0.05
    hidden: int = 8
    base_motion: str = "splat-linear"
    member_spread: float = 0.1

    def __post_init__(self):
        if not len(self.encoder_widths) == len(self.decoder_widths) == len(self.decoder_depths) == 3:
            raise InputError("svmv config: encoder_widths, decoder_widths and decoder_depths need 3 entries "
                             "(1/4, 1/8, 1/16)")
        if min(*self.encoder_widths, *self.decoder_widths) < 1 or min(self.decoder_depths) < 2:
            raise InputError("svmv config: widths must be positive and decoder_depths at least 2")
        if not 1 <= self.ensemble_max <= 32:
            raise InputError(f"svmv config: ensemble_max must lie in [1, 32], got {self.ensemble_max}")
        if self.flow_prior not in ("dis", "none"):
            raise InputError(f"svmv config: flow_prior must be 'dis' or 'none', got {self.flow_prior!r}")
        if self.dis_preset not in DIS_PRESETS:
            raise InputError(f"svmv config: dis_preset must be one of {DIS_PRESETS}, got {self.dis_preset!r}")
        if self.base_motion not in BASE_MOTIONS:
            raise InputError(f"svmv config: base_motion must be one of {BASE_MOTIONS}, got {self.base_motion!r}")
        if self.member_spread < 0:
            raise InputError(f"svmv config: member_spread must be >= 0, got {self.member_spread}")
        if self.dis_max_side < 16 or self.confidence_scale <= 0:
            raise InputError("svmv config: dis_max_side must be at least 16 and confidence_scale positive")


class SVMVOutput(NamedTuple):
    """What :meth:`SVMVNet.forward` returns (all float, full input size ``H, W``).

    frame: ``(B,3,H,W)`` the synthesised frame (not clamped).
    confidence: ``(B,1,H,W)`` in (0, 1].
    offsets: ``(B,2,M,2,H,W)`` backward offsets in pixels from each output pixel to frame ``I0``
        (index 0) and ``I1`` (index 1), member ``m``, (x, y).
    weights: ``(B,2,M,1,H,W)`` softmax weights over the ``2M`` samples (they sum to 1 per pixel).
    samples: ``(B,2,M,3,H,W)`` ``I0``/``I1`` sampled at the offsets.
    """

    frame: torch.Tensor
    confidence: torch.Tensor
    offsets: torch.Tensor
    weights: torch.Tensor
    samples: torch.Tensor


def dis_prior(frame0: torch.Tensor, frame1: torch.Tensor, config: SVMVConfig) -> torch.Tensor:
    """``(B,4,h,w)`` DIS flows ``F01, F10`` in pixels of the :func:`~vfi_core.ops.flow.capped_size`
    grid for ``config.dis_max_side`` (zeros when ``config.flow_prior`` is "none"). Runs on the CPU
    (OpenCV); training computes it in the data workers.
    """
    if config.flow_prior == "none":
        return frame0.new_zeros(frame0.shape[0], 4, *capped_size(*frame0.shape[-2:], config.dis_max_side))
    return capped_dis(frame0, frame1, config.dis_preset, config.dis_max_side,
                      config.dis_global_motion).to(frame0.dtype)


def repeats_outer_frames(frames: torch.Tensor) -> bool:
    """True when a ``(B,4,3,H,W)`` stack is two-frame input: ``I-1 == I0`` and ``I2 == I1`` everywhere."""
    return torch.equal(frames[:, 0], frames[:, 1]) and torch.equal(frames[:, 3], frames[:, 2])


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.1, inplace=True))


def _sample_members(frames: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of ``frames`` ``(B,2,3,H,W)`` at ``p + offsets`` ``(B,2,M,2,H,W)`` (edges
    replicated, as :func:`~vfi_core.ops.warp.backward_warp`), in the layout ``(B,2,3,M,H,W)``.

    The ``M`` members are stacked along the sampling grid's height, so every frame is read in place
    (no ``M``-fold copy of the input).
    """
    b, _, m, _, h, w = offsets.shape
    ax, ay = 2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)
    base_x = torch.arange(w, device=offsets.device, dtype=offsets.dtype).view(1, w) * ax - 1.0
    base_y = torch.arange(h, device=offsets.device, dtype=offsets.dtype).view(h, 1) * ay - 1.0
    grid = torch.stack((torch.add(base_x, offsets[:, :, :, 0], alpha=ax),
                        torch.add(base_y, offsets[:, :, :, 1], alpha=ay)), -1)
    out = F.grid_sample(frames.reshape(b * 2, 3, h, w), grid.view(b * 2, m * h, w, 2).to(frames.dtype),
                        mode="bilinear", padding_mode="border", align_corners=True)
    return out.view(b, 2, 3, m, h, w)


class SVMVNet(nn.Module):
    """The trainable SVMV network (see the module docstring).

    Args:
        config: an :class:`SVMVConfig` (or a dict for :meth:`SVMVConfig.from_dict`).
    """

    def __init__(self, config: SVMVConfig | dict | None = None):
        super().__init__()
        config = SVMVConfig.coerce(config)
        self.config = config
        e1, e2, e3 = config.encoder_widths
        self.encoder = nn.ModuleList([
            nn.Sequential(_conv(3, e1, 2), _conv(e1, e1)),
            nn.Sequential(_conv(e1, e2, 2), _conv(e2, e2)),
            nn.Sequential(_conv(e2, e3, 2), _conv(e3, e3)),
        ])
        m = config.ensemble_max
        self.decoders = nn.ModuleList()
        self.heads = nn.ModuleList()
        for level, (enc, dec, depth) in enumerate(zip(config.encoder_widths, config.decoder_widths,
                                                      config.decoder_depths)):
            finest, coarsest = level == 0, level == 2
            # at 1/4 only I0 and I1 (warped) enter: the outer frames inform the coarser motion
            cin = (2 if finest else 4) * enc + 4 + 1 + (0 if coarsest else config.hidden)
            layers = [_conv(cin, dec)] + [_conv(dec, dec) for _ in range(depth - 1)]
            self.decoders.append(nn.Sequential(*layers))
            # flow residuals (4) + hidden state for the next level, or, at 1/4, the motion volume
            cout = 4 + (4 * m + 2 * m if finest else config.hidden)
            self.heads.append(nn.Conv2d(dec, cout, 3, 1, 1))
        for head in self.heads:
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        # members start on a ring of member_spread pixels (a quarter of it on the 1/4 grid) around the flow
        with torch.no_grad():
            angles = torch.arange(m, dtype=torch.float32) * (2 * math.pi / max(m, 1))
            ring = config.member_spread / 4 * torch.stack((angles.cos(), angles.sin()), 1) * (m > 1)
            bias = self.heads[0].bias
            bias[4:4 + 2 * m] = ring.flatten()
            bias[4 + 2 * m:4 + 4 * m] = -ring.flatten()

    def prior(self, frame0: torch.Tensor, frame1: torch.Tensor) -> torch.Tensor:
        """The motion prior of this network's config (:func:`dis_prior`)."""
        return dis_prior(frame0, frame1, self.config)

    def motion_hypotheses(self, frame0: torch.Tensor, frame1: torch.Tensor, prior: torch.Tensor,
                          t: torch.Tensor) -> torch.Tensor:
        """``(B,kn,4,h,w)`` backward flows ``F_t0, F_t1`` from t on the prior's grid: for each of the
        ``k`` flow estimates in the ``(B,4k,h,w)`` prior, one per hypothesis of ``config.base_motion``
        (``n`` of them, see :class:`SVMVConfig`), estimate by estimate."""
        if prior.shape[1] % 4:
            raise InputError(f"svmv: the prior must hold 4 channels per flow estimate (F01, F10), got "
                             f"{prior.shape[1]}")
        estimates = prior.split(4, 1)
        if self.config.base_motion == "linear":
            return torch.stack([linear_motion(*flows.split(2, 1), t) for flows in estimates], 1)
        size = prior.shape[-2:]
        pair = torch.cat((frame0, frame1)).float()
        if pair.shape[-2:] != size:
            pair = F.interpolate(pair, size=size, mode="area")
        b = frame0.shape[0]
        tt = t.float().view(b, 1, 1, 1)
        hypotheses = []
        for flows in estimates:
            f01, f10 = flows.split(2, 1)
            # splatting sums many contributions per pixel: float32 even under autocast
            motion, _, _ = splatted_motion(pair[:b], pair[b:], f01.float(), f10.float(), t.float())
            hypotheses += [torch.cat((-tt * motion, (1 - tt) * motion), 1).to(prior.dtype),
                           linear_motion(f01, f10, t)]
        return torch.stack(hypotheses, 1)

    @staticmethod
    def check_inputs(frames: torch.Tensor, t: torch.Tensor) -> None:
        """Raise :class:`InputError` unless ``frames`` is ``(B,4,3,H,W)`` float with H, W divisible
        by 16 and ``t`` is ``(B,)``."""
        if frames.ndim != 5 or frames.shape[1:3] != (4, 3) or not frames.is_floating_point():
            raise InputError(f"svmv: frames must be a float (B,4,3,H,W) stack [I-1, I0, I1, I2], got "
                             f"{tuple(frames.shape)} {frames.dtype}")
        if frames.shape[-1] % 16 or frames.shape[-2] % 16:
            raise InputError(f"svmv: H and W must divide by 16, got {frames.shape[-1]}x{frames.shape[-2]}")
        if t.shape != frames.shape[:1]:
            raise InputError(f"svmv: t must have shape ({frames.shape[0]},), got {tuple(t.shape)}")

    def forward(self, frames: torch.Tensor, t: torch.Tensor, ensemble: int | None = None,
                prior: torch.Tensor | None = None, selection: float = 0.0, sharpness: float = 0.0) -> SVMVOutput:
        """Synthesise frames at times ``t``.

        Args:
            frames: ``(B,4,3,H,W)`` float in [0,1]: ``I-1, I0, I1, I2`` (repeat ``I0``/``I1`` for
                two-frame input); H and W divisible by 16.
            t: ``(B,)`` float in [0,1].
            ensemble: ``M`` in ``[1, ensemble_max]`` (default ``ensemble_max``).
            prior: precomputed ``(B,4,h,w)`` flows ``F01, F10`` (as :func:`dis_prior` returns, any
                grid size); computed here when ``None``. ``(B,4k,h,w)``: k estimates of them; the
                decoder refines around the first, and the members start from the hypotheses of all
                (member ``j`` from hypothesis ``j mod 2k``).
            selection: in [0,1]: 0 keeps the learned member weights; above 0 each member's weight
                is scaled per pixel by how well its samples of the two frames agree
                (:func:`~vfi_core.ops.motion.agreement_weights`) and renormalised.
            sharpness: in [0,1]: 0 keeps the blend of the bilinear samples; above 0 the blur of that
                sampling is undone where the members' two samples agree
                (:func:`~vfi_core.ops.motion.restore_sampling_detail`).
        Returns:
            :class:`SVMVOutput`.
        """
        self.check_inputs(frames, t)
        m_max = self.config.ensemble_max
        m = m_max if ensemble is None else int(ensemble)
        if not 1 <= m <= m_max:
            raise InputError(f"svmv: ensemble must lie in [1, {m_max}], got {m}")
        b, _, _, h, w = frames.shape
        dtype = frames.dtype
        if prior is None:
            prior = self.prior(frames[:, 1], frames[:, 2])
        # shared encoder over the 4 frames at half size; two-frame input repeats I0 and I1 as the
        # outer frames, so then only those two are encoded
        check_cancelled()
        pair_only = repeats_outer_frames(frames)
        distinct = frames[:, 1:3] if pair_only else frames
        x = F.avg_pool2d(distinct.flatten(0, 1), 2)
        feats = []
        for block in self.encoder:
            x = block(x)
            f = x.view(b, distinct.shape[1], *x.shape[1:])
            feats.append(f[:, [0, 0, 1, 1]] if pair_only else f)
        tt = t.to(dtype).view(b, 1, 1, 1)
        check_cancelled()
        hypotheses = self.motion_hypotheses(frames[:, 1], frames[:, 2], prior.to(dtype), t)  # (B,kn,4,h',w')
        # the decoder refines around the mean hypothesis of the first estimate; members start from all
        per_estimate = hypotheses.shape[1] // (prior.shape[1] // 4)
        base = hypotheses[:, :per_estimate].mean(1)
        residual = hidden = None
        for level in (2, 1, 0):
            check_cancelled()
            f = feats[level]
            size = f.shape[-2:]
            if residual is None:
                residual = base.new_zeros(b, 4, *size)
            else:
                residual = resize_flow(residual, size)
                hidden = F.interpolate(hidden, size=size, mode="bilinear", align_corners=False)
            flow = resize_flow(base, size) + residual
            warped = [backward_warp(f[:, 1], flow[:, :2]), backward_warp(f[:, 2], flow[:, 2:])]
            parts = warped if level == 0 else [f[:, 0], *warped, f[:, 3]]
            parts += [flow * 0.25, tt.expand(b, 1, *size)]
            if hidden is not None:
                parts.append(hidden)
            out = self.heads[level](self.decoders[level](torch.cat(parts, 1)))
            residual = residual + out[:, :4]
            hidden = out[:, 4:]
        # motion volume at 1/4: member residuals, upsampled to full size and added to the motion
        # hypotheses resized to full size (their detail is not limited by the 1/4 grid)
        check_cancelled()
        h4, w4 = hidden.shape[-2:]
        deltas = hidden[:, :4 * m_max].view(b, 2, m_max, 2, h4, w4)[:, :, :m]
        members = residual.view(b, 2, 1, 2, h4, w4) + deltas
        logits = hidden[:, 4 * m_max:].view(b, 2, m_max, h4, w4)[:, :, :m]
        prior_logit = torch.log(torch.cat((1 - tt, tt), 1).clamp_min(1e-4)).view(b, 2, 1, 1, 1)
        # weights are a softmax at 1/4 size, upsampled: bilinear upsampling keeps them convex
        weights = torch.softmax((logits + prior_logit).reshape(b, 2 * m, h4, w4), 1)
        weights = F.interpolate(weights, size=(h, w), mode="bilinear", align_corners=False).view(b, 2, 1, m, h, w)
        # member k starts from hypothesis k mod n
        n = hypotheses.shape[1]
        full = resize_flow(hypotheses.flatten(1, 2), (h, w)).view(b, n, 2, 2, h, w)
        starts = full[:, torch.arange(m, device=full.device) % n].transpose(1, 2)  # (B,2,M,2,H,W)
        offsets = resize_flow(members.reshape(b, 4 * m, h4, w4), (h, w)).view(b, 2, m, 2, h, w) + starts
        # a member sampling outside its frame sees nothing there (content out of view): its weight
        # goes to the members in view; where none is, the weights stay
        in_view = 1 - outside_frame(offsets.reshape(b * 2 * m, 2, h, w)).view(b, 2, 1, m, h, w)
        kept = weights * in_view
        total = kept.sum((1, 3), keepdim=True)
        weights = torch.where(total > 1e-3, kept / total.clamp_min(1e-3), weights)
        check_cancelled()
        samples = _sample_members(frames[:, 1:3], offsets)  # (B,2,3,M,H,W)
        difference = sample_difference(samples) if selection > 0 or sharpness > 0 else None
        if selection > 0:
            weights = select_members(weights, member_disagreement(weights, difference), selection)
        frame, second = _weighted_moments(weights, samples)
        variance = (second - frame * frame).mean(1, keepdim=True)
        confidence = torch.exp(-variance.clamp_min(0).sqrt() / self.config.confidence_scale)
        if sharpness > 0:
            # each member's own two samples disagree where its motion is unsure, occlusions included
            unsure = (difference * weights.sum(1)).sum(2)
            blur = sampling_blur(offsets).mul_(weights.transpose(2, 3)).sum((1, 2))
            frame = restore_sampling_detail(frame, blur, unsure, sharpness)
        return SVMVOutput(frame, confidence, offsets, weights.transpose(2, 3), samples.transpose(2, 3))


def _weighted_moments(weights: torch.Tensor, samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B,3,H,W)`` weighted sums of the samples ``(B,2,3,M,H,W)`` and of their squares, with weights
    ``(B,2,1,M,H,W)``."""
    # accumulated sample by sample: a quarter of the time of the (B,2,3,M,H,W) products and their sums
    frame = second = None
    for k in range(samples.shape[1]):
        for m in range(samples.shape[3]):
            sample = samples[:, k, :, m]
            part = weights[:, k, :, m] * sample
            if frame is None:
                frame, second = part, part * sample
            else:
                frame = frame + part
                second = torch.addcmul(second, part, sample)
    return frame, second


def sample_difference(samples: torch.Tensor) -> torch.Tensor:
    """``(B,1,M,H,W)``: the mean absolute difference over colour of each member's samples
    ``(B,2,3,M,H,W)`` of frame 0 and of frame 1."""
    # channel by channel, in place: three times faster than one (B,3,M,H,W) difference and its mean
    total = (samples[:, 0, 0] - samples[:, 1, 0]).abs_()
    for c in range(1, samples.shape[2]):
        total.add_((samples[:, 0, c] - samples[:, 1, c]).abs_())
    return total.div_(samples.shape[2]).unsqueeze(1)


def member_disagreement(weights: torch.Tensor, difference: torch.Tensor) -> torch.Tensor:
    """How much each member's two samples disagree where both frames weigh.

    Args:
        weights: ``(B,2,1,M,H,W)`` weights of the ``2M`` samples (frame, member).
        difference: ``(B,1,M,H,W)`` :func:`sample_difference` of the samples.
    Returns:
        ``(B,1,M,H,W)``: the mean absolute difference of the two samples, scaled down to 0 where
        one frame dominates the member's weight (an occlusion, where the difference says nothing).
    """
    w0, w1 = weights[:, 0], weights[:, 1]  # (B,1,M,H,W)
    both = torch.mul(w0, w1).mul_(4).div_(torch.add(w0, w1).square_().clamp_min_(1e-12))
    return both.mul_(difference)


def select_members(weights: torch.Tensor, disagreement: torch.Tensor, selection: float) -> torch.Tensor:
    """Member weights rescaled per pixel by how well each member's two samples agree.

    Args:
        weights: ``(B,2,1,M,H,W)`` weights of the ``2M`` samples (frame, member), summing to 1.
        disagreement: ``(B,1,M,H,W)`` from :func:`member_disagreement` (a member whose samples
            disagree follows the wrong motion).
        selection: the declared parameter, in [0,1]; 0 returns ``weights`` unchanged.
    Returns:
        ``(B,2,1,M,H,W)`` weights, summing to 1 over frames and members.
    """
    if selection <= 0:
        return weights
    weights = weights * agreement_weights(disagreement, selection, dim=2).unsqueeze(1)
    return weights / weights.sum((1, 3), keepdim=True).clamp_min(1e-12)


def restoration_inputs(out: SVMVOutput) -> RestorationInputs:
    """What the detail-restoration stage takes from an :class:`SVMVOutput`: each input frame's
    samples averaged with their weights (the frame warped to t), and frame 1's share of the weights."""
    share = out.weights.sum(2)  # (B,2,1,H,W): each frame's share of the blend
    warped = (out.weights * out.samples).sum(2) / share.clamp_min(1e-6)
    return RestorationInputs(warped[:, 0], warped[:, 1], out.frame, share[:, 1].clamp(0, 1), out.confidence)


def augment_prior(prior: torch.Tensor, flip: torch.Tensor, reverse: torch.Tensor) -> torch.Tensor:
    """Flows ``F01, F10`` ``(B,4,h,w)`` of frames mirrored left-right where ``flip`` ``(B,)`` is true
    (the fields mirrored, their x components negated) and swapped in time where ``reverse`` is."""
    sign = prior.new_tensor([-1.0, 1.0, -1.0, 1.0]).view(1, 4, 1, 1)
    prior = torch.where(flip.view(-1, 1, 1, 1), prior.flip(-1) * sign, prior)
    return torch.where(reverse.view(-1, 1, 1, 1), prior[:, [2, 3, 0, 1]], prior)


def stack_frames(frame0: torch.Tensor, frame1: torch.Tensor, frame_prev: torch.Tensor | None = None,
                 frame_next: torch.Tensor | None = None) -> torch.Tensor:
    """``(B,4,3,H,W)`` stack ``[I-1, I0, I1, I2]``; a missing outer frame repeats its neighbour."""
    prev = frame0 if frame_prev is None else frame_prev
    nxt = frame1 if frame_next is None else frame_next
    return torch.stack((prev, frame0, frame1, nxt), 1)


def load_network(weights, device: torch.device, dtype: torch.dtype) -> SVMVNet:
    """Build :class:`SVMVNet` from a weight file and the ``architecture.config`` of its model card."""
    from ...weights import load_network as load

    return load(weights, SVMVNet, SVMVConfig, device, dtype)


def _adaptation_scale(frame: torch.Tensor) -> torch.Tensor:
    """A ``(1,3,H,W)`` frame of the clip at the adaptation windows' scale (:data:`ADAPT_SCALE`)."""
    return F.interpolate(frame, scale_factor=ADAPT_SCALE, mode="bilinear", align_corners=False, antialias=True)


class SVMV(Interpolator):
    descriptor = ModelDescriptor(
        name="svmv",
        summary="Learned motion volumes (SVMV): DIS prior, ensembles of M offsets per pixel, variance-based confidence.",
        arbitrary_t=True,
        size_multiple=16,
        supports_half=True,   # the motion estimator (RAFT) in half precision, the network float32
        weight_file="svmv.safetensors",
        recipe="vfi_core.models.svmv.recipe:SVMVRecipe",
        gives_confidence=True,
        adaptable=True,
        seconds_per_megapixel={"cpu": 5.0, "cuda": 0.04},  # one CPU core (854x480), one H200 (1080p)
        params=(
            motion_param(),
            # off: on training-allowed windows +0.15 to +0.18 dB, but a 5-36% higher perceptual distance
            # (docs/results.md, "RAFT's own flow as hypotheses")
            raft_hypotheses_param(),
            Param("ensemble", int, 4, "Offset approximations per pixel and frame (M), averaged: 1 takes one "
                  "motion hypothesis (sharp, lower PSNR; selection=1 is sharper for more PSNR), 2 and more "
                  "combine two (higher PSNR, slower).", min=ENSEMBLE_RANGE[0], max=ENSEMBLE_RANGE[1], step=1),
            # 0.5: on training-allowed windows -0.01 to -0.05 dB for 5-7% lower perceptual distance
            # (docs/results.md, "Sharpness")
            selection_param(0.5),
            # 0.5: on training-allowed windows -0.02 to +0.02 dB for 5-12% lower perceptual distance, at
            # the cost of a few elementwise operations (docs/results.md, "Sharpness")
            sharpness_param(0.5),
            refine_param(),
            Param("adapt_sharpness", float, 30.0, "Adaptation: weight of the price on blur (the detail each "
                  "frame lacks against the clip's own frame). On uncertain motion the reconstruction terms "
                  "alone teach the adapters to blur; 0 adapts on them alone.",
                  min=0.0, max=100.0, step=1.0, group="adapt"),
        ),
    )

    def __init__(self, *, network: SVMVNet | None = None, refiner: RefineNet | None = None, **kwargs):
        super().__init__(**kwargs)
        self._restorer = DetailRestorer(self.device, refiner, search_dirs=self.weight_dirs)
        if network is None:
            network = load_network(self.weights, self.device, torch.float32)
        # under half precision only the motion estimator (RAFT) runs in float16: this network is
        # small, and its warps need float32 sampling grids
        self.network = network.to(device=self.device, dtype=torch.float32).eval()
        self._flows = PairFlows()
        if self.params["ensemble"] > network.config.ensemble_max:
            raise InputError(f"svmv: ensemble {self.params['ensemble']} exceeds the weights' "
                             f"ensemble_max {network.config.ensemble_max}")

    def seconds_per_megapixel(self) -> float | None:
        return add_cost(super().seconds_per_megapixel(),
                        self._restorer.added_seconds_per_megapixel(self.device.type, self.params["refine"]))

    def _interpolate(self, frame0, frame1, t) -> Interpolation:
        return self._run(stack_frames(frame0, frame1), t)

    def adaptation(self):
        """Per-clip adaptation of the decoder and heads (see :data:`ADAPTER_TARGETS`)."""
        from ...adapt import Adaptation

        loss = SVMVLoss(SVMVLossWeights(**ADAPT_TERMS, sharpness=self.params["adapt_sharpness"]))
        return Adaptation(self.network, ADAPTER_TARGETS, ADAPT_SPAN, partial(self._window_loss, loss),
                          self._on_network, prepare=self._window_prior, augment=augment_prior,
                          resize=_adaptation_scale)

    def _on_network(self, network: SVMVNet) -> "SVMV":
        return self.on_network(network, refiner=self._restorer.network)

    def _window_prior(self, runs: torch.Tensor) -> torch.Tensor | None:
        """``(B,4,h,w)`` the prior between frames 2 and 4 of each window ``(B,7,3,h,w)`` from the
        ``motion`` parameter's estimator, as at inference."""
        cfg = self.network.config
        if cfg.flow_prior == "none":
            return runs.new_zeros(runs.shape[0], 4, *capped_size(*runs.shape[-2:], cfg.dis_max_side))
        return capped_flows(runs[:, 2], runs[:, 4], self._estimator(), cfg.dis_max_side).float()

    def _window_loss(self, loss: SVMVLoss, network: SVMVNet, runs: torch.Tensor, prior: torch.Tensor, rng,
                     progress: float = 0.0) -> torch.Tensor:
        """``loss`` (the shipped training terms, reconstruction and census, and the sharpness term at
        ``adapt_sharpness``) of frame 3 of each window ``(B,7,3,h,w)`` from frames 0, 2, 4, 6 at
        t = 0.5, given their ``prior`` (no curriculum: ``progress`` is not used)."""
        frames = runs[:, [0, 2, 4, 6]]
        if rng.random() < ADAPT_TWO_FRAME:
            frames = stack_frames(runs[:, 2], runs[:, 4])
        t = runs.new_full((runs.shape[0],), 0.5)
        out = network(frames, t, ensemble=self.params["ensemble"], prior=prior)
        total, _ = loss(out, {"gt": runs[:, 3]})
        return total

    def prior(self, frame0: torch.Tensor, frame1: torch.Tensor) -> torch.Tensor | None:
        """The network's motion prior from the ``motion`` parameter's estimator (on the config's
        ``dis_max_side`` grid, DIS settings from the config), kept for every t of the same pair;
        ``(B,8,h,w)`` with RAFT's own flows after the refined ones where ``raft_hypotheses`` is on and the
        estimator refines RAFT by DIS; ``None`` for weights trained without a prior."""
        cfg = self.network.config
        if cfg.flow_prior == "none":
            return None
        estimator = self._estimator()
        both = self.params["raft_hypotheses"]
        return self._flows.get(frame0, frame1, lambda: capped_flows(frame0, frame1, estimator, cfg.dis_max_side,
                                                                    with_start=both).to(frame0.dtype),
                               key=(estimator, both))

    def _estimator(self) -> MotionEstimator:
        """The ``motion`` parameter's estimator with the network's DIS settings."""
        cfg = self.network.config
        return MotionEstimator(self.params["motion"], cfg.dis_preset, 0, cfg.dis_global_motion)

    def _run(self, frames: torch.Tensor, t: torch.Tensor) -> Interpolation:
        prior = self.prior(frames[:, 1], frames[:, 2])
        out = self.network(frames.float(), t.float(), ensemble=self.params["ensemble"],
                           prior=None if prior is None else prior.float(), selection=self.params["selection"],
                           sharpness=self.params["sharpness"])
        frame = out.frame
        if self.params["refine"] > 0:
            frame = self._restorer(restoration_inputs(out), t.float(), self.params["refine"])
        return Interpolation(frame, out.confidence)

    @torch.inference_mode()
    def interpolate_four(self, frame_prev: torch.Tensor | None, frame0: torch.Tensor, frame1: torch.Tensor,
                         frame_next: torch.Tensor | None, t) -> Interpolation:
        """Interpolate between ``frame0`` and ``frame1`` using their neighbours ``I-1`` and ``I2`` too.

        Args:
            frame_prev, frame_next: ``(B,3,H,W)`` frames before ``frame0`` and after ``frame1`` at the
                same spacing, or ``None`` at a clip end (the end frame is repeated).
            frame0, frame1, t: as :meth:`interpolate`.
        Returns:
            :class:`Interpolation` with the ``(B,3,H,W)`` frame in [0,1] and ``(B,1,H,W)`` confidence.
        """
        check_frame_pair(frame0, frame1)
        if frame_prev is not None:
            check_frame_pair(frame_prev, frame0)
        if frame_next is not None:
            check_frame_pair(frame1, frame_next)
        t = as_time_tensor(t, frame0.shape[0], self.device)
        out_dtype, out_device = frame0.dtype, frame0.device
        padded = [None if x is None else pad_to_multiple(x.to(self.device, self.dtype), 16)[0]
                  for x in (frame_prev, frame0, frame1, frame_next)]
        result = self._run(stack_frames(padded[1], padded[2], padded[0], padded[3]), t)
        size = frame0.shape[-2:]
        return Interpolation(crop_to(result.frame, size).clamp(0, 1).to(out_device, out_dtype),
                             crop_to(result.confidence, size).clamp(0, 1).to(out_device, out_dtype))


register(SVMV.descriptor, SVMV)
