"""LDMVFI's inference: the two stages together (the pipeline of the diffusers split).

For frames 0 and 1 and a time t: encode both frames (VQ-FIGAN), sample the latent of the frame at
t by reverse diffusion conditioned on their latents and t (DDIM or DDPM, ``steps``, ``seed``),
snap it to the codebook, and decode it with the two frames, the synthesis starting from the
autoencoder's motion prior built on the core's motion estimate.
"""
from __future__ import annotations

from typing import Callable

import torch

from ...diffusion import NoiseSchedule, sample
from ...frames import crop_to, pad_to_multiple
from ...flow import frame_estimator
from .autoencoder import VQFIGAN
from .denoiser import LatentDenoiser


def core_motion(frame0: torch.Tensor, frame1: torch.Tensor, motion: str = "auto") -> torch.Tensor:
    """``(B,4,H,W)`` flows ``F01, F10`` in pixels from the core's motion estimator (``motion``, as
    every interpolator's parameter of that name) with flow-asb's settings, the motion LDMVFI's
    prior is built on."""
    return torch.cat(frame_estimator(*frame0.shape[-2:], motion)(frame0, frame1), 1)


class LDMVFIPipeline:
    """``interpolate(frame0, frame1, t)`` with a trained autoencoder and denoiser (module docstring).

    Args:
        motion: ``motion(frame0, frame1) -> (B,4,H,W)`` flows ``F01, F10`` in pixels (default:
            :func:`core_motion`).
    """

    def __init__(self, autoencoder: VQFIGAN, denoiser: LatentDenoiser, steps: int = 10, sampler: str = "ddim",
                 seed: int = 0, motion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None):
        self.autoencoder, self.denoiser = autoencoder.eval(), denoiser.eval()
        config = denoiser.config
        self.schedule = NoiseSchedule(config.schedule, config.timesteps, config.prediction)
        self.steps, self.sampler, self.seed = steps, sampler, seed
        self.motion = motion or core_motion
        self.device = next(denoiser.parameters()).device

    @property
    def size_multiple(self) -> int:
        return max(self.autoencoder.size_multiple, self.autoencoder.config.factor * self.denoiser.config.size_multiple)

    @torch.no_grad()
    def interpolate(self, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        size = frame0.shape[-2:]
        frame0, frame1 = (pad_to_multiple(x.to(self.device).float(), self.size_multiple)[0] for x in (frame0, frame1))
        t = t.to(self.device).float().view(-1)
        scale = float(self.denoiser.latent_scale) or 1.0
        z0 = self.autoencoder.encode(frame0).latent * scale
        z1 = self.autoencoder.encode(frame1).latent * scale
        generator = torch.Generator(device=self.device).manual_seed(self.seed)
        latent = sample(lambda z, step: self.denoiser(z, step.to(self.device), z0, z1, t), self.schedule,
                        torch.zeros_like(z0), torch.ones_like(z0[:, :1, :1, :1]), self.steps, self.sampler,
                        generator, clip=None)
        latent = self.autoencoder.quantizer(latent / scale).latent
        prior = self.autoencoder.prior(frame0, frame1, self.motion(frame0, frame1), t)
        out = self.autoencoder.decode(latent, frame0, frame1, prior)
        return crop_to(out.clamp(0, 1), size)

