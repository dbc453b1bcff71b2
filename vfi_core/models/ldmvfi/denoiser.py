"""LDMVFI's second stage: the conditional latent denoiser.

A U-Net over the latent of the frame at t ``z_t`` ``(B,D,h,w)`` (noised to a diffusion step), given
the latents of the two input frames by concatenation (the paper's conditioning: ``[z_t, z0, z1]``
on the channels) and two embeddings added in every residual block: the diffusion step and the
interpolation time ``t`` (sinusoidal features, an MLP each). It predicts ``eps`` or ``v``
(:class:`~vfi_core.diffusion.NoiseSchedule`); self-attention over the whole map at its coarsest
level. Latent sides must be multiples of ``2^(levels-1)``. The latents are scaled to unit variance
first (``latent_scale``, measured on the autoencoder's latents when training starts).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...config import ModelConfig
from ...diffusion import PREDICTIONS, SCHEDULES, sinusoidal
from ...errors import InputError


@dataclass(frozen=True)
class LatentDenoiserConfig(ModelConfig):
    """Architecture of :class:`LatentDenoiser` (saved in the model card).

    Args:
        latent_channels: ``D``, the autoencoder's latent channels.
        widths: channels per level (each level after the first halves the map).
        embed: width of the step and time embeddings.
        attention: self-attention at the coarsest level.
        heads: its heads.
        schedule, timesteps, prediction: the diffusion the network is trained for.
    """

    config_name = "ldmvfi denoiser"

    latent_channels: int = 3
    widths: tuple[int, ...] = (64, 128, 128)
    embed: int = 128
    attention: bool = True
    heads: int = 4
    schedule: str = "cosine"
    timesteps: int = 1000
    prediction: str = "eps"

    def __post_init__(self):
        if len(self.widths) < 1 or min(self.widths) < 8 or any(w % 8 for w in self.widths):
            raise InputError(f"ldmvfi denoiser config: widths must be multiples of 8, got {list(self.widths)}")
        if self.widths[-1] % self.heads or self.embed < 8 or self.latent_channels < 1:
            raise InputError("ldmvfi denoiser config: the last width must divide by heads, embed >= 8")
        if self.schedule not in SCHEDULES or self.prediction not in PREDICTIONS or self.timesteps < 2:
            raise InputError(f"ldmvfi denoiser config: schedule in {SCHEDULES}, prediction in {PREDICTIONS}, "
                             "timesteps >= 2")

    @property
    def size_multiple(self) -> int:
        return 2 ** (len(self.widths) - 1)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, channels // 4), channels)


class EmbeddedResBlock(nn.Module):
    """Residual block whose features get the embedding added between its convolutions (the second
    convolution starts at zero: the block starts as the identity)."""

    def __init__(self, cin: int, cout: int, embed: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(embed, cout)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.emb(emb)[:, :, None, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class SelfAttention(nn.Module):
    """Multi-head self-attention over every position of a ``(B,C,h,w)`` map (pre-norm residual)."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = _norm(channels)
        self.qkv, self.out = nn.Conv2d(channels, 3 * channels, 1), nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, hw, c/heads)
        return x + self.out(out.transpose(-1, -2).reshape(b, c, h, w))


class LatentDenoiser(nn.Module):
    """``forward(z_t, step, z0, z1, t)`` -> the ``eps``/``v`` prediction ``(B,D,h,w)``.

    ``z_t``, ``z0``, ``z1``: ``(B,D,h,w)`` latents; ``step``: ``(B,)`` integer diffusion steps; ``t``:
    ``(B,)`` interpolation times in [0, 1].
    """

    def __init__(self, config: LatentDenoiserConfig | dict | None = None):
        super().__init__()
        self.config = config = LatentDenoiserConfig.coerce(config)
        widths, e = config.widths, config.embed
        self.step_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        self.time_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        self.stem = nn.Conv2d(3 * config.latent_channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for i, width in enumerate(widths):
            self.down.append(EmbeddedResBlock(widths[i - 1] if i else widths[0], width, e))
            if i + 1 < len(widths):
                self.downsample.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
        self.mid = EmbeddedResBlock(widths[-1], widths[-1], e)
        self.attention = SelfAttention(widths[-1], config.heads) if config.attention else None
        self.up = nn.ModuleList()
        for i in reversed(range(len(widths))):
            above = widths[i + 1] if i + 1 < len(widths) else widths[-1]
            self.up.append(EmbeddedResBlock(above + widths[i], widths[i], e))
        self.out = nn.Sequential(_norm(widths[0]), nn.SiLU(), nn.Conv2d(widths[0], config.latent_channels, 3, padding=1))
        # latents are multiplied by this before diffusion (unit variance, as LDM's scale factor); set
        # from the autoencoder's latents at the first training step, saved with the weights
        self.register_buffer("latent_scale", torch.zeros(()))

    def forward(self, z_t: torch.Tensor, step: torch.Tensor, z0: torch.Tensor, z1: torch.Tensor,
                t: torch.Tensor) -> torch.Tensor:
        m = self.config.size_multiple
        if z_t.shape[-2] % m or z_t.shape[-1] % m:
            raise InputError(f"ldmvfi denoiser: latent sides must be multiples of {m}, got "
                             f"{z_t.shape[-1]}x{z_t.shape[-2]}")
        e = self.config.embed
        emb = self.step_mlp(sinusoidal(step, e).to(z_t.dtype)) + self.time_mlp(sinusoidal(t * 1000.0, e).to(z_t.dtype))
        x = self.stem(torch.cat([z_t, z0, z1], dim=1))
        skips = []
        for i, block in enumerate(self.down):
            x = block(x, emb)
            skips.append(x)
            if i < len(self.downsample):
                x = self.downsample[i](x)
        x = self.mid(x, emb)
        if self.attention is not None:
            x = self.attention(x)
        for block in self.up:
            skip = skips.pop()
            if x.shape[-2:] != skip.shape[-2:]:
                x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = block(torch.cat([x, skip], dim=1), emb)
        return self.out(x)
