"""``mivid``: masked video diffusion interpolation (after MiVID, arXiv 2511.06019),
self-supervised and multi-frame.

Model: a compact pseudo-3D U-Net (:class:`MiVIDNet`) over clips ``(B,C,T,H,W)``: three levels
(base width 32), residual blocks of a 3x3 spatial convolution, a temporal convolution over the
frames (kernel 3) and a second 3x3 spatial convolution, conditioned on the diffusion timestep and on
each frame's *real time* ``tau`` in [0, 1] (sinusoidal frame-order encoding, so any ``t`` is
represented honestly, not snapped to a grid); temporal self-attention over the frames at the
bottleneck (1/4 of the working size) with the same positional encoding. Input channels: the noisy
clip ``z_t`` (visible frames clean), the visible frames ``(1-M) x0``, a base estimate of every
frame (visible frames as they are; masked ones from the nearest visible frames before and after,
``architecture.base``: their time-weighted blend, :func:`linear_base`, or ``flow-asb``'s
interpolation of them, :func:`flow_base`, which hands the network motion instead of a cross-fade
to correct; the same function at training and inference, at the working size) and the mask.
Output: the noise ``eps`` (or ``v``, ``architecture.prediction``: ``eps`` is the paper's and the
default; ``v`` stays well scaled at both ends of the schedule and is there for the case it trains
better in few-step sampling; the model card records which one a weight file uses). The diffusion
lives in [-1, 1] (``x = 2 * frame - 1``); visible frames are never noised
(:mod:`vfi_core.diffusion`).

Inference modes:

- pair (the common pipeline, :meth:`MiVID.interpolate`): a 3-frame clip ``[I0, ?, I1]`` with frame
  times ``[0, t, 1]``; any ``t``.
- window (:meth:`MiVID.interpolate_window`, :meth:`MiVID.interpolate_times`): a clip with the two
  ends visible and ``count`` frames between them generated in one pass (the 7-frame protocol: frames
  2..6 from 1 and 7). ``vfi bench`` calls :meth:`interpolate_times` once per window when a model
  has it.
- refine (``strength`` < 1): the guide estimate (below), re-noised to ``strength * T``, is refined
  by the last ``strength * steps`` steps instead of generating from noise.

Practical speed (the shipping target is a 2-core CPU): the diffusion runs at a working size whose
long side is at most ``work_side`` (224: 854x480 -> 224x126, padded to 224x128); the
full-resolution result is the *guide* estimate at full size corrected by the diffusion's
low-frequency difference to it::

    out = G + gate * upsample(low_pass(x_low - downsample(G)))

where ``G`` is the ``guide`` parameter: ``flow-asb`` (the training-free flow interpolator: sharp
full-resolution detail moved by optical flow; default) or ``blend`` (the linear blend, no flow).
The diffusion decides content and motion at low resolution, the guide supplies the detail the low
resolution lacks. ``low_pass`` is a Gaussian of sigma 1 working pixel (``CORRECTION_SIGMA``): the
denoiser smooths the working size's finest detail, which carried up would blur the guide.
``gate`` is 1 with ``correct=everywhere``; with ``correct=unsure`` it is how unsure the guide is
(one minus flow-asb's confidence map, brought to the working resolution and back): the upsampled
correction cannot move a sharp edge, only add a soft copy of the difference, so where the guide's
motion holds it may be better left alone. Inputs no larger than ``work_side`` are generated at full
size (no low-pass; the guide then only starts the refinement when ``strength`` < 1). The shipped
weights (widths 24/48/96, 736 k parameters: ``configs/mivid_cpu.json``, then fine-tuned with the
flow base by ``configs/mivid_cpu_flow.json``) trained on 64-px crops of frames scaled to a 224-px
long side, the working size's own scale; ``configs/mivid.json`` (widths 32/64/128, 128-px crops) is
the GPU recipe.

Per-clip adaptation (:mod:`vfi_core.adapt`, ``--adapt N``): the training objective
(:func:`masked_clip_loss`) on 7-frame windows of the user's clip at the working scale (64-px crops),
low-rank adapters on the bottleneck and decoder. Which frames are hidden is the hybrid masking of
:mod:`.masking`, whose rates are parameters (``random_mask``, ``motion_mask``, ``curriculum_start``,
``curriculum_end``, declared with ``group="adapt"``; defaults: the shipped training recipe's); the
curriculum runs from start to end over the adaptation's steps. About 0.7 s a step on one CPU thread
(a 640x272 clip: ``vfi interpolate vfi_core/samples/bikes_60.mp4 out.mp4 -m 2 --model mivid --adapt 10``).

Speed on a 2-core x86_64 CPU (torch 2.13, float32, channels-last, guide flow-asb), 854x480 input, the
7-frame protocol in window mode (five frames from frames 1 and 7 in one pass), with the shipped
weights on both threads: defaults (20 DDIM steps, strength 0.15, so 3 network evaluations) 0.69 s
per frame, flow-asb's guide and the flow base included (``vfi export --bench`` over the five DAVIS
validation sequences, medians 0.63-0.77 s per sequence). Time grows with the evaluations
(``steps * strength``) and the frames in the clip (3 in pair mode, 7 in window mode);
``docs/training_results.md`` has the steps sweep (strength 1) in seconds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...config import ModelConfig
from ...diffusion import PREDICTIONS, SCHEDULES, NoiseSchedule, sample, sampler_params, sinusoidal
from ...errors import InputError
from ...frames import as_time_tensor, check_frame_pair, crop_to
from ...flow import motion_param
from ...interpolator import Interpolation, Interpolator
from ...ops.filters import gaussian_blur
from ...registry import ModelDescriptor, Param, register
from . import masking

SIZE_MULTIPLE = 4   # two stride-2 levels


@dataclass(frozen=True)
class MiVIDConfig(ModelConfig):
    """Architecture of :class:`MiVIDNet` (saved in the model card as ``architecture.config``).

    Args:
        widths: channels at the three levels (full, 1/2, 1/4 of the working size).
        blocks: residual blocks per level in the encoder (the decoder has one per level).
        heads: attention heads of the bottleneck's temporal self-attention (divides ``widths[2]``).
        embed: width of the timestep / frame-time embeddings.
        temporal_kernel: odd kernel size of the temporal convolutions.
        schedule: ``linear`` or ``cosine``. timesteps: ``T`` of the training schedule.
        prediction: ``eps`` (noise) or ``v``.
        work_side: inference runs the diffusion at sizes whose long side is at most this.
        base: the estimate of the masked frames given to the network: ``linear`` (time-weighted blend
            of the nearest visible frames, :func:`linear_base`) or ``flow`` (``flow-asb`` between them,
            :func:`flow_base`); training and inference compute it the same way at the working size.
    """

    config_name = "mivid"  # names the model in config errors (not a field: no annotation)

    widths: tuple[int, int, int] = (24, 48, 96)
    blocks: int = 1
    heads: int = 4
    embed: int = 128
    temporal_kernel: int = 3
    schedule: str = "cosine"
    timesteps: int = 1000
    prediction: str = "eps"
    work_side: int = 224
    base: str = "flow"

    def __post_init__(self):
        if len(self.widths) != 3 or min(self.widths) < 1:
            raise InputError("mivid config: widths needs 3 positive entries (full, 1/2, 1/4 size)")
        if self.blocks < 1 or self.embed < 4 or self.embed % 2:
            raise InputError("mivid config: blocks >= 1 and an even embed >= 4")
        if self.heads < 1 or self.widths[2] % self.heads:
            raise InputError(f"mivid config: heads ({self.heads}) must divide widths[2] ({self.widths[2]})")
        if self.temporal_kernel < 1 or self.temporal_kernel % 2 == 0:
            raise InputError(f"mivid config: temporal_kernel must be odd, got {self.temporal_kernel}")
        if self.schedule not in SCHEDULES:
            raise InputError(f"mivid config: schedule must be one of {', '.join(SCHEDULES)}")
        if self.prediction not in PREDICTIONS:
            raise InputError(f"mivid config: prediction must be one of {', '.join(PREDICTIONS)}")
        if self.base not in BASES:
            raise InputError(f"mivid config: base must be one of {', '.join(BASES)}, got {self.base!r}")
        if self.timesteps < 2 or self.work_side < 16:
            raise InputError("mivid config: timesteps >= 2 and work_side >= 16")


def frame_time_encoding(tau: torch.Tensor, dim: int) -> torch.Tensor:
    """``(B,T,dim)`` encoding of the frames' real times ``tau`` ``(B,T)`` in [0, 1] (scaled by 1000
    so that the frequencies resolve fractions of the clip)."""
    return sinusoidal(tau * 1000.0, dim)


def _groups(channels: int) -> int:
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


def _spatial(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1)


class TemporalConv(nn.Module):
    """Convolution over the frames (kernel ``k`` in time, 1x1 in space) of a ``(B*T,C,H,W)`` stack
    (a 2D ``(k,1)`` convolution over ``(B,C,T,H*W)``: faster on CPU than the equivalent 3D one)."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, (kernel, 1), 1, (kernel // 2, 0))

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        bt, c, h, w = x.shape
        y = self.conv(x.view(bt // frames, frames, c, h * w).transpose(1, 2))
        return y.transpose(1, 2).reshape(bt, c, h, w)


class ResBlock(nn.Module):
    """Pseudo-3D residual block on ``(B*T,C,H,W)``: 3x3 conv, + embedding (per frame), temporal
    conv, 3x3 conv (zero-initialised: the block starts as the identity)."""

    def __init__(self, cin: int, cout: int, embed: int, temporal_kernel: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.conv1 = _spatial(cin, cout)
        self.emb = nn.Linear(embed, cout)
        self.norm_t = nn.GroupNorm(_groups(cout), cout)
        self.temporal = TemporalConv(cout, temporal_kernel)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.conv2 = _spatial(cout, cout)
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B*T,C,H,W)``, ``emb`` ``(B,T,E)``."""
        frames = emb.shape[1]
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb).reshape(-1, h.shape[1], 1, 1)
        h = h + self.temporal(F.silu(self.norm_t(h)), frames)
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class TemporalAttention(nn.Module):
    """Self-attention over the frames at every spatial position, with the frame-time encoding."""

    def __init__(self, channels: int, heads: int, embed: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.position = nn.Linear(embed, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B*T,C,h,w)``, ``position`` ``(B,T,E)`` frame-time encodings."""
        b, t = position.shape[:2]
        _, c, h, w = x.shape
        tokens = self.norm(x).view(b, t, c, h, w).permute(0, 3, 4, 1, 2).reshape(b * h * w, t, c)
        tokens = tokens + self.position(position).repeat_interleave(h * w, 0)
        q, k, v = self.qkv(tokens).view(b * h * w, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b * h * w, t, c)
        out = self.out(attended).view(b, h, w, t, c).permute(0, 3, 4, 1, 2).reshape(b * t, c, h, w)
        return x + out


class MiVIDNet(nn.Module):
    """The denoiser (see the module docstring).

    ``forward(z, visible, base, mask, tau, timestep)``:
        z, visible, base: ``(B,3,T,H,W)`` in [-1, 1] (``visible`` zero on masked frames);
        mask: ``(B,1,T,1,1)`` 1 on masked frames; tau: ``(B,T)`` frame times in [0, 1];
        timestep: ``(B,)`` integer diffusion steps. H and W divisible by 4.
    Returns ``(B,3,T,H,W)``: the predicted noise (or ``v``). Inside, frames are stacked along the
    batch (``(B*T,C,H,W)``): 2D convolutions are several times faster than ``(1,3,3)`` 3D ones on CPU.
    """

    def __init__(self, config: MiVIDConfig | dict | None = None):
        super().__init__()
        config = MiVIDConfig.coerce(config)
        self.config = config
        w0, w1, w2 = config.widths
        e, k = config.embed, config.temporal_kernel
        self.time_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        self.frame_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        self.inp = _spatial(10, w0)
        self.enc0 = nn.ModuleList([ResBlock(w0, w0, e, k) for _ in range(config.blocks)])
        self.down0 = _spatial(w0, w0, 2)
        self.enc1 = nn.ModuleList([ResBlock(w0 if i == 0 else w1, w1, e, k) for i in range(config.blocks)])
        self.down1 = _spatial(w1, w1, 2)
        self.mid1 = ResBlock(w1, w2, e, k)
        self.attention = TemporalAttention(w2, config.heads, e)
        self.mid2 = ResBlock(w2, w2, e, k)
        # upsampling convolutions narrow to the skip's width first: the decoder's concatenations stay cheap
        self.up1 = _spatial(w2, w1)
        self.dec1 = ResBlock(2 * w1, w1, e, k)
        self.up0 = _spatial(w1, w0)
        self.dec0 = ResBlock(2 * w0, w0, e, k)
        self.out_norm = nn.GroupNorm(_groups(w0), w0)
        self.out = _spatial(w0, 3)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @staticmethod
    def check_inputs(z, visible, base, mask, tau, timestep) -> None:
        if z.ndim != 5 or z.shape[1] != 3 or visible.shape != z.shape or base.shape != z.shape:
            raise InputError(f"mivid: z, visible and base must be (B,3,T,H,W) alike, got {tuple(z.shape)}, "
                             f"{tuple(visible.shape)}, {tuple(base.shape)}")
        b, _, t, h, w = z.shape
        if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
            raise InputError(f"mivid: H and W must divide by {SIZE_MULTIPLE}, got {w}x{h}")
        if tuple(mask.shape) != (b, 1, t, 1, 1) or tuple(tau.shape) != (b, t) or tuple(timestep.shape) != (b,):
            raise InputError(f"mivid: mask (B,1,T,1,1), tau (B,T) and timestep (B,) expected, got "
                             f"{tuple(mask.shape)}, {tuple(tau.shape)}, {tuple(timestep.shape)}")

    def forward(self, z, visible, base, mask, tau, timestep, attend=None, control=None) -> torch.Tensor:
        """The denoiser's output (class docstring). For a module built around this frozen network
        (keyframe-peft): ``attend(name, x, position)`` runs before each block (``name`` ``enc0_<i>``,
        ``enc1_<i>``, ``mid1``, ``mid2``, ``dec1``, ``dec0``; ``position`` the ``(B,T,E)`` frame
        embeddings) and ``control(x_in, steps, frames)`` returns the residuals added to the two skips and
        the bottleneck, from the ``(B*T,10,h,w)`` input and the step and frame-time encodings."""
        self.check_inputs(z, visible, base, mask, tau, timestep)
        b, _, t, h, w = z.shape
        dtype = z.dtype
        e = self.config.embed
        steps = sinusoidal(timestep, e).to(dtype)                                  # (B,E)
        frames = frame_time_encoding(tau, e).to(dtype)                             # (B,T,E)
        femb = self.frame_mlp(frames)
        emb = self.time_mlp(steps)[:, None] + femb
        x_in = torch.cat((z, visible, base, mask.to(dtype).expand(b, 1, t, h, w)), 1)
        x_in = x_in.transpose(1, 2).reshape(b * t, 10, h, w)
        r0, r1, r2 = control(x_in, steps, frames) if control is not None else (0, 0, 0)
        if attend is None:
            def attend(name, x, position):
                return x
        x = self.inp(x_in)
        for i, block in enumerate(self.enc0):
            x = block(attend(f"enc0_{i}", x, femb), emb)
        s0 = x + r0
        x = self.down0(x)
        for i, block in enumerate(self.enc1):
            x = block(attend(f"enc1_{i}", x, femb), emb)
        s1 = x + r1
        x = self.mid1(attend("mid1", self.down1(x), femb), emb)
        x = self.attention(x, femb)
        x = self.mid2(attend("mid2", x, femb), emb) + r2
        x = torch.cat((self.up1(F.interpolate(x, size=s1.shape[-2:], mode="nearest")), s1), 1)
        x = self.dec1(attend("dec1", x, femb), emb)
        x = torch.cat((self.up0(F.interpolate(x, size=s0.shape[-2:], mode="nearest")), s0), 1)
        x = self.dec0(attend("dec0", x, femb), emb)
        x = self.out(F.silu(self.out_norm(x)))
        return x.view(b, t, 3, h, w).transpose(1, 2)


def _neighbours(mask: torch.Tensor, tau: torch.Tensor):
    """For each frame ``j`` of a clip, the nearest visible frames before and after it, the
    time-weight of the later one and whether any frame is visible: ``(i_prev, i_next, a, valid)``,
    each ``(B,T)``. A frame with visible frames on one side only has that frame as both (``a`` 0).

    Args: mask ``(B,1,T,1,1)`` (1 masked), tau ``(B,T)``.
    """
    b, t = tau.shape
    visible = mask.view(b, t) < 0.5
    tau = tau.to(torch.float64)
    big = torch.full_like(tau, float("inf"))
    before_time = torch.where(visible, tau, -big)
    after_time = torch.where(visible, tau, big)
    idx = torch.arange(t, device=tau.device)
    prevs, nexts, weights, valid = [], [], [], []
    for j in range(t):
        prev_ok = visible & (idx <= j)
        next_ok = visible & (idx >= j)
        has_prev, has_next = prev_ok.any(1), next_ok.any(1)
        i_prev = torch.where(prev_ok, idx, -1).max(1).values
        i_next = torch.where(next_ok, idx, t).min(1).values
        i_prev = torch.where(has_prev, i_prev, i_next).clamp(0, t - 1)   # one side only: that side twice
        i_next = torch.where(has_next, i_next, i_prev).clamp(0, t - 1)
        tp = before_time.gather(1, i_prev[:, None])[:, 0]
        tn = after_time.gather(1, i_next[:, None])[:, 0]
        span = tn - tp
        a = torch.where((span > 0) & has_prev & has_next, (tau[:, j] - tp) / span.clamp_min(1e-12),
                        torch.zeros_like(span))
        prevs.append(i_prev), nexts.append(i_next), weights.append(a), valid.append(has_prev | has_next)
    return torch.stack(prevs, 1), torch.stack(nexts, 1), torch.stack(weights, 1), torch.stack(valid, 1)


def linear_base(clip: torch.Tensor, mask: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """Visible frames as they are; each masked frame the time-weighted blend of the nearest visible
    frames before and after it (the nearest one alone at a clip end, zeros when none is visible).

    Args: clip ``(B,C,T,H,W)``, mask ``(B,1,T,1,1)`` (1 masked), tau ``(B,T)``.
    """
    b, _, t = clip.shape[:3]
    i_prev, i_next, a, valid = _neighbours(mask, tau)
    a, keep = a.to(clip.dtype), valid.to(clip.dtype)
    weights = torch.zeros(b, t, t, dtype=clip.dtype, device=clip.device)   # (B, target j, source i)
    weights.scatter_add_(2, i_prev[..., None], ((1 - a) * keep)[..., None])
    weights.scatter_add_(2, i_next[..., None], (a * keep)[..., None])
    blended = torch.einsum("bji,bcihw->bcjhw", weights, clip)
    return torch.where(mask.bool(), blended, clip)


def flow_base(clip: torch.Tensor, mask: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """Like :func:`linear_base`, but each masked frame between two visible ones is ``flow-asb``'s
    interpolation of them at its time (optical flow moves the content instead of cross-fading it);
    a masked frame with visible frames on one side only takes the nearest one, with none mid-gray.

    Args: clip ``(B,3,T,H,W)`` in [0, 1] (float32: DIS and the splatting run at full precision),
    mask ``(B,1,T,1,1)``, tau ``(B,T)``. Returns ``(B,3,T,H,W)`` in [0, 1].
    """
    from ... import registry

    # DIS motion and the plain mean of the motion hypotheses, as in training: the network learnt
    # from this base
    interpolator = registry.load("flow-asb", device=clip.device, motion="dis", selection=0.0, sharpness=0.0)
    i_prev, i_next, a, valid = _neighbours(mask, tau)
    b, _, t = clip.shape[:3]
    rows = torch.arange(b, device=clip.device)
    out = clip.float().clone()   # the caller's clip stays as it is
    with torch.no_grad(), torch.autocast(clip.device.type, enabled=False):
        for j in range(t):
            masked = mask[:, 0, j, 0, 0] > 0.5
            if not masked.any():
                continue
            # one-sided neighbours are the same frame twice: that frame; none visible: mid-gray
            first, last = out[rows, :, i_prev[:, j]], out[rows, :, i_next[:, j]]
            frame = torch.where(valid[:, j].view(b, 1, 1, 1), first, torch.full_like(first, 0.5))
            between = (i_prev[:, j] != i_next[:, j]).nonzero()[:, 0]
            if len(between):
                moved = interpolator.interpolate(first[between], last[between], a[between, j].float())
                frame = frame.index_copy(0, between, moved)
            out[:, :, j] = torch.where(masked.view(b, 1, 1, 1), frame, out[:, :, j])
    return out.to(clip.dtype)


BASES = ("linear", "flow")


def network_base(kind: str, clip: torch.Tensor, mask: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """The network's ``base`` input in [-1, 1]: :func:`linear_base` or :func:`flow_base` (``kind``)
    of ``clip`` ``(B,3,T,H,W)`` in [0, 1]."""
    if kind == "linear":
        return linear_base(clip * 2 - 1, mask, tau)
    return flow_base(clip, mask, tau) * 2 - 1


def cut_clips(windows: torch.Tensor, length: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips of ``length`` frames from windows ``(B,W,3,h,w)``: ``(B,3,length,h,w)`` and times ``(B,length)``:
    per item a span ``S`` in ``length-1..W-1`` frames, a start, and ``length-2`` interior frames drawn
    without replacement (irregular spacing); each frame's time is its position in the span."""
    b, w = windows.shape[:2]
    if not 3 <= length <= w:
        raise InputError(f"mivid: clips of {length} frames cannot be cut from windows of {w}")
    index, times = [], []
    for _ in range(b):
        span = int(rng.integers(length - 1, w))
        first = int(rng.integers(0, w - span))
        inner = np.sort(rng.choice(np.arange(1, span), size=length - 2, replace=False))
        offsets = np.concatenate(([0], inner, [span]))
        index.append(first + offsets)
        times.append(offsets / span)
    index = torch.as_tensor(np.stack(index), device=windows.device)
    clips = torch.stack([windows[i, index[i]] for i in range(b)]).transpose(1, 2)
    return clips, torch.as_tensor(np.stack(times), dtype=torch.float32, device=windows.device)


def masked_clip_loss(net: "MiVIDNet", loss: nn.Module, windows: torch.Tensor, rng: np.random.Generator,
                     schedule: NoiseSchedule, progress: float = 0.0) -> tuple[torch.Tensor, dict]:
    """MiVID's self-supervised objective on windows ``(B,W,3,h,w)`` in [0,1] (training and per-clip
    adaptation): a clip length from ``loss.config.clip_lengths``, clips cut by :func:`cut_clips`, a
    downscaling factor from ``loss.config.scales``, the hybrid mask at ``progress`` (the curriculum),
    a diffusion step and noise (only masked frames are noised), then ``loss``. Returns ``(total, terms)``."""
    lengths = [n for n in loss.config.clip_lengths if n <= windows.shape[1]]
    if not lengths:
        raise InputError(f"mivid: no clip length in {loss.config.clip_lengths} fits windows of {windows.shape[1]}")
    length = lengths[int(rng.integers(0, len(lengths)))]
    clips, tau = cut_clips(windows, length, rng)
    scale = loss.config.scales[int(rng.integers(0, len(loss.config.scales)))]
    if scale > 1:
        h, w = clips.shape[-2:]
        if h % (scale * SIZE_MULTIPLE) or w % (scale * SIZE_MULTIPLE):
            raise InputError(f"mivid: crops of {w}x{h} do not divide by {scale * SIZE_MULTIPLE} (scale {scale})")
        clips = F.avg_pool3d(clips, (1, scale, scale))
    mask = masking.hybrid_mask(clips, rng, loss.masking, progress)
    b = clips.shape[0]
    x0 = clips * 2 - 1
    t = torch.as_tensor(rng.integers(0, schedule.timesteps, b), device=x0.device)
    generator = torch.Generator(device=x0.device).manual_seed(int(rng.integers(0, 2**62)))
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    z = schedule.q_sample(x0, t, noise, mask)
    visible = torch.where(mask.bool(), torch.zeros_like(x0), x0)
    base = network_base(net.config.base, clips, mask, tau)
    output = net(z, visible, base, mask, tau, t)
    x0_hat, _ = schedule.split(z, output.float(), t, clip=None)
    return loss(output, schedule.target(x0, noise, t), x0_hat, x0, mask, schedule.abar(t, x0).view(b))


def load_network(weights, device: torch.device, dtype: torch.dtype) -> MiVIDNet:
    """Build :class:`MiVIDNet` from a weight file and the ``architecture.config`` of its model card."""
    from ...weights import load_network as load

    return load(weights, MiVIDNet, MiVIDConfig, device, dtype)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize ``(N,C,H,W)``: area when shrinking, bilinear when growing."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] <= x.shape[-2] and size[1] <= x.shape[-1]
    if shrink:
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


# Gaussian sigma, in working-size pixels, of the low-pass on the correction carried to full size: the
# denoiser smooths the working size's finest detail, and that loss would take sharpness from the
# guide. Chosen on the training-allowed DAVIS sequence dog (7-frame protocol, shipped weights):
# sigma 0 / 1 / 2 / 4 gave 20.61 / 20.47 / 20.41 / 20.39 dB and perceptual 0.2253 / 0.2107 / 0.2114 /
# 0.2121 (flow-asb alone: 20.39 dB, 0.2122).
CORRECTION_SIGMA = 1.0

# Per-clip adaptation (vfi_core.adapt): windows of 7 frames at the working scale, 64-px crops (the
# shipped weights' training crops), low-rank adapters on the bottleneck and the decoder.
ADAPT_SPAN = 7
ADAPT_CROP = 64
ADAPTER_TARGETS = ("attention", "mid2", "up1", "dec1", "up0", "dec0")
ADAPT_CLIP_LENGTHS = (3, 5, 7)
# The hybrid masking's rates as user options (defaults: the shipped training recipe's MaskingConfig)
_MASKING = masking.MaskingConfig()
MASK_PARAMS = (
    Param("random_mask", float, _MASKING.p_random, "Adaptation: each frame of a training window is hidden "
          "with this probability (simulated occlusion), and the model learns to regenerate it.",
          min=0.0, max=1.0, step=0.05, group="adapt"),
    Param("motion_mask", float, _MASKING.p_motion, "Adaptation: on average this share of a window's frames "
          "is hidden, drawn towards the frames that change most (motion-guided masking).",
          min=0.0, max=1.0, step=0.05, group="adapt"),
    Param("curriculum_start", float, _MASKING.p_min, "Adaptation: masking rate of the curriculum at the "
          "first step (easy: few gaps).", min=0.0, max=1.0, step=0.05, group="adapt"),
    Param("curriculum_end", float, _MASKING.p_max, "Adaptation: masking rate of the curriculum at the last "
          "step (hard: long gaps); at least curriculum_start.", min=0.0, max=1.0, step=0.05, group="adapt"),
)


def adaptation_masking(params: dict) -> masking.MaskingConfig:
    """The :class:`~.masking.MaskingConfig` of mivid's mask-ratio parameters; a one-line :class:`InputError`
    when the curriculum would fall."""
    if params["curriculum_start"] > params["curriculum_end"]:
        raise InputError(f"mivid: curriculum_start ({params['curriculum_start']}) must not exceed "
                         f"curriculum_end ({params['curriculum_end']})")
    return masking.MaskingConfig(p_random=params["random_mask"], p_motion=params["motion_mask"],
                         p_min=params["curriculum_start"], p_max=params["curriculum_end"])


STRENGTH_HELP = ("Mask ratio / re-noise strength: 1 generates from noise; lower values re-noise only part of "
                 "the guide estimate and run only that share of the steps, so few steps refine rather than "
                 "hallucinate (0.15: the best of 0.15, 0.3 and 0.5 on the DAVIS 7-frame protocol with the "
                 "shipped weights).")


class MiVID(Interpolator):
    descriptor = ModelDescriptor(
        name="mivid",
        summary="Masked video diffusion (MiVID): a 3D U-Net generates the missing frames of a clip from its "
                "visible ones; DDIM/DDPM sampling at low resolution, guided to full size.",
        arbitrary_t=True,
        size_multiple=1,
        supports_half=False,
        weight_file="mivid.safetensors",
        recipe="vfi_core.models.mivid.recipe:MiVIDRecipe",
        gives_confidence=False,
        adaptable=True,
        seconds_per_megapixel={"cpu": 6.1},  # one CPU core (854x480); not yet timed on a GPU
        params=(
            *sampler_params(20, 0.15, STRENGTH_HELP, "Denoising steps: more is slower and can be sharper."),
            Param("guide", str, "flow-asb", "Full-resolution estimate the low-resolution diffusion corrects "
                  "(and the start of refinement): flow-asb (optical flow) or blend (linear).",
                  choices=("flow-asb", "blend")),
            motion_param(),
            Param("correct", str, "everywhere", "Where the diffusion may change the guide: everywhere, or only "
                  "where the guide is unsure (flow-asb's confidence map: its two warped frames disagree or "
                  "neither frame sees the pixel), keeping the guide's sharp detail where its motion holds.",
                  choices=("everywhere", "unsure")),
            *MASK_PARAMS,
        ),
    )

    def __init__(self, *, network: MiVIDNet | None = None, **kwargs):
        super().__init__(**kwargs)
        owned = network is None
        if owned:
            network = self._load_network()
        self.network = network.to(device=self.device, dtype=self.dtype).eval()
        if owned and self.device.type == "cpu":   # oneDNN convolutions run about 1.5x faster channels-last
            self.network = self.network.to(memory_format=torch.channels_last)
        self.schedule = NoiseSchedule(network.config.schedule, network.config.timesteps, network.config.prediction)
        self._flow_asb = None
        self.progress: Callable[[int, int], None] | None = None   # progress(done, total) per denoising step

    def _load_network(self) -> nn.Module:
        """The network of the weight file this interpolator was built with."""
        return load_network(self.weights, self.device, self.dtype)

    # -- per-clip adaptation ------------------------------------------------------------------------
    def adaptation(self):
        """Per-clip adaptation: the training objective on windows of the clip at the working scale,
        masked with the hybrid strategy at the ``random_mask``, ``motion_mask`` and curriculum
        parameters (the curriculum runs from start to end over the adaptation's steps). Visible
        frames are never noised; targets are the clip's own frames, never interpolated ones."""
        from ...adapt import Adaptation
        from .loss import MiVIDLoss, MiVIDLossConfig

        loss = MiVIDLoss(MiVIDLossConfig(masking=self._adaptation_masking(), clip_lengths=ADAPT_CLIP_LENGTHS))

        def window_loss(network: MiVIDNet, runs: torch.Tensor, aux, rng, progress: float) -> torch.Tensor:
            return masked_clip_loss(network, loss, runs, rng, self.schedule, progress)[0]

        def working_scale(frame: torch.Tensor) -> torch.Tensor:
            return _resize(frame, self._work_size(*frame.shape[-2:]))

        return Adaptation(self.network, self.adapter_targets, ADAPT_SPAN, window_loss, self.on_network,
                          resize=working_scale, crop=ADAPT_CROP)

    adapter_targets = ADAPTER_TARGETS   # the network's layers (or modules) that take low-rank adapters

    def _adaptation_masking(self) -> masking.MaskingConfig:
        """Which frames of the adaptation's clips are hidden: the mask-ratio parameters'."""
        return adaptation_masking(self.params)

    # -- guide --------------------------------------------------------------------------------------
    def _guide(self, first: torch.Tensor, last: torch.Tensor,
               times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Full-size estimates at ``times`` ``(B,N)``: ``(B,N,3,H,W)``, and how unsure the guide is of
        each pixel, ``(B,N,1,H,W)`` in [0, 1] (flow-asb: one minus its confidence map), or ``None``
        for the blend, which knows nothing of motion and so is unsure everywhere."""
        tt = times[..., None, None, None].to(first.dtype)
        if self.params["guide"] == "blend":
            return (1 - tt) * first[:, None] + tt * last[:, None], None
        if self._flow_asb is None:
            from ... import registry
            # the plain mean of the motion hypotheses, uncorrected: the guide mivid's figures were
            # measured with
            self._flow_asb = registry.load("flow-asb", device=self.device, motion=self.params["motion"],
                                           selection=0.0, sharpness=0.0)
        self._flow_asb.set_params(motion=self.params["motion"])
        results = [self._flow_asb._interpolate(first, last, times[:, n].float()) for n in range(times.shape[1])]
        frames = torch.stack([r.frame for r in results], 1).to(first.dtype)
        unsure = 1 - torch.stack([r.confidence for r in results], 1).to(first.dtype)
        return frames, unsure

    # -- generation --------------------------------------------------------------------------------
    def generate(self, clip: torch.Tensor, mask: torch.Tensor, tau: torch.Tensor, init: torch.Tensor | None = None,
                 progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """Run the sampler on a working-size clip.

        Args:
            clip: ``(B,3,T,h,w)`` frames in [0, 1] (masked ones ignored), h and w divisible by 4.
            mask: ``(B,1,T,1,1)`` 1 on frames to generate. tau: ``(B,T)`` frame times.
            init: ``(B,3,T,h,w)`` initial estimate in [0, 1] for ``strength`` < 1.
        Returns: the clip in [0, 1] with the masked frames generated (visible ones exact).
        """
        p = self.params
        x = clip * 2 - 1
        visible = torch.where(mask.bool(), torch.zeros_like(x), x)
        base = network_base(self.network.config.base, clip, mask, tau)
        timestep_dtype = torch.long

        def denoise(z, t):
            return self.network(z, visible, base, mask, tau, t.to(self.device, timestep_dtype))

        generator = torch.Generator(device=self.device).manual_seed(int(p["seed"]))
        out = sample(denoise, self.schedule, x, mask, p["steps"], p["sampler"], generator,
                     init=None if init is None else init * 2 - 1, strength=p["strength"],
                     progress=progress or self.progress)
        return (out + 1) / 2

    def _work_size(self, h: int, w: int) -> tuple[int, int]:
        side = self.network.config.work_side
        scale = min(1.0, side / max(h, w))
        return max(SIZE_MULTIPLE, round(h * scale)), max(SIZE_MULTIPLE, round(w * scale))

    def _between(self, first: torch.Tensor, last: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """``(B,N,3,H,W)`` frames at ``times`` ``(B,N)`` in [0, 1] between ``first`` and ``last``,
        generated in one pass of a clip ``[first, N frames, last]``."""
        b, _, h, w = first.shape
        n = times.shape[1]
        guide, unsure = self._guide(first, last, times)                           # (B,N,3|1,H,W)
        wh, ww = self._work_size(h, w)
        ph, pw = -wh % SIZE_MULTIPLE, -ww % SIZE_MULTIPLE

        def small(x):  # (N',3,H,W) -> working size, padded by edge replication
            return F.pad(_resize(x, (wh, ww)), (0, pw, 0, ph), mode="replicate")

        ends = small(torch.cat((first, last))).view(2, b, 3, wh + ph, ww + pw)
        guide_small = small(guide.flatten(0, 1)).view(b, n, 3, wh + ph, ww + pw)
        clip = torch.cat((ends[0][:, None], guide_small, ends[1][:, None]), 1).transpose(1, 2)   # (B,3,T,h,w)
        tau = torch.cat((times.new_zeros(b, 1), times, times.new_ones(b, 1)), 1).to(self.device, torch.float32)
        mask = torch.zeros(b, 1, n + 2, 1, 1, device=self.device, dtype=first.dtype)
        mask[:, :, 1:-1] = 1
        init = clip if self.params["strength"] < 1 else None
        out = self.generate(clip, mask, tau, init)[:, :, 1:-1].transpose(1, 2)            # (B,N,3,h,w)
        out = out[..., :wh, :ww].clamp(0, 1).flatten(0, 1)
        # the guide corrected by the diffusion's difference to it (at full size its low frequencies)
        correction = out - guide_small[..., :wh, :ww].flatten(0, 1)
        if (wh, ww) != (h, w):
            correction = _resize(gaussian_blur(correction, CORRECTION_SIGMA), (h, w))
        if self.params["correct"] == "unsure" and unsure is not None:   # gated at the correction's resolution
            correction = correction * _resize(_resize(unsure.flatten(0, 1), (wh, ww)), (h, w))
        return (guide + correction.view(b, n, 3, h, w)).clamp(0, 1)

    def _interpolate(self, frame0, frame1, t) -> Interpolation:
        return Interpolation(self._between(frame0, frame1, t.view(-1, 1))[:, 0])

    @torch.inference_mode()
    def interpolate_times(self, first: torch.Tensor, last: torch.Tensor, times) -> torch.Tensor:
        """All frames at ``times`` between ``first`` and ``last`` in one diffusion pass.

        Args:
            first, last: ``(B,3,H,W)`` float RGB in [0,1], any size.
            times: a sequence of floats in (0, 1), or a ``(N,)`` or ``(B,N)`` tensor.
        Returns: ``(B,N,3,H,W)`` in [0,1], in ``first``'s dtype and device.
        """
        check_frame_pair(first, last)
        b = first.shape[0]
        times = torch.as_tensor(times, dtype=torch.float32, device=self.device)
        if times.ndim == 1:
            times = times.expand(b, -1)
        if times.ndim != 2 or times.shape[0] != b or times.shape[1] < 1:
            raise InputError(f"mivid: times must be (N,) or ({b},N), got {tuple(times.shape)}")
        for row in times:
            as_time_tensor(row, row.shape[0], self.device)   # range checks
        out_dtype, out_device = first.dtype, first.device
        frames = self._between(first.to(self.device, self.dtype), last.to(self.device, self.dtype),
                               times.contiguous())
        return crop_to(frames, first.shape[-2:]).clamp(0, 1).to(out_device, out_dtype)

    def interpolate_window(self, first: torch.Tensor, last: torch.Tensor, count: int = 5) -> torch.Tensor:
        """Window mode: the ``count`` evenly spaced frames between ``first`` and ``last`` (the
        7-frame protocol: ``count=5`` gives frames 2..6 from frames 1 and 7), ``(B,count,3,H,W)``."""
        if count < 1:
            raise InputError(f"mivid: count must be at least 1, got {count}")
        return self.interpolate_times(first, last, [(k + 1) / (count + 1) for k in range(count)])


register(MiVID.descriptor, MiVID)
