"""VQ-FIGAN, the VFI autoencoder of LDMVFI (Danier et al., "LDMVFI: Video Frame Interpolation with
Latent Diffusion Models", AAAI 2024), sized for CPU training.

The encoder maps a frame ``(B,3,H,W)`` in [0,1] to a latent at ``1/f`` of its size (``f`` = 8 or
16), vector-quantised against a learned codebook. The decoder reconstructs the frame at time t
from that latent *and* the two input frames:

- **MaxCA blocks** (MaxViT-style cross-attention): at each decoder level the features query the
  encoder's features of frames 0 and 1 at that level (``phi0``, ``phi1``), first within P x P
  blocks (local), then across a P x P grid spread over the whole map (global, dilated), each
  followed by an MLP. With ``cross_attention`` off, the decoder is plain residual blocks that never
  see the input frames' features (the paper's ablation).
- **Deformable synthesis** (the paper's eqs. 4-6): per output pixel, K sampling offsets and
  weights (a softmax over K) for each input frame, and an occlusion mask ``M``:

  ``I_t = M * sum_k w0_k I0(p + F_t0(p) + d0_k) + (1 - M) * sum_k w1_k I1(p + F_t1(p) + d1_k)``

  The offsets start from a motion prior (:class:`MotionPrior`: backward flows ``F_t0``, ``F_t1``
  from t to each frame and a starting mask ``M0``, built by :meth:`VQFIGAN.prior` from the core's
  flows), and the mask is ``sigmoid(logit(M0) + m)`` for the decoder's ``m``, so the network
  learns corrections to the core's motion and occlusion rather than motion from nothing
  (``motion_offsets``). With ``motion = "splatted"`` the prior is flow-asb's splatted motion and
  occlusion-aware blend weight, so an untrained decoder (its head starts near zero) already gives
  about flow-asb's frame for that motion hypothesis; ``"linear"`` takes ``F_t0 = t F10``, ``F_t1 = (1 - t) F01`` and ``M0 = 1 - t``.
- **Warped context** (``warped_context``): the two frames warped by the prior enter the decoder's
  full-resolution features, so the synthesis head sees where the warps agree and where they do not.
- **Residual** (``residual``): the decoder also predicts an RGB residual added to the synthesis,
  ``I_t = M * ... + (1 - M) * ... + R``. The synthesis only moves and mixes the input frames' pixels,
  and its parameters change the frame only through image gradients, so on its own the decoder barely
  depends on the latent early in training; the residual gives the latent a direct path to the frame
  (zero-initialised: the untrained decoder still gives the prior's frame).

Frame sizes must be multiples of :attr:`VQFIGAN.size_multiple` (``f * window``); the core pads.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ...config import ModelConfig
from ...errors import InputError
from ...ops.motion import CONSISTENCY_WEIGHT, splatted_motion
from ...ops.warp import backward_warp
from ..flow_asb import OCCLUSION_THRESHOLD, occlusion_weight


@dataclass(frozen=True)
class VQFIGANConfig(ModelConfig):
    """Architecture of :class:`VQFIGAN` (saved in the model card as ``architecture.config``).

    Args:
        factor: downsampling factor ``f`` of the latent (8 or 16).
        width: channels at full resolution; level ``l`` (``1/2^l``) has ``width * multipliers[l]``.
        multipliers: one per level, ``log2(factor) + 1`` entries.
        latent_channels: channels of the latent (and of each codebook vector).
        codebook_size: number of codebook vectors.
        beta: commitment weight of the quantiser loss.
        cross_attention: MaxCA blocks with the input frames' features (else residual blocks only).
        attention_from: the first decoder level (``1/2^l``) with MaxCA blocks; finer levels have
            residual blocks only (attention at full resolution costs the most).
        heads, window: attention heads; block and grid side ``P``.
        points: sampling points ``K`` per frame of the deformable synthesis.
        motion_offsets: start the offsets and the mask from the motion prior.
        motion: the prior, ``"splatted"`` (flow-asb's) or ``"linear"`` (module docstring).
        warped_context: the decoder sees the frames warped by the prior at full resolution.
        residual: the decoder adds an RGB residual to the synthesis (module docstring).
    """

    config_name = "vq-figan"

    factor: int = 8
    width: int = 32
    multipliers: tuple[int, ...] = (1, 2, 2, 4)
    latent_channels: int = 3
    codebook_size: int = 1024
    beta: float = 0.25
    cross_attention: bool = True
    attention_from: int = 1
    heads: int = 2
    window: int = 4
    points: int = 5
    motion_offsets: bool = True
    motion: str = "splatted"
    warped_context: bool = True
    residual: bool = True

    def __post_init__(self):
        if self.factor not in (8, 16):
            raise InputError(f"vq-figan config: factor must be 8 or 16, got {self.factor}")
        levels = int(math.log2(self.factor)) + 1
        if len(self.multipliers) != levels or min(self.multipliers) < 1:
            raise InputError(f"vq-figan config: factor {self.factor} needs {levels} positive multipliers, "
                             f"got {list(self.multipliers)}")
        if self.width < 8 or self.latent_channels < 1 or self.codebook_size < 2 or self.points < 1:
            raise InputError("vq-figan config: width >= 8, latent_channels >= 1, codebook_size >= 2, points >= 1")
        if not 0 <= self.attention_from < levels or self.window < 1 or self.heads < 1:
            raise InputError(f"vq-figan config: attention_from in 0..{levels - 1}, window >= 1, heads >= 1")
        if any(self.width * m % self.heads for m in self.multipliers):
            raise InputError("vq-figan config: every level's channels must divide by heads")
        if self.motion not in MOTION_PRIORS:
            raise InputError(f"vq-figan config: motion must be one of {', '.join(MOTION_PRIORS)}, got {self.motion!r}")

    @property
    def levels(self) -> int:
        return len(self.multipliers)


MOTION_PRIORS = ("splatted", "linear")


class MotionPrior(NamedTuple):
    """Where the synthesis starts: backward flows ``flow_t0``, ``flow_t1`` ``(B,2,H,W)`` in pixels
    from t to frames 0 and 1, and ``mask`` ``(B,1,H,W)`` in (0,1), the share of frame 0."""

    flow_t0: torch.Tensor
    flow_t1: torch.Tensor
    mask: torch.Tensor


@torch.no_grad()
def motion_prior(kind: str, frame0: torch.Tensor, frame1: torch.Tensor, flows: torch.Tensor,
                 t: torch.Tensor) -> MotionPrior:
    """The :class:`MotionPrior` of ``kind`` (:data:`MOTION_PRIORS`) for frames ``(B,3,H,W)`` in [0,1],
    ``flows`` ``(B,4,H,W)`` = ``F01, F10`` in pixels and ``t`` ``(B,)``."""
    flows, t = flows.float(), t.float().view(-1)
    tt = t.view(-1, 1, 1, 1)
    f01, f10 = flows[:, :2], flows[:, 2:]
    if kind == "linear":
        return MotionPrior(tt * f10, (1 - tt) * f01, (1 - tt).expand_as(flows[:, :1]).clone())
    motion, cov0, cov1 = splatted_motion(frame0.float(), frame1.float(), f01, f10, t, CONSISTENCY_WEIGHT)
    to0, to1 = -tt * motion, (1 - tt) * motion
    weight1, _, _ = occlusion_weight(t, to0, to1, (cov0 < OCCLUSION_THRESHOLD).float(),
                                     (cov1 < OCCLUSION_THRESHOLD).float())
    return MotionPrior(to0, to1, 1 - weight1)


class Quantized(NamedTuple):
    """The quantiser's output: ``latent`` ``(B,D,h,w)`` (straight-through), the codebook ``indices``
    ``(B,h,w)`` and its ``loss`` (codebook + beta * commitment, a scalar)."""

    latent: torch.Tensor
    indices: torch.Tensor
    loss: torch.Tensor


class VectorQuantizer(nn.Module):
    """Nearest-codebook-vector quantisation with the straight-through gradient (VQ-VAE).

    In training, codes that go unused are restarted (against codebook collapse, where a few codes
    take every vector): ``usage`` keeps a running average of how often each code is chosen, and a
    code whose average falls below ``dead_usage`` moves onto one of the batch's worst-quantised
    vectors (the largest distance to its code; a deterministic choice, so a resumed run repeats).
    ``usage`` starts at zero, so the first training batch restarts every code onto the encoder's
    own vectors (a data-dependent start: the tiny initial codes would otherwise leave a handful of
    codes taking every vector for hundreds of steps, and the latent would carry almost nothing).
    """

    usage_decay = 0.99
    dead_usage = 0.01  # expected picks per batch, averaged

    def __init__(self, size: int, dim: int, beta: float):
        super().__init__()
        self.beta = beta
        self.codebook = nn.Embedding(size, dim)
        self.codebook.weight.data.uniform_(-1.0 / size, 1.0 / size)
        self.register_buffer("usage", torch.zeros(size))

    def _nearest(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes = self.codebook.weight.float()
        distance = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codes.t() + codes.pow(2).sum(1)[None]
        return distance.min(1)

    @torch.no_grad()
    def _restart_dead_codes(self, flat: torch.Tensor, indices: torch.Tensor, error: torch.Tensor) -> bool:
        counts = torch.bincount(indices, minlength=self.usage.numel()).to(self.usage.dtype)
        self.usage.mul_(self.usage_decay).add_(counts, alpha=1 - self.usage_decay)
        dead = (self.usage < self.dead_usage).nonzero().flatten()
        if not len(dead):
            return False
        worst = error.argsort(descending=True)[:len(dead)]
        dead = dead[:len(worst)]
        self.codebook.weight.data[dead] = flat[worst].to(self.codebook.weight.dtype)
        self.usage[dead] = 1.0
        return True

    def forward(self, z: torch.Tensor) -> Quantized:
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d).float()
        error, indices = self._nearest(flat)
        if self.training and self._restart_dead_codes(flat.detach(), indices, error):
            indices = self._nearest(flat)[1]
        quantized = self.lookup(indices.view(b, h, w)).to(z.dtype)
        loss = F.mse_loss(quantized, z.detach()) + self.beta * F.mse_loss(z, quantized.detach())
        return Quantized(z + (quantized - z).detach(), indices.view(b, h, w), loss)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codebook vectors ``(B,D,h,w)`` of ``indices`` ``(B,h,w)``."""
        return self.codebook(indices).permute(0, 3, 1, 2)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(_norm(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1),
                                  _norm(cout), nn.SiLU(), nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


def _blocks(x: torch.Tensor, p: int) -> torch.Tensor:
    """``(B,C,H,W)`` -> ``(B*H/p*W/p, p*p, C)``: the tokens of each p x p block together."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b * (h // p) * (w // p), p * p, c)


def _unblocks(tokens: torch.Tensor, shape: torch.Size, p: int) -> torch.Tensor:
    b, c, h, w = shape
    x = tokens.view(b, h // p, w // p, p, p, c).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(b, c, h, w)


def _grid(x: torch.Tensor, g: int) -> torch.Tensor:
    """``(B,C,H,W)`` -> ``(B*H/g*W/g, g*g, C)``: the tokens of each g x g grid spread over the whole map
    (pixels ``H/g`` apart) together."""
    b, c, h, w = x.shape
    x = x.view(b, c, g, h // g, g, w // g).permute(0, 3, 5, 2, 4, 1)
    return x.reshape(b * (h // g) * (w // g), g * g, c)


def _ungrid(tokens: torch.Tensor, shape: torch.Size, g: int) -> torch.Tensor:
    b, c, h, w = shape
    x = tokens.view(b, h // g, w // g, g, g, c).permute(0, 5, 3, 1, 4, 2)
    return x.reshape(b, c, h, w)


class CrossAttention(nn.Module):
    """Multi-head attention of query tokens ``(N,Lq,C)`` over context tokens ``(N,Lk,C)``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm_q, self.norm_kv = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q, self.kv, self.out = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        n, lq, c = x.shape
        split = lambda t: t.view(n, -1, self.heads, c // self.heads).transpose(1, 2)  # noqa: E731
        q = split(self.q(self.norm_q(x)))
        k, v = self.kv(self.norm_kv(context)).chunk(2, dim=-1)
        out = F.scaled_dot_product_attention(q, split(k), split(v))
        return self.out(out.transpose(1, 2).reshape(n, lq, c))


class MaxCABlock(nn.Module):
    """MaxViT-style cross-attention: block attention, then grid attention, each over the two input
    frames' features at the same places, each followed by an MLP (pre-norm residuals)."""

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.window = window
        self.block, self.grid = CrossAttention(dim, heads), CrossAttention(dim, heads)
        self.mlp_block = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.mlp_grid = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor, phi0: torch.Tensor, phi1: torch.Tensor) -> torch.Tensor:
        p = self.window
        for split, merge, attention, mlp in ((_blocks, _unblocks, self.block, self.mlp_block),
                                             (_grid, _ungrid, self.grid, self.mlp_grid)):
            tokens = split(x, p)
            context = torch.cat([split(phi0, p), split(phi1, p)], dim=1)
            tokens = tokens + attention(tokens, context)
            tokens = tokens + mlp(tokens)
            x = merge(tokens, x.shape, p)
        return x


class Encoder(nn.Module):
    """Frames ``(B,3,H,W)`` -> pre-quantisation latent ``(B,D,H/f,W/f)`` and the features of every level."""

    def __init__(self, config: VQFIGANConfig):
        super().__init__()
        widths = [config.width * m for m in config.multipliers]
        self.stem = nn.Conv2d(3, widths[0], 3, padding=1)
        self.levels = nn.ModuleList([ResBlock(widths[0], widths[0])])
        self.downs = nn.ModuleList()
        for level in range(1, config.levels):
            self.downs.append(nn.Conv2d(widths[level - 1], widths[level - 1], 3, stride=2, padding=1))
            self.levels.append(ResBlock(widths[level - 1], widths[level]))
        self.mid = ResBlock(widths[-1], widths[-1])
        self.out = nn.Sequential(_norm(widths[-1]), nn.SiLU(), nn.Conv2d(widths[-1], config.latent_channels, 3, padding=1))

    def forward(self, frame: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.levels[0](self.stem(frame * 2 - 1))
        features = [x]
        for down, block in zip(self.downs, self.levels[1:]):
            x = block(down(x))
            features.append(x)
        return self.out(self.mid(x)), features


class Decoder(nn.Module):
    """Latent ``(B,D,h,w)`` and the input frames' features -> the synthesis parameters at full size."""

    def __init__(self, config: VQFIGANConfig):
        super().__init__()
        widths = [config.width * m for m in config.multipliers]
        self.config = config
        self.stem = nn.Conv2d(config.latent_channels, widths[-1], 3, padding=1)
        self.blocks = nn.ModuleList()
        self.attention = nn.ModuleDict()
        self.ups = nn.ModuleList()
        for level in reversed(range(config.levels)):
            cout = widths[level]
            cin = widths[level + 1] if level + 1 < config.levels else widths[-1]
            self.blocks.append(ResBlock(cin, cout))
            if config.cross_attention and level >= config.attention_from:
                self.attention[str(level)] = MaxCABlock(cout, config.heads, config.window)
            if level:
                self.ups.append(nn.Conv2d(cout, cout, 3, padding=1))
        if config.warped_context:
            self.context = nn.Sequential(nn.Conv2d(6, widths[0], 3, padding=1), nn.SiLU(),
                                         nn.Conv2d(widths[0], widths[0], 3, padding=1))
        k = config.points
        # per frame: K weights and K (dx, dy) offsets; one occlusion logit
        self.head = nn.Sequential(_norm(widths[0]), nn.SiLU(), nn.Conv2d(widths[0], 2 * 3 * k + 1, 3, padding=1))
        # near zero, so the synthesis starts at the prior; not zero, or the K points of a frame would
        # get equal gradients and move as one for ever
        nn.init.normal_(self.head[-1].weight, std=1e-3)
        nn.init.zeros_(self.head[-1].bias)
        if config.residual:
            self.residual = nn.Sequential(_norm(widths[0]), nn.SiLU(), nn.Conv2d(widths[0], 3, 3, padding=1))
            nn.init.zeros_(self.residual[-1].weight)
            nn.init.zeros_(self.residual[-1].bias)

    def forward(self, latent: torch.Tensor, phi0: list[torch.Tensor], phi1: list[torch.Tensor],
                warped: torch.Tensor | None = None) -> torch.Tensor:
        """The synthesis parameters ``(B, 6K+1, H, W)``, then the RGB residual ``(B,3,H,W)`` with
        ``residual``; ``warped`` ``(B,6,H,W)``: both frames warped by the prior, in [0,1] (with
        ``warped_context``)."""
        x = self.stem(latent)
        ups = iter(self.ups)
        for i, level in enumerate(reversed(range(self.config.levels))):
            x = self.blocks[i](x)
            if str(level) in self.attention:
                x = self.attention[str(level)](x, phi0[level], phi1[level])
            if level:
                x = next(ups)(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        if self.config.warped_context:
            x = x + self.context(warped * 2 - 1)
        if self.config.residual:
            return torch.cat((self.head(x), self.residual(x)), 1)
        return self.head(x)


class VQFIGAN(nn.Module):
    """The VFI autoencoder (see the module docstring).

    ``forward(frame_t, frame0, frame1, prior)`` reconstructs ``frame_t`` through its quantised
    latent; :meth:`encode` and :meth:`decode` are the two halves the latent denoiser uses. Frames
    ``(B,3,H,W)`` float in [0,1]; ``prior`` from :meth:`prior` (or None: no motion, an even mask).
    """

    def __init__(self, config: VQFIGANConfig | dict | None = None):
        super().__init__()
        self.config = config = VQFIGANConfig.coerce(config)
        self.encoder = Encoder(config)
        self.quantizer = VectorQuantizer(config.codebook_size, config.latent_channels, config.beta)
        self.decoder = Decoder(config)

    @property
    def size_multiple(self) -> int:
        return self.config.factor * self.config.window

    def _check(self, *frames: torch.Tensor) -> None:
        h, w = frames[0].shape[-2:]
        m = self.size_multiple
        if h % m or w % m:
            raise InputError(f"vq-figan: frame sides must be multiples of {m}, got {w}x{h} (pad them first)")

    def encode(self, frame: torch.Tensor) -> Quantized:
        """The quantised latent of ``frame`` ``(B,3,H,W)``."""
        self._check(frame)
        return self.quantizer(self.encoder(frame)[0])

    def prior(self, frame0: torch.Tensor, frame1: torch.Tensor, flows: torch.Tensor, t: torch.Tensor) -> MotionPrior:
        """This autoencoder's :class:`MotionPrior` (its config's ``motion``) from the core's ``flows``
        ``(B,4,H,W)`` = ``F01, F10`` in pixels, at times ``t`` ``(B,)``."""
        return motion_prior(self.config.motion, frame0, frame1, flows, t)

    def features(self, frame: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's features of an input frame at every level (what the decoder attends to)."""
        return self.encoder(frame)[1]

    def _start(self, frame0: torch.Tensor, prior: MotionPrior | None) -> MotionPrior:
        """The prior the synthesis starts from: ``prior`` with ``motion_offsets``, else none (zero
        flows, an even mask)."""
        if prior is not None and self.config.motion_offsets:
            return prior
        b, _, h, w = frame0.shape
        zeros = frame0.new_zeros(b, 2, h, w)
        return MotionPrior(zeros, zeros, frame0.new_full((b, 1, h, w), 0.5))

    def decode(self, latent: torch.Tensor, frame0: torch.Tensor, frame1: torch.Tensor,
               prior: MotionPrior | None = None,
               features: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None) -> torch.Tensor:
        """The frame at t ``(B,3,H,W)`` from its (quantised) latent, the two input frames and the
        motion prior (:meth:`prior`).

        ``features``: the input frames' :meth:`features`, when the caller already has them.
        """
        self._check(frame0, frame1)
        if features is None:
            features = (self.features(frame0), self.features(frame1)) if self.config.cross_attention else ([], [])
        start = self._start(frame0, prior)
        warped = None
        if self.config.warped_context:
            warped = torch.cat((backward_warp(frame0, start.flow_t0), backward_warp(frame1, start.flow_t1)), 1)
        params = self.decoder(latent, *features, warped)
        return self.synthesize(params, frame0, frame1, start)

    def synthesize(self, params: torch.Tensor, frame0: torch.Tensor, frame1: torch.Tensor,
                   start: MotionPrior) -> torch.Tensor:
        """Deformable synthesis from the decoder's ``(B, 6K+1, H, W)`` output (``6K+4`` with the
        residual; module docstring), starting from ``start``, the prior :meth:`decode` resolved."""
        k = self.config.points
        weights0, weights1 = params[:, :k].softmax(1), params[:, k:2 * k].softmax(1)
        offsets0 = params[:, 2 * k:4 * k]
        offsets1 = params[:, 4 * k:6 * k]
        mask = torch.sigmoid(params[:, 6 * k:6 * k + 1] + torch.logit(start.mask.clamp(0.01, 0.99)))
        out0 = sum(weights0[:, i:i + 1] * backward_warp(frame0, start.flow_t0 + offsets0[:, 2 * i:2 * i + 2])
                   for i in range(k))
        out1 = sum(weights1[:, i:i + 1] * backward_warp(frame1, start.flow_t1 + offsets1[:, 2 * i:2 * i + 2])
                   for i in range(k))
        out = mask * out0 + (1 - mask) * out1
        if self.config.residual:
            out = out + params[:, 6 * k + 1:6 * k + 4]
        return out

    def forward(self, frame_t: torch.Tensor, frame0: torch.Tensor, frame1: torch.Tensor,
                prior: MotionPrior | None = None) -> tuple[torch.Tensor, Quantized]:
        """``(reconstruction, quantised)``: the autoencoder's reconstruction of ``frame_t``."""
        quantized = self.encode(frame_t)
        return self.decode(quantized.latent, frame0, frame1, prior), quantized
