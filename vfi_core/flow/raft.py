"""RAFT: Recurrent All-Pairs Field Transforms for optical flow (Teed & Deng, ECCV 2020).

Written from the paper. Module names and tensor shapes follow the authors' released checkpoints
(``raft-sintel.pth``, ``raft-small.pth``) so that their state dicts load with strict key matching
(after the ``module.`` prefix of their data-parallel wrapper is removed, :func:`strip_prefix`).

The network, for frames ``(B,3,H,W)`` in [0,1] with ``H``, ``W`` multiples of 8 (:class:`RAFT`
pads otherwise):

1. A feature encoder (instance-normalised) maps both frames to 1/8 resolution; a context encoder
   (batch-normalised in the large model, unnormalised in the small one) maps frame 0 to the GRU's
   initial hidden state (tanh) and its context input (ReLU).
2. The 4D correlation volume of all pairs of feature vectors (dot product over ``sqrt(C)``), pooled
   over the second frame's dimensions into a 4-level pyramid.
3. Iterative updates: at the current flow, a window of radius ``r`` is looked up at every pyramid
   level (bilinear), encoded with the flow, and a convolutional GRU (separable 1x5 / 5x1 in the
   large model, 3x3 in the small one) predicts a flow update at 1/8 resolution.
4. Upsampling to full resolution: convex combinations of the 3x3 coarse neighbours with learned
   weights (large), or bilinear (small).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..cancellation import check_cancelled


@dataclass(frozen=True)
class RAFTConfig:
    """Sizes of a RAFT variant (the paper's large and small models)."""

    feature_dim: int          # feature encoder output channels
    hidden_dim: int           # GRU hidden state
    context_dim: int          # context features fed to every update
    corr_levels: int = 4
    corr_radius: int = 4
    small: bool = False       # bottleneck encoders, 3x3 ConvGRU, bilinear upsampling

    @property
    def corr_channels(self) -> int:
        return self.corr_levels * (2 * self.corr_radius + 1) ** 2


RAFT_LARGE = RAFTConfig(feature_dim=256, hidden_dim=128, context_dim=128)
RAFT_SMALL = RAFTConfig(feature_dim=128, hidden_dim=96, context_dim=64, corr_radius=3, small=True)
VARIANTS = {"large": RAFT_LARGE, "small": RAFT_SMALL}
MIN_SIDE = 64  # smaller frames are padded to it


# -- encoders --------------------------------------------------------------------------------------
def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels)  # no affine parameters, no running statistics
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (1x1 projection when the stride is 2)."""

    def __init__(self, cin: int, cout: int, norm: str, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.norm1, self.norm2 = _norm(norm, cout), _norm(norm, cout)
        self.downsample = None
        if stride != 1:
            # the projection's norm is registered under two names, as in the released checkpoints
            self.norm3 = _norm(norm, cout)
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride), self.norm3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        y = F.relu(self.norm2(self.conv2(y)))
        return F.relu((x if self.downsample is None else self.downsample(x)) + y)


class BottleneckBlock(nn.Module):
    """1x1 -> 3x3 -> 1x1 convolutions at a quarter of the width, with a residual connection."""

    def __init__(self, cin: int, cout: int, norm: str, stride: int = 1):
        super().__init__()
        mid = cout // 4
        self.conv1 = nn.Conv2d(cin, mid, 1)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1)
        self.conv3 = nn.Conv2d(mid, cout, 1)
        self.norm1, self.norm2, self.norm3 = _norm(norm, mid), _norm(norm, mid), _norm(norm, cout)
        self.downsample = None
        if stride != 1:
            self.norm4 = _norm(norm, cout)
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride), self.norm4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        y = F.relu(self.norm2(self.conv2(y)))
        y = F.relu(self.norm3(self.conv3(y)))
        return F.relu((x if self.downsample is None else self.downsample(x)) + y)


class Encoder(nn.Module):
    """7x7 stride-2 stem, three stages of two blocks (the 2nd and 3rd downsample), 1x1 head: 1/8 size.

    Large model: residual blocks of widths 64/96/128; small: bottleneck blocks of 32/64/96.
    """

    def __init__(self, out_dim: int, norm: str, small: bool):
        super().__init__()
        widths = (32, 64, 96) if small else (64, 96, 128)
        block = BottleneckBlock if small else ResidualBlock
        self.conv1 = nn.Conv2d(3, widths[0], 7, stride=2, padding=3)
        self.norm1 = _norm(norm, widths[0])
        stages, cin = [], widths[0]
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(block(cin, width, norm, stride), block(width, width, norm)))
            cin = width
        self.layer1, self.layer2, self.layer3 = stages
        self.conv2 = nn.Conv2d(cin, out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm1(self.conv1(x)))
        return self.conv2(self.layer3(self.layer2(self.layer1(x))))


# -- correlation -----------------------------------------------------------------------------------
def correlation_pyramid(fmap0: torch.Tensor, fmap1: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """All-pairs correlation of ``(B,C,h,w)`` feature maps as ``levels`` tensors ``(B*h*w,1,h_l,w_l)``:
    for each pixel of ``fmap0``, its dot products with every pixel of ``fmap1`` over ``sqrt(C)``, the
    second frame's dimensions average-pooled by 2 per level."""
    b, c, h, w = fmap0.shape
    corr = torch.einsum("bci,bcj->bij", fmap0.flatten(2), fmap1.flatten(2)) / math.sqrt(c)
    pyramid = [corr.reshape(b * h * w, 1, h, w)]
    for _ in range(levels - 1):
        pyramid.append(F.avg_pool2d(pyramid[-1], 2, stride=2))
    return pyramid


def _window(radius: int, device, dtype) -> torch.Tensor:
    """``((2r+1)^2, 2)`` offsets ``(dx, dy)``; ``dx`` is the slow index, as the released weights expect."""
    d = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    dx, dy = torch.meshgrid(d, d, indexing="ij")
    return torch.stack((dx, dy), -1).reshape(-1, 2)


def lookup(pyramid: list[torch.Tensor], coords: torch.Tensor, radius: int) -> torch.Tensor:
    """``(B, levels*(2r+1)^2, h, w)`` correlation values around ``coords`` ``(B,2,h,w)`` (pixel
    positions in the second frame, x first), bilinearly sampled, zero outside, at every level."""
    b, _, h, w = coords.shape
    window = _window(radius, coords.device, coords.dtype)
    centre = coords.permute(0, 2, 3, 1).reshape(b * h * w, 1, 1, 2)
    out = []
    for i, corr in enumerate(pyramid):
        hl, wl = corr.shape[-2:]
        pos = centre / 2 ** i + window.view(1, 1, -1, 2)               # (bhw, 1, k, 2) pixels
        scale = pos.new_tensor([2.0 / max(wl - 1, 1), 2.0 / max(hl - 1, 1)])
        sampled = F.grid_sample(corr, pos * scale - 1.0, mode="bilinear", padding_mode="zeros",
                                align_corners=True)                     # (bhw, 1, 1, k)
        out.append(sampled.view(b, h, w, -1))
    return torch.cat(out, -1).permute(0, 3, 1, 2).contiguous()


# -- update operator -------------------------------------------------------------------------------
class MotionEncoder(nn.Module):
    """Correlation and flow features for the GRU; the flow itself is appended to the output."""

    def __init__(self, config: RAFTConfig):
        super().__init__()
        self.small = config.small
        if config.small:
            self.convc1 = nn.Conv2d(config.corr_channels, 96, 1)
            self.convf1 = nn.Conv2d(2, 64, 7, padding=3)
            self.convf2 = nn.Conv2d(64, 32, 3, padding=1)
            self.conv = nn.Conv2d(128, 80, 3, padding=1)
        else:
            self.convc1 = nn.Conv2d(config.corr_channels, 256, 1)
            self.convc2 = nn.Conv2d(256, 192, 3, padding=1)
            self.convf1 = nn.Conv2d(2, 128, 7, padding=3)
            self.convf2 = nn.Conv2d(128, 64, 3, padding=1)
            self.conv = nn.Conv2d(256, 126, 3, padding=1)

    def forward(self, flow: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        c = F.relu(self.convc1(corr))
        if not self.small:
            c = F.relu(self.convc2(c))
        f = F.relu(self.convf2(F.relu(self.convf1(flow))))
        return torch.cat((F.relu(self.conv(torch.cat((c, f), 1))), flow), 1)


class ConvGRU(nn.Module):
    """Convolutional GRU with 3x3 gates (small model)."""

    def __init__(self, hidden: int, inputs: int):
        super().__init__()
        self.convz = nn.Conv2d(hidden + inputs, hidden, 3, padding=1)
        self.convr = nn.Conv2d(hidden + inputs, hidden, 3, padding=1)
        self.convq = nn.Conv2d(hidden + inputs, hidden, 3, padding=1)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        hx = torch.cat((h, x), 1)
        z, r = torch.sigmoid(self.convz(hx)), torch.sigmoid(self.convr(hx))
        q = torch.tanh(self.convq(torch.cat((r * h, x), 1)))
        return (1 - z) * h + z * q


class SepConvGRU(nn.Module):
    """Two GRU updates, with 1x5 then 5x1 gates (large model)."""

    def __init__(self, hidden: int, inputs: int):
        super().__init__()
        for i, (k, p) in enumerate((((1, 5), (0, 2)), ((5, 1), (2, 0))), start=1):
            for gate in "zrq":
                setattr(self, f"conv{gate}{i}", nn.Conv2d(hidden + inputs, hidden, k, padding=p))

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        for i in (1, 2):
            hx = torch.cat((h, x), 1)
            z = torch.sigmoid(getattr(self, f"convz{i}")(hx))
            r = torch.sigmoid(getattr(self, f"convr{i}")(hx))
            q = torch.tanh(getattr(self, f"convq{i}")(torch.cat((r * h, x), 1)))
            h = (1 - z) * h + z * q
        return h


class FlowHead(nn.Module):
    def __init__(self, cin: int, hidden: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(x)))


class UpdateBlock(nn.Module):
    """One iteration: motion features, GRU, flow update (and, large model, upsampling weights)."""

    def __init__(self, config: RAFTConfig):
        super().__init__()
        motion_dim = 82 if config.small else 128
        self.encoder = MotionEncoder(config)
        gru = ConvGRU if config.small else SepConvGRU
        self.gru = gru(config.hidden_dim, config.context_dim + motion_dim)
        self.flow_head = FlowHead(config.hidden_dim, 128 if config.small else 256)
        self.mask = None
        if not config.small:
            # 8x8 sub-pixels times 3x3 neighbours of convex-combination weights
            self.mask = nn.Sequential(nn.Conv2d(config.hidden_dim, 256, 3, padding=1), nn.ReLU(inplace=True),
                                      nn.Conv2d(256, 64 * 9, 1))

    def forward(self, net, context, corr, flow, upsampling_weights: bool = True):
        """``(net, mask, delta)``; ``upsampling_weights=False`` skips the mask (only the last
        iteration's is used at inference)."""
        x = torch.cat((context, self.encoder(flow, corr)), 1)
        net = self.gru(net, x)
        delta = self.flow_head(net)
        mask = None
        if self.mask is not None and upsampling_weights:
            mask = 0.25 * self.mask(net)  # the 0.25 scales the gradient
        return net, mask, delta


def convex_upsample(flow: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B,2,8h,8w)`` full-resolution flow from ``(B,2,h,w)`` at 1/8: each of the 8x8 sub-pixels is a
    softmax-weighted combination of the 3x3 coarse neighbours (``mask`` ``(B,576,h,w)``)."""
    b, _, h, w = flow.shape
    weights = torch.softmax(mask.view(b, 1, 9, 8, 8, h, w), dim=2)
    neighbours = F.unfold(8 * flow, 3, padding=1).view(b, 2, 9, 1, 1, h, w)
    up = (weights * neighbours).sum(2)                                 # (b, 2, 8, 8, h, w)
    return up.permute(0, 1, 4, 2, 5, 3).reshape(b, 2, 8 * h, 8 * w)


def bilinear_upsample8(flow: torch.Tensor) -> torch.Tensor:
    h, w = flow.shape[-2:]
    return 8 * F.interpolate(flow, size=(8 * h, 8 * w), mode="bilinear", align_corners=True)


def _coords_grid(b: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(h, device=like.device, dtype=like.dtype),
                            torch.arange(w, device=like.device, dtype=like.dtype), indexing="ij")
    return torch.stack((xs, ys))[None].expand(b, -1, -1, -1)


class RAFT(nn.Module):
    """The RAFT network (large or small, :data:`VARIANTS`).

    ``forward(frame0, frame1, iterations)`` takes ``(B,3,H,W)`` frames in [0,1] (any size: padded to
    a multiple of 8, and to at least 64 px, by edge replication, evenly on both sides, and cropped
    back) and returns the
    flow ``F01`` ``(B,2,H,W)`` in pixels, float32, ``frame0(p) ~ frame1(p + F01(p))``.
    :meth:`bidirectional` gives ``F01`` and ``F10`` from one pass of the encoders and one
    correlation volume.
    """

    def __init__(self, config: RAFTConfig = RAFT_LARGE):
        super().__init__()
        self.config = config
        self.fnet = Encoder(config.feature_dim, "instance", config.small)
        self.cnet = Encoder(config.hidden_dim + config.context_dim, "none" if config.small else "batch",
                            config.small)
        self.update_block = UpdateBlock(config)

    def _refine(self, pyramid, context_out, iterations: int) -> torch.Tensor:
        cfg = self.config
        net, context = torch.split(context_out, (cfg.hidden_dim, cfg.context_dim), 1)
        net, context = torch.tanh(net), F.relu(context)
        b, _, h, w = net.shape
        # positions and the correlation stay float32 under half precision (fp16 steps 1/16 px at 256)
        coords0 = _coords_grid(b, h, w, net.float())
        coords1 = coords0.clone()
        mask = None
        for i in range(iterations):
            check_cancelled()  # a job's cancel (vfi_core.cancellation), between iterations
            corr = lookup(pyramid, coords1, cfg.corr_radius).to(net.dtype)
            net, mask, delta = self.update_block(net, context, corr, (coords1 - coords0).to(net.dtype),
                                                 i == iterations - 1)
            coords1 = coords1 + delta.float()
        flow = coords1 - coords0
        return bilinear_upsample8(flow) if mask is None else convex_upsample(flow, mask.float())

    def bidirectional(self, frame0: torch.Tensor, frame1: torch.Tensor,
                      iterations: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
        """``(F01, F10)``, each ``(B,2,H,W)`` float32 in pixels; a cancelled job stops between
        iterations (:mod:`vfi_core.cancellation`)."""
        if frame0.shape != frame1.shape or frame0.dim() != 4 or frame0.shape[1] != 3:
            raise ValueError(f"RAFT expects two (B,3,H,W) frames of one shape, got {tuple(frame0.shape)} "
                             f"and {tuple(frame1.shape)}")
        b, _, h, w = frame0.shape
        # a multiple of 8, and at least 64 px: the coarsest correlation level is 1/64 of the frame
        ph, pw = max((-h) % 8, MIN_SIDE - h), max((-w) % 8, MIN_SIDE - w)
        pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
        pair = torch.cat((frame0, frame1)) * 2.0 - 1.0
        if ph or pw:
            pair = F.pad(pair, pad, mode="replicate")
        fmaps = self.fnet(pair)
        f0, f1 = fmaps[:b], fmaps[b:]
        # one volume: F10's is the transpose of F01's
        levels = self.config.corr_levels
        pyramid01 = correlation_pyramid(f0.float(), f1.float(), levels)
        pyramid10 = correlation_pyramid(f1.float(), f0.float(), levels)
        context = self.cnet(pair)
        flow = self._refine([torch.cat(p) for p in zip(pyramid01, pyramid10)], context, iterations)
        flow = flow[..., pad[2]:pad[2] + h, pad[0]:pad[0] + w]
        return flow[:b], flow[b:]

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor, iterations: int = 12) -> torch.Tensor:
        return self.bidirectional(frame0, frame1, iterations)[0]


def strip_prefix(state: dict[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    """The released checkpoints were saved from ``nn.DataParallel``: keys start with ``module.``."""
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}
