"""The conditional normalizing flow of ``pervfi`` (PerVFI sec. 3.2, eqs. 10-12, 16-17).

``G(x; c)`` maps an image-shaped tensor ``x`` ``(B,C,H,W)`` (in ``pervfi``: the residual between the
frame at t and the blended-warp estimate) to latents ``z = (z_0, ..., z_{L-1})`` given a conditioning
pyramid ``c = (c_0, ..., c_{L-1})``, ``c_l`` at ``1/2^(l+1)`` of ``H, W``. Its structure (Glow /
SRFlow, as the paper's Fig. 2-c): ``L`` blocks, each

    squeeze (space to channels, 2x2) -> transition (actnorm, invertible 1x1 convolution)
    -> K flow steps (actnorm, invertible 1x1 convolution, conditional affine coupling)
    -> split (half the channels leave as ``z_l``; the last block keeps all of them)

The coupling is the stable one of eq. 16: ``h_B' = exp(lambda * tanh(w_s(h_A; c)) + eta) * h_B +
w_b(h_A; c)``, ``lambda`` and ``eta`` learnable scalars, the last convolution of ``w_s``/``w_b``
initialised to 0. Its log-determinant is eq. 17. ``lambda`` starts at 1 as in the paper; ``eta``
starts at 0, not 1: with ``eta = 1`` every coupling starts by multiplying half the channels by
``e``, and over the ``3K`` couplings the coarsest latents grew to ``|z| ~ 1e5`` (measured, K = 3),
where float32 inversion loses ``2e-2``; with 0 each coupling starts as the identity. The 1x1 convolutions are LU-parameterised (Glow), so their
log-determinants are ``H*W*sum(log|s|)`` and their inverses exact. ActNorm starts as the identity
(no data-dependent initialisation: the trainer has no hook for it, and the residuals it sees at
the start are near 0, where a data-dependent scale would explode).

Every log-determinant is exact; :meth:`ConditionalFlow.encode` returns their sum per sample and
:meth:`ConditionalFlow.decode` inverts :meth:`~ConditionalFlow.encode` exactly (up to float
rounding). The flow always runs in float32 (autocast is switched off inside): the log-likelihood
sums millions of terms, which bf16 cannot hold.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...cancellation import check_cancelled

_LOG_2PI = math.log(2 * math.pi)


def _full(x: torch.Tensor) -> torch.Tensor:
    """float32 unless already float32/float64 (float64 is kept for exact Jacobian checks)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def squeeze2(x: torch.Tensor) -> torch.Tensor:
    """``(B,C,H,W) -> (B,4C,H/2,W/2)`` (space to channels; volume preserving, log-det 0)."""
    return F.pixel_unshuffle(x, 2)


def unsqueeze2(x: torch.Tensor) -> torch.Tensor:
    return F.pixel_shuffle(x, 2)


class ActNorm(nn.Module):
    """Per-channel affine ``(x + bias) * exp(logs)``; starts as the identity."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.logs = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = self.logs.sum() * (x.shape[2] * x.shape[3])
        return (x + self.bias) * torch.exp(self.logs), logdet.expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * torch.exp(-self.logs) - self.bias


class InvConv1x1(nn.Module):
    """Invertible 1x1 convolution, LU-parameterised: ``W = P L (U + diag(sign * exp(log_s)))``.

    Initialised from a random rotation (drawn from torch's global generator).
    """

    def __init__(self, channels: int):
        super().__init__()
        q = torch.linalg.qr(torch.randn(channels, channels))[0]
        p, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        self.register_buffer("perm", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1), persistent=False)
        self.register_buffer("eye", torch.eye(channels), persistent=False)
        self.lower = nn.Parameter(lower)
        self.log_s = nn.Parameter(torch.log(s.abs()))
        self.upper = nn.Parameter(torch.triu(upper, 1))

    def weight(self) -> torch.Tensor:
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.perm @ lower @ upper

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weight()
        logdet = self.log_s.sum() * (x.shape[2] * x.shape[3])
        return F.conv2d(x, w[:, :, None, None]), logdet.expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        w_inv = torch.linalg.inv(self.weight().double()).to(y.dtype)
        return F.conv2d(y, w_inv[:, :, None, None])


class AffineCoupling(nn.Module):
    """Conditional affine coupling of eq. 16 (log-determinant eq. 17).

    ``h = (h_A, h_B)`` split on channels (``h_A`` the first ``C//2``); ``w_s``, ``w_b`` share one
    small network on ``[h_A, c]``: 3x3 conv, LeakyReLU, 1x1 conv, LeakyReLU, 3x3 conv (zero-init).
    """

    def __init__(self, channels: int, cond_channels: int, hidden: int):
        super().__init__()
        self.ca = channels // 2
        self.cb = channels - self.ca
        self.net = nn.Sequential(nn.Conv2d(self.ca + cond_channels, hidden, 3, padding=1), nn.LeakyReLU(0.2),
                                 nn.Conv2d(hidden, hidden, 1), nn.LeakyReLU(0.2))
        self.out = nn.Conv2d(hidden, 2 * self.cb, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.lam = nn.Parameter(torch.ones(()))
        self.eta = nn.Parameter(torch.zeros(()))  # the paper says 1: see the module docstring

    def _scale_shift(self, ha: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ws, wb = self.out(self.net(torch.cat((ha, cond), 1))).split(self.cb, 1)
        return self.lam * torch.tanh(ws) + self.eta, wb

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ha, hb = h[:, :self.ca], h[:, self.ca:]
        log_s, shift = self._scale_shift(ha, cond)
        return torch.cat((ha, torch.exp(log_s) * hb + shift), 1), log_s.sum((1, 2, 3))

    def inverse(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        ha, hb = h[:, :self.ca], h[:, self.ca:]
        log_s, shift = self._scale_shift(ha, cond)
        return torch.cat((ha, (hb - shift) * torch.exp(-log_s)), 1)


class FlowStep(nn.Module):
    """ActNorm -> invertible 1x1 convolution -> conditional affine coupling."""

    def __init__(self, channels: int, cond_channels: int, hidden: int):
        super().__init__()
        self.actnorm = ActNorm(channels)
        self.conv = InvConv1x1(channels)
        self.coupling = AffineCoupling(channels, cond_channels, hidden)

    def forward(self, h, cond):
        h, a = self.actnorm(h)
        h, b = self.conv(h)
        h, c = self.coupling(h, cond)
        return h, a + b + c

    def inverse(self, h, cond):
        return self.actnorm.inverse(self.conv.inverse(self.coupling.inverse(h, cond)))


class FlowBlock(nn.Module):
    """One pyramid level: squeeze, transition (actnorm + 1x1 conv), ``steps`` flow steps, split."""

    def __init__(self, in_channels: int, cond_channels: int, hidden: int, steps: int, split: bool):
        super().__init__()
        c = 4 * in_channels
        self.channels, self.split = c, split
        self.transition = nn.ModuleList([ActNorm(c), InvConv1x1(c)])
        self.steps = nn.ModuleList(FlowStep(c, cond_channels, hidden) for _ in range(steps))

    @property
    def out_channels(self) -> int:
        """Channels passed to the next block (the rest leave as this level's latent)."""
        return self.channels - self.channels // 2 if self.split else 0

    def forward(self, x, cond):
        h = squeeze2(x)
        logdet = x.new_zeros(x.shape[0])
        for layer in self.transition:
            h, ld = layer(h)
            logdet = logdet + ld
        for step in self.steps:
            h, ld = step(h, cond)
            logdet = logdet + ld
        if self.split:
            k = self.channels // 2
            return h[:, :k], h[:, k:], logdet
        return h, None, logdet

    def inverse(self, z, rest, cond):
        h = z if rest is None else torch.cat((z, rest), 1)
        for step in reversed(self.steps):
            h = step.inverse(h, cond)
        for layer in reversed(self.transition):
            h = layer.inverse(h)
        return unsqueeze2(h)


class ConditionalFlow(nn.Module):
    """``L`` :class:`FlowBlock` s over an ``in_channels`` image (see the module docstring).

    Args:
        in_channels: channels of ``x`` (3 for RGB).
        cond_channels: channels of each level's condition ``c_l`` (at ``1/2^(l+1)`` of ``x``'s size).
        hidden: hidden width of the couplings' networks, per level.
        steps: flow steps ``K`` per level.
    """

    def __init__(self, in_channels: int, cond_channels: Sequence[int], hidden: Sequence[int], steps: int):
        super().__init__()
        if not len(cond_channels) == len(hidden) >= 1:
            raise ValueError("cond_channels and hidden need one entry per level")
        blocks, c = [], in_channels
        levels = len(cond_channels)
        for level in range(levels):
            block = FlowBlock(c, cond_channels[level], hidden[level], steps, split=level < levels - 1)
            blocks.append(block)
            c = block.out_channels
        self.blocks = nn.ModuleList(blocks)
        self.in_channels = in_channels

    def latent_shapes(self, batch: int, h: int, w: int) -> list[tuple[int, ...]]:
        """Shapes of ``z_0 .. z_{L-1}`` for an ``(batch, C, h, w)`` input."""
        shapes = []
        for level, block in enumerate(self.blocks):
            s = 2 ** (level + 1)
            c = block.channels // 2 if block.split else block.channels
            shapes.append((batch, c, h // s, w // s))
        return shapes

    def encode(self, x: torch.Tensor, conds: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``(z_list, logdet)``: latents and ``log|det dG/dx|`` ``(B,)`` (float32)."""
        with torch.autocast(x.device.type, enabled=False):
            h, zs = _full(x), []
            logdet = h.new_zeros(h.shape[0])
            for block, cond in zip(self.blocks, conds):
                z, h, ld = block(h, _full(cond))
                zs.append(z)
                logdet = logdet + ld
            return zs, logdet

    def decode(self, zs: Sequence[torch.Tensor], conds: Sequence[torch.Tensor]) -> torch.Tensor:
        """Invert :meth:`encode`: the ``x`` whose latents are ``zs``."""
        with torch.autocast(zs[0].device.type, enabled=False):
            h = None
            for block, z, cond in reversed(list(zip(self.blocks, zs, conds))):
                check_cancelled()
                h = block.inverse(_full(z), h, _full(cond))
            return h

    @staticmethod
    def log_prob(zs: Sequence[torch.Tensor]) -> torch.Tensor:
        """``log N(z; 0, I)`` summed per sample ``(B,)``."""
        return sum((-0.5 * (z.float() ** 2 + _LOG_2PI)).flatten(1).sum(1) for z in zs)
