"""``pervfi``: perception-oriented interpolation by asymmetric blending and a normalizing-flow decoder
(after Wu et al., "Perception-Oriented Video Frame Interpolation via Asymmetric Blending", CVPR 2024),
sized for CPU inference.

Pipeline, for frames ``I0``, ``I1`` and a time ``t``:

1. Motion: bidirectional flow ``F01``, ``F10`` from the core's estimator (the ``motion`` parameter,
   :mod:`vfi_core.flow`: DIS, RAFT, or DIS started from RAFT, as the paper's frozen pretrained
   estimator) on the frames downscaled to ``dis_max_side`` at most, refined to full resolution of
   that grid; optionally corrected by a small learned residual refiner at 1/4 size trained jointly
   with the rest (``refine_motion``; config ``motion="learned"``; zero-initialised, so it starts as
   the estimate). Training computes DIS flows (:class:`DISMotion`).
2. Primary frame: PerVFI takes frame 0 as the primary (forward-warped) side and frame 1 as the
   complementary (aligned) side. Here the nearer frame is primary: an item with ``t > 1/2`` is run
   as ``(I1, I0, 1 - t)``. Below, ``A`` is the primary frame, ``B`` the other, ``t`` the time from A.
3. Asymmetric Synergistic Blending (sec. 3.1), on a 3-level feature pyramid at 1/2, 1/4, 1/8 of the
   input (one shared encoder for both frames):
   - importance metric (eq. 1): ``Z = v(f_A^0, -|f_A^0 - warp(f_B^0, F_AB)|)`` at 1/2 size, a small
     network; ``Z^l`` average-pooled; ``f_{t,A}^l`` = softmax splatting of ``f_A^l`` along
     ``t F_AB^l`` ranked by ``Z^l`` (eq. 2, :func:`~vfi_core.ops.warp.softmax_splat`);
   - Pyramid Alignment Module (eqs. 3-4): the prior ``-avg_splat(F_Bt, F_Bt)``, ``F_Bt = (1-t) F_BA``
     (holes filled by push-pull), initialises the alignment at the coarsest level; coarse to fine,
     each level refines the flow and predicts ``K`` sampling offsets around it with modulation
     (deformable convolution written with one ``grid_sample`` call: ``K`` bilinear samples per
     pixel, scaled by sigmoid masks, mixed by a 1x1 convolution; the offsets start on the 3x3
     kernel grid, the mixing as their mean); the refined flow goes up to the next finer level;
   - Adaptive Dilation Module (eqs. 5-8): binary occlusion ``M_b^l`` where the splatted ones map of
     ``A`` covers less than ``occlusion_threshold`` (the softmax splat's coverage); expanded by
     bias-free 7x7 (dilation 2), 3x3 (dilation 2), 1x1 convolutions (a 17x17 field, as the paper),
     scaled by squeeze-and-excitation attention over ``[f_{t,A}^l, f_{t,B}^l]``, projected by a
     bias-free 1x1 convolution; ``M~ = tanh(|M + alpha n| + beta M_b)``, ``n ~ U(-1, 1)`` only in
     training (``alpha = 1e-3``, ``beta = 2``). Bias-free layers keep the mask exactly 0 away from
     occlusions (sparse) and above ``tanh(2) = 0.96`` on them. ``mask_mode="adaptive"`` is the
     paper's Table 3 ablation row "Adaptive" (symmetric blending): the same layers with biases and
     ``M~ = sigmoid(M)``, unconstrained (it starts at 1/2 everywhere: an even blend);
   - blending (eq. 9): ``f_t^l = f_{t,A}^l (1 - M~^l) + f_{t,B}^l M~^l``.
4. Blended-warp estimate at full size: ``A`` softmax-splatted (``Z`` upsampled), ``B`` backward-warped
   by the refined alignment flow, blended by the upsampled level-0 mask (and by the full-size
   occlusion, so splatting holes always take ``B``), except where ``B``'s sample falls outside ``B``
   and ``A``'s content arrived: ``A`` alone there (flow-asb's out-of-view rule).
5. Conditional normalizing flow (sec. 3.2, :mod:`vfi_core.models.pervfi.flow`): 3 blocks of ``K``
   steps model the residual ``I_t - estimate`` given conditions built from ``f_t^l``, the estimate
   and the mask at each level (residual formulation: the flow spends its capacity on what warping
   misses; the estimate only shifts ``I_t``, log-determinant 0). Output: ``estimate + G^-1(z; c)``
   with ``z ~ N(0, tau^2)`` (``temperature``; ``tau = 0``: ``z = 0``, deterministic), drawn from a
   generator seeded by the ``seed`` parameter, so equal inputs give equal outputs.

Confidence: ``1 - 4 M~ (1 - M~)`` of the full-size mask: low where the blend is undecided.

Size and compute (``configs/pervfi.json``: 735 k parameters, 1.4 MB in fp16). One 1280x720 frame,
float32, ``motion=learned``, tau 0.3, on a 2-core x86_64 CPU (shared with other work, so the figures are the
best of 3): 2.4 s with 1 thread, 1.55 s with 2 threads (DIS 0.08 s, motion refiner + blending +
conditions 1.0 s, flow decoder 0.57 s) with DIS ultrafast at half size; with DIS medium capped at
640 px (the shipped configuration; it alone gave +0.6 dB on davis_gap2 and +3 dB on vimeo_gap3
untrained) 2.2 s with 2 threads (median of 3, ``bench.measure_speed``). Cheaper designs tried: the paper's 3x3 kernel (9
deformable points) costs 3.4 s / 2.2 s, and on synthetic data (H100, batch 8, 128 px, 1000 steps)
it trained no better than 4 points (dev PSNR at tau 0.3: 21.83 vs 21.89 dB; NLL 4.35 vs 4.33
bits/dim), so 4 ship; 2 flow steps per block instead of 4 would save 0.28 s (2 threads; quality
untested). The blending at 1/2 size dominates: the next candidates are narrower level-0 features
and a level-0 alignment without the 3x3 offset network.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ...config import ModelConfig
from ...cancellation import check_cancelled
from ...errors import InputError
from ...flow import MotionEstimator, PairFlows, capped_flows, motion_param
from ...interpolator import Interpolation, Interpolator
from ...ops.flow import DIS_PRESETS, capped_dis
from ...ops.warp import average_splat, backward_warp, fill_holes, outside_frame, resize_flow, softmax_splat
from ...registry import ModelDescriptor, Param, register
from .flow import ConditionalFlow, squeeze2

MOTIONS = ("learned", "dis")
MASK_MODES = ("quasi-binary", "adaptive")


@dataclass(frozen=True)
class PerVFIConfig(ModelConfig):
    """Architecture of :class:`PerVFINet` (saved in the model card as ``architecture.config``).

    Args:
        widths: encoder channels at 1/2, 1/4, 1/8 of the input size.
        motion: "learned" (DIS + learned residual refiner, part of the weights) or "dis".
        dis_preset, dis_max_side: DIS preset, and the longer side of the frames it runs on (never upscaled).
        dis_global_motion: start DIS from the frames' dominant translation (a camera pan) instead of
            zero (:func:`~vfi_core.ops.flow.global_shift`).
        refiner_width: channels of the learned motion refiner.
        deform_points: sampling points ``K`` per pixel of the deformable alignment (1..16).
        mask_width: channels ``C`` of the Adaptive Dilation Module's expansion.
        occlusion_threshold: ``epsilon`` of eq. 6 (coverage below it is occluded).
        mask_noise: ``alpha`` of eq. 8 (training only). mask_beta: ``beta`` of eq. 8.
        mask_mode: "quasi-binary" (eq. 8, the method) or "adaptive" (the fully adaptive ablation).
        flow_steps: flow steps ``K`` per block of the generator.
        flow_hidden: coupling networks' width per block.
        cond_widths: condition channels per block.
        condition_on_other: also condition the flow on the other frame's aligned warp (its
            difference to the estimate, squeezed at level 0 and average-pooled below). The blended
            features carry the non-primary frame only inside the mask, so without it the decoder
            cannot use that frame where the primary one is merely inaccurate (small misalignments,
            blur, lighting), which is where a time-weighted mix gains PSNR.
    """

    config_name = "pervfi"  # names the model in config errors (not a field: no annotation)

    widths: tuple[int, int, int] = (16, 32, 48)
    motion: str = "learned"
    dis_preset: str = "medium"
    dis_max_side: int = 640
    dis_global_motion: bool = True
    refiner_width: int = 24
    deform_points: int = 4
    mask_width: int = 8
    occlusion_threshold: float = 0.5
    mask_noise: float = 1e-3
    mask_beta: float = 2.0
    mask_mode: str = "quasi-binary"
    flow_steps: int = 4
    flow_hidden: tuple[int, int, int] = (32, 48, 64)
    cond_widths: tuple[int, int, int] = (16, 32, 48)
    condition_on_other: bool = True

    def __post_init__(self):
        for key in ("widths", "flow_hidden", "cond_widths"):
            value = getattr(self, key)
            if len(value) != 3 or min(value) < 1:
                raise InputError(f"pervfi config: {key} needs 3 positive entries (1/2, 1/4, 1/8)")
        if self.motion not in MOTIONS:
            raise InputError(f"pervfi config: motion must be one of {', '.join(MOTIONS)}, got {self.motion!r}")
        if self.dis_preset not in DIS_PRESETS:
            raise InputError(f"pervfi config: dis_preset must be one of {DIS_PRESETS}, got {self.dis_preset!r}")
        if self.dis_max_side < 16 or not 0 < self.occlusion_threshold < 1:
            raise InputError("pervfi config: dis_max_side must be at least 16, occlusion_threshold in (0, 1)")
        if not 1 <= self.deform_points <= 16 or self.flow_steps < 1 or self.mask_width < 1 or self.refiner_width < 1:
            raise InputError("pervfi config: deform_points in [1, 16]; flow_steps, mask_width, refiner_width >= 1")
        if self.mask_noise < 0 or self.mask_beta < 0:
            raise InputError("pervfi config: mask_noise and mask_beta must be >= 0")
        if self.mask_mode not in MASK_MODES:
            raise InputError(f"pervfi config: mask_mode must be one of {', '.join(MASK_MODES)}, got {self.mask_mode!r}")


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.1, inplace=True))


# -- motion ----------------------------------------------------------------------------------------
class MotionModule(nn.Module):
    """Bidirectional motion ``(F01, F10)``, each ``(B,2,H,W)`` in pixels at the input size.

    :class:`DISMotion` is classical DIS (no weights); :class:`LearnedMotion` adds a learned residual
    refiner; ``forward(..., refine=False)`` gives its DIS flows alone.
    """

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor, refine: bool = True,
                dis_flows: torch.Tensor | None = None):
        """``(F01, F10)``; ``dis_flows``: precomputed ``(B,4,H,W)`` DIS flows (:meth:`DISMotion.dis`)."""
        raise NotImplementedError


class DISMotion(MotionModule):
    def __init__(self, preset: str = "medium", max_side: int = 640, global_motion: bool = True):
        super().__init__()
        self.preset, self.max_side, self.global_motion = preset, max_side, global_motion

    def dis(self, frame0: torch.Tensor, frame1: torch.Tensor) -> torch.Tensor:
        """``(B,4,H,W)`` DIS flows ``F01, F10`` (no gradient) at the input size, computed on the frames
        capped to ``max_side`` (:func:`~vfi_core.ops.flow.capped_dis`), started from the frames'
        dominant translation when ``global_motion``."""
        flows = capped_dis(frame0, frame1, self.preset, self.max_side, self.global_motion)
        return resize_flow(flows, frame0.shape[-2:]).to(frame0.dtype)

    def _dis_pair(self, frame0, frame1, dis_flows):
        flows = self.dis(frame0, frame1) if dis_flows is None else dis_flows.to(frame0.dtype)
        return flows[:, :2], flows[:, 2:]

    def forward(self, frame0, frame1, refine: bool = True, dis_flows=None):
        return self._dis_pair(frame0, frame1, dis_flows)


class LearnedMotion(DISMotion):
    """DIS plus a learned residual at 1/4 size from both frames, both flows and their warp errors."""

    def __init__(self, preset: str = "medium", max_side: int = 640, global_motion: bool = True, width: int = 24):
        super().__init__(preset, max_side, global_motion)
        self.width = width
        self.refiner = nn.Sequential(_conv(12, width), _conv(width, width, 2), _conv(width, width),
                                     nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                     nn.Conv2d(width, 4, 3, 1, 1))
        nn.init.zeros_(self.refiner[-1].weight)
        nn.init.zeros_(self.refiner[-1].bias)

    def forward(self, frame0, frame1, refine: bool = True, dis_flows=None):
        f01, f10 = self._dis_pair(frame0, frame1, dis_flows)
        if not refine:
            return f01, f10
        h, w = frame0.shape[-2:]
        size = (h // 4, w // 4)
        x0, x1 = F.avg_pool2d(frame0, 4), F.avg_pool2d(frame1, 4)
        s01, s10 = resize_flow(f01, size), resize_flow(f10, size)
        e0 = (x0 - backward_warp(x1, s01)).abs().mean(1, keepdim=True)
        e1 = (x1 - backward_warp(x0, s10)).abs().mean(1, keepdim=True)
        residual = self.refiner(torch.cat((x0, x1, s01 * 0.25, s10 * 0.25, e0, e1), 1))
        flows = torch.cat((s01, s10), 1) + residual
        flows = resize_flow(flows, (h, w))
        return flows[:, :2], flows[:, 2:]


# -- asymmetric synergistic blending ---------------------------------------------------------------
class DeformableAlign(nn.Module):
    """One PAM level: flow refinement and ``K``-point modulated deformable sampling of ``f_B``."""

    def __init__(self, channels: int, points: int):
        super().__init__()
        self.points = points
        self.net = nn.Sequential(_conv(2 * channels + 4, channels), _conv(channels, channels),
                                 nn.Conv2d(channels, 2 + 3 * points, 3, 1, 1))
        head = self.net[-1]
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
        with torch.no_grad():  # initial offsets: the 3x3 kernel grid (K = 9) or a ring of radius 1
            if points == 9:
                grid = torch.stack(torch.meshgrid(torch.arange(-1.0, 2.0), torch.arange(-1.0, 2.0), indexing="xy"), -1)
                offsets = grid.reshape(9, 2)
            else:
                angles = torch.arange(points, dtype=torch.float32) * (2 * math.pi / points)
                offsets = torch.stack((angles.cos(), angles.sin()), 1) * (points > 1)
            head.bias[2:2 + 2 * points] = offsets.flatten()
        self.mix = nn.Conv2d(channels * points, channels, 1)
        with torch.no_grad():  # start as the mean of the K samples (modulation starts at 1/2)
            self.mix.weight.zero_()
            self.mix.bias.zero_()
            for c in range(channels):
                self.mix.weight[c, c * points:(c + 1) * points] = 2.0 / points

    def forward(self, f_ta: torch.Tensor, f_b: torch.Tensor, base: torch.Tensor, prior: torch.Tensor):
        """``(f_{t,B}, refined flow)``; flows are backward from t to B in pixels of this level."""
        b, c, h, w = f_b.shape
        k = self.points
        out = self.net(torch.cat((f_ta, backward_warp(f_b, base), base * 0.25, (prior - base) * 0.25), 1))
        flow = base + out[:, :2]
        offsets = flow.unsqueeze(1) + out[:, 2:2 + 2 * k].view(b, k, 2, h, w)
        modulation = torch.sigmoid(out[:, 2 + 2 * k:]).view(b, 1, k, h, w)
        ax, ay = 2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)
        base_x = torch.arange(w, device=f_b.device, dtype=offsets.dtype).view(1, w) * ax - 1.0
        base_y = torch.arange(h, device=f_b.device, dtype=offsets.dtype).view(h, 1) * ay - 1.0
        grid = torch.stack((torch.add(base_x, offsets[:, :, 0], alpha=ax),
                            torch.add(base_y, offsets[:, :, 1], alpha=ay)), -1)  # (B,K,h,w,2)
        # sampled in float32: under bf16 autocast a bf16 grid would be off by up to half a pixel
        samples = F.grid_sample(f_b.float(), grid.view(b, k * h, w, 2).float(), mode="bilinear",
                                padding_mode="border", align_corners=True).view(b, c, k, h, w).to(f_b.dtype)
        return self.mix((samples * modulation).reshape(b, c * k, h, w)), flow


class AdaptiveDilation(nn.Module):
    """ADM (eqs. 7-8): quasi-binary mask from the binary occlusion mask and the aligned features;
    ``adaptive=True``: the fully adaptive ablation (biases, ``sigmoid``, no constraint)."""

    def __init__(self, channels: int, width: int, noise: float, beta: float, adaptive: bool = False):
        super().__init__()
        self.noise, self.beta, self.adaptive = noise, beta, adaptive
        self.expand = nn.Sequential(nn.Conv2d(1, width, 7, padding=6, dilation=2, bias=adaptive), nn.LeakyReLU(0.1),
                                    nn.Conv2d(width, width, 3, padding=2, dilation=2, bias=adaptive),
                                    nn.LeakyReLU(0.1), nn.Conv2d(width, width, 1, bias=adaptive))
        hidden = max(4, channels // 2)
        self.attention = nn.Sequential(nn.Linear(2 * channels, hidden), nn.ReLU(), nn.Linear(hidden, width))
        self.project = nn.Conv2d(width, 1, 1, bias=adaptive)
        if adaptive:
            nn.init.zeros_(self.project.weight)  # an even blend to start, as the symmetric baseline
            nn.init.zeros_(self.project.bias)

    def forward(self, occluded: torch.Tensor, f_ta: torch.Tensor, f_tb: torch.Tensor) -> torch.Tensor:
        att = torch.sigmoid(self.attention(torch.cat((f_ta, f_tb), 1).mean((2, 3))))
        m = self.project(self.expand(occluded) * att[:, :, None, None])
        if self.adaptive:
            return torch.sigmoid(m)
        if self.training and self.noise > 0:
            m = m + self.noise * (torch.rand_like(m) * 2 - 1)
        return torch.tanh(m.abs() + self.beta * occluded)


class Condition(NamedTuple):
    """What the flow decoder is conditioned on (all for the padded input of size ``H, W``).

    estimate: ``(B,3,H,W)`` the blended-warp estimate; the flow models ``I_t - estimate``.
    conds: the flow's conditions, ``(B,cond_widths[l],H/2^(l+1),W/2^(l+1))``.
    masks: quasi-binary masks per level ``(B,1,...)`` (1 = take the non-primary frame).
    mask: ``(B,1,H,W)`` the full-size blending mask of the estimate.
    """

    estimate: torch.Tensor
    conds: list
    masks: list
    mask: torch.Tensor


class PerVFINet(nn.Module):
    """The trainable PerVFI network (see the module docstring)."""

    def __init__(self, config: PerVFIConfig | dict | None = None):
        super().__init__()
        config = PerVFIConfig.coerce(config)
        self.config = config
        c = config.widths
        if config.motion == "learned":
            self.motion = LearnedMotion(config.dis_preset, config.dis_max_side, config.dis_global_motion,
                                        config.refiner_width)
        else:
            self.motion = DISMotion(config.dis_preset, config.dis_max_side, config.dis_global_motion)
        self.encoder = nn.ModuleList([
            nn.Sequential(_conv(3, c[0], 2), _conv(c[0], c[0])),
            nn.Sequential(_conv(c[0], c[1], 2), _conv(c[1], c[1])),
            nn.Sequential(_conv(c[1], c[2], 2), _conv(c[2], c[2])),
        ])
        self.importance = nn.Sequential(_conv(c[0] + 1, 16), nn.Conv2d(16, 1, 3, 1, 1))
        self.align = nn.ModuleList(DeformableAlign(w, config.deform_points) for w in c)
        self.dilate = nn.ModuleList(AdaptiveDilation(w, config.mask_width, config.mask_noise, config.mask_beta,
                                                     adaptive=config.mask_mode == "adaptive")
                                    for w in c)
        extra = (12, 3, 3)  # the estimate squeezed (level 0) or average-pooled, per level
        if config.condition_on_other:  # and the other frame's warp minus the estimate, the same way
            extra = tuple(2 * e for e in extra)
        self.cond = nn.ModuleList(_conv(w + e + 1, cw) for w, e, cw in zip(c, extra, config.cond_widths))
        self.flow = ConditionalFlow(3, config.cond_widths, config.flow_hidden, config.flow_steps)

    @property
    def has_learned_motion(self) -> bool:
        return isinstance(self.motion, LearnedMotion)

    @staticmethod
    def check_inputs(frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor) -> None:
        if frame0.ndim != 4 or frame0.shape[1] != 3 or frame0.shape != frame1.shape:
            raise InputError(f"pervfi: frames must be two (B,3,H,W) tensors of one shape, got "
                             f"{tuple(frame0.shape)} and {tuple(frame1.shape)}")
        if frame0.shape[-1] % 8 or frame0.shape[-2] % 8:
            raise InputError(f"pervfi: H and W must divide by 8, got {frame0.shape[-1]}x{frame0.shape[-2]}")
        if t.shape != frame0.shape[:1]:
            raise InputError(f"pervfi: t must have shape ({frame0.shape[0]},), got {tuple(t.shape)}")

    def condition(self, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor,
                  motion: str | None = None, dis_flows: torch.Tensor | None = None) -> Condition:
        """Motion, asymmetric blending and the flow's conditions for frames at times ``t`` ``(B,)``.

        ``motion``: "learned" or "dis" (default: the config's); "learned" needs a learned refiner.
        ``dis_flows``: precomputed ``(B,4,H,W)`` DIS flows (training computes them in data workers).
        """
        self.check_inputs(frame0, frame1, t)
        motion = motion or self.config.motion
        if motion not in MOTIONS:
            raise InputError(f"pervfi: motion must be one of {', '.join(MOTIONS)}, got {motion!r}")
        if motion == "learned" and not self.has_learned_motion:
            raise InputError("pervfi: these weights have no learned motion refiner (trained with motion=dis); "
                             "use motion=dis")
        b, _, h, w = frame0.shape
        dtype = frame0.dtype
        f01, f10 = self.motion(frame0, frame1, refine=motion == "learned", dis_flows=dis_flows)
        check_cancelled()
        # the nearer frame is primary (A): swap the roles of items with t > 1/2
        swap = (t > 0.5).view(b, 1, 1, 1)
        a, bb = torch.where(swap, frame1, frame0), torch.where(swap, frame0, frame1)
        f_ab, f_ba = torch.where(swap, f10, f01), torch.where(swap, f01, f10)
        ta = torch.where(swap.view(b), 1 - t, t).to(dtype).view(b, 1, 1, 1)
        feats = []
        x = torch.cat((a, bb))
        for block in self.encoder:
            check_cancelled()
            x = block(x)
            feats.append(x.split(b))
        check_cancelled()
        sizes = [f[0].shape[-2:] for f in feats]
        # eq. 1: importance metric from f_A^0 and its photometric (feature) consistency
        ab0 = resize_flow(f_ab, sizes[0])
        err = (feats[0][0] - backward_warp(feats[0][1], ab0)).abs().mean(1, keepdim=True)
        z0 = self.importance(torch.cat((feats[0][0], -err), 1))
        # eqs. 3-4: the prior for aligning B, at level 0, filled where nothing landed
        bt = (1 - ta) * resize_flow(f_ba, sizes[0])
        prior_ta, cover = average_splat(bt, bt)
        prior0 = fill_holes(-prior_ta, (cover > 1e-3).to(dtype))
        check_cancelled()
        f_ta, f_tb, masks, flows = [None] * 3, [None] * 3, [None] * 3, [None] * 3
        base = None
        for level in (2, 1, 0):
            check_cancelled()
            fa, fb = feats[level]
            size = sizes[level]
            zl = F.avg_pool2d(z0, 2 ** level) if level else z0
            splat, coverage = softmax_splat(fa, ta * resize_flow(f_ab, size), zl)
            check_cancelled()
            prior = resize_flow(prior0, size)
            base = prior if base is None else resize_flow(base, size)
            aligned, base = self.align[level](splat, fb, base, prior)
            check_cancelled()
            occluded = (coverage < self.config.occlusion_threshold).to(dtype)
            mask = self.dilate[level](occluded, splat, aligned)
            f_ta[level], f_tb[level], masks[level], flows[level] = splat, aligned, mask, base
        blended = [fa * (1 - m) + fb * m for fa, fb, m in zip(f_ta, f_tb, masks)]
        # the full-size blended-warp estimate
        check_cancelled()
        z_full = F.interpolate(z0, size=(h, w), mode="bilinear", align_corners=False)
        splat_a, coverage = softmax_splat(a, ta * f_ab, z_full)
        check_cancelled()
        flow_b = resize_flow(flows[0], (h, w))
        warp_b = backward_warp(bb, flow_b)
        occluded = (coverage < self.config.occlusion_threshold).to(dtype)
        mask = torch.maximum(F.interpolate(masks[0], size=(h, w), mode="bilinear", align_corners=False), occluded)
        # where B's sample falls outside B (out of view there) and A's content arrived, A alone: the
        # border replication of backward warping would smear B's edge in (fast pans on small frames)
        mask = mask * (1 - outside_frame(flow_b) * (1 - occluded))
        estimate = splat_a * (1 - mask) + warp_b * mask
        pooled = (squeeze2(estimate), F.avg_pool2d(estimate, 4), F.avg_pool2d(estimate, 8))
        inputs = [[f, p, m] for f, p, m in zip(blended, pooled, masks)]
        if self.config.condition_on_other:  # appended last: weights without them extend with zeros
            other = warp_b - estimate
            for level, o in enumerate((squeeze2(other), F.avg_pool2d(other, 4), F.avg_pool2d(other, 8))):
                inputs[level].append(o)
        check_cancelled()
        conds = [layer(torch.cat(x, 1)) for layer, x in zip(self.cond, inputs)]
        return Condition(estimate, conds, masks, mask)

    def sample_latents(self, cond: Condition, temperature: float,
                       generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """``z ~ N(0, temperature^2)`` for ``cond`` (zeros at temperature 0, whatever the generator)."""
        b, _, h, w = cond.estimate.shape
        zs = []
        for shape in self.flow.latent_shapes(b, h, w):
            if temperature > 0:
                z = torch.randn(shape, generator=generator, device=cond.estimate.device, dtype=torch.float32)
                zs.append(z * temperature)
            else:
                zs.append(torch.zeros(shape, device=cond.estimate.device, dtype=torch.float32))
        return zs

    def decode(self, cond: Condition, zs: list[torch.Tensor]) -> torch.Tensor:
        """The frame ``estimate + G^-1(z; c)`` (not clamped)."""
        check_cancelled()
        return cond.estimate + self.flow.decode(zs, cond.conds).to(cond.estimate.dtype)

    def encode(self, cond: Condition, frame: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Latents of ``frame`` and ``log|det|`` ``(B,)`` (the estimate's shift has log-det 0)."""
        return self.flow.encode(frame - cond.estimate, cond.conds)

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor, temperature: float = 0.0,
                generator: torch.Generator | None = None, motion: str | None = None,
                dis_flows: torch.Tensor | None = None) -> tuple[torch.Tensor, Condition]:
        """Sample the frame at ``t`` at ``temperature``: ``(frame, condition)``; ``motion`` and
        ``dis_flows`` as :meth:`condition`."""
        cond = self.condition(frame0, frame1, t, motion, dis_flows)
        return self.decode(cond, self.sample_latents(cond, temperature, generator)), cond


def load_network(weights, device: torch.device, dtype: torch.dtype) -> PerVFINet:
    """Build :class:`PerVFINet` from a weight file and the ``architecture.config`` of its model card."""
    from ...weights import load_network as load

    return load(weights, PerVFINet, PerVFIConfig, device, dtype)


class PerVFI(Interpolator):
    descriptor = ModelDescriptor(
        name="pervfi",
        summary="PerVFI: asymmetric blending with a quasi-binary occlusion mask and a normalizing-flow "
                "decoder sampled at a temperature (sharp, no ghosting).",
        arbitrary_t=True,
        size_multiple=8,
        supports_half=False,
        weight_file="pervfi.safetensors",
        recipe="vfi_core.models.pervfi.recipe:PerVFIRecipe",
        gives_confidence=True,
        seconds_per_megapixel={"cpu": 6.5, "cuda": 0.05},  # one CPU core (854x480), one H200 (1080p)
        params=(
            Param("temperature", float, 0.3, "Sampling temperature of the flow decoder: 0 is deterministic "
                  "and smoothest, higher adds generated detail (and noise).", min=0.0, max=1.0, step=0.05),
            motion_param(),
            Param("refine_motion", bool, True, "Correct the estimated motion with the model's learned "
                  "refiner (weights trained with one)."),
            Param("seed", int, 0, "Seed of the latent noise: the same seed gives the same frames.",
                  min=0, max=2**31 - 1, step=1),
        ),
    )

    def __init__(self, *, network: PerVFINet | None = None, **kwargs):
        super().__init__(**kwargs)
        if network is None:
            network = load_network(self.weights, self.device, self.dtype)
        self.network = network.to(device=self.device, dtype=self.dtype).eval()
        self._check_refiner(self.params)
        self._flows = PairFlows()

    @classmethod
    def from_network(cls, network: PerVFINet, device=None, **params) -> "PerVFI":
        """As :meth:`Interpolator.from_network`; weights without a learned refiner default to
        ``refine_motion=False``."""
        if "refine_motion" not in params and not network.has_learned_motion:
            params["refine_motion"] = False
        return super().from_network(network, device, **params)

    def set_params(self, **params) -> None:
        self._check_refiner({k: self.descriptor.param(k).validate(v) for k, v in params.items()})
        super().set_params(**params)

    def _check_refiner(self, params: dict) -> None:
        if params.get("refine_motion") and not self.network.has_learned_motion:
            raise InputError("pervfi: these weights have no learned motion refiner; use refine_motion=false")

    def flows(self, frame0: torch.Tensor, frame1: torch.Tensor) -> torch.Tensor:
        """``(B,4,H,W)`` flows ``F01, F10`` of the ``motion`` parameter at the input size, computed on
        the frames capped to the config's ``dis_max_side``; kept for every t of the same pair."""
        cfg = self.network.config
        estimator = MotionEstimator(self.params["motion"], cfg.dis_preset, 0, cfg.dis_global_motion)
        return self._flows.get(frame0, frame1, lambda: resize_flow(
            capped_flows(frame0, frame1, estimator, cfg.dis_max_side), frame0.shape[-2:]).to(frame0.dtype),
            key=estimator)

    def _interpolate(self, frame0, frame1, t) -> Interpolation:
        generator = torch.Generator(device=self.device).manual_seed(self.params["seed"])
        was_training = self.network.training
        self.network.eval()
        try:
            frame, cond = self.network(frame0, frame1, t, self.params["temperature"], generator,
                                       "learned" if self.params["refine_motion"] else "dis",
                                       self.flows(frame0, frame1))
        finally:
            self.network.train(was_training)
        confidence = 1 - 4 * cond.mask * (1 - cond.mask)
        return Interpolation(frame, confidence)


register(PerVFI.descriptor, PerVFI)
