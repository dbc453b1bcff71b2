"""LDMVFI's inference: the two stages together (the pipeline of the diffusers split).

For frames 0 and 1 and a time t: encode both frames (VQ-FIGAN), sample the latent of the frame at
t by reverse diffusion conditioned on their latents and t (DDIM or DDPM, ``steps``, ``seed``),
snap it to the codebook, and decode it with the two frames, the synthesis starting from the
autoencoder's motion prior built on the core's motion estimate.

With ``strength`` below 1 the sampling starts from the latent of the prior's own frame (the two
frames warped by the prior and blended with its mask), noised to that share of the schedule, and
runs only the steps below it (SDEdit): the diffusion corrects the motion prior's frame instead of
generating the latent from noise.
"""
from __future__ import annotations

from typing import Callable

import torch

from ...diffusion import NoiseSchedule, sample
from ...frames import crop_to, pad_to_multiple
from ...flow import frame_estimator
from ...ops.warp import backward_warp
from .autoencoder import VQFIGAN, MotionPrior
from .denoiser import LatentDenoiser


def core_motion(frame0: torch.Tensor, frame1: torch.Tensor, motion: str = "auto") -> torch.Tensor:
    """``(B,4,H,W)`` flows ``F01, F10`` in pixels from the core's motion estimator (``motion``, as
    every interpolator's parameter of that name) with flow-asb's settings, the motion LDMVFI's
    prior is built on."""
    return torch.cat(frame_estimator(*frame0.shape[-2:], motion)(frame0, frame1), 1)


def prior_frame(frame0: torch.Tensor, frame1: torch.Tensor, prior: MotionPrior) -> torch.Tensor:
    """The frame ``(B,3,H,W)`` the motion prior alone gives: both frames warped by its flows, blended
    with its mask."""
    return (prior.mask * backward_warp(frame0, prior.flow_t0)
            + (1 - prior.mask) * backward_warp(frame1, prior.flow_t1))


class LDMVFIPipeline:
    """``interpolate(frame0, frame1, t)`` with a trained autoencoder and denoiser (module docstring).

    Args:
        steps, sampler, seed, strength: the sampling defaults (each may be given per call).
        motion: ``motion(frame0, frame1) -> (B,4,H,W)`` flows ``F01, F10`` in pixels (default:
            :func:`core_motion` with ``motion="auto"``).
    """

    def __init__(self, autoencoder: VQFIGAN, denoiser: LatentDenoiser, steps: int = 10, sampler: str = "ddim",
                 seed: int = 0, strength: float = 1.0,
                 motion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None):
        self.autoencoder, self.denoiser = autoencoder.eval(), denoiser.eval()
        config = denoiser.config
        self.schedule = NoiseSchedule(config.schedule, config.timesteps, config.prediction)
        self.steps, self.sampler, self.seed, self.strength = steps, sampler, seed, strength
        self.motion = motion or core_motion
        self.device = next(denoiser.parameters()).device

    @property
    def size_multiple(self) -> int:
        return max(self.autoencoder.size_multiple, self.autoencoder.config.factor * self.denoiser.config.size_multiple)

    @torch.no_grad()
    def interpolate(self, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor, *, steps: int | None = None,
                    sampler: str | None = None, seed: int | None = None, strength: float | None = None,
                    progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """The frames at ``t`` ``(B,)`` between ``frame0`` and ``frame1`` ``(B,3,H,W)`` in [0,1], any
        size (padded to :attr:`size_multiple` and cropped back); ``progress(done, total)`` after
        each denoising step."""
        steps = self.steps if steps is None else steps
        sampler = self.sampler if sampler is None else sampler
        seed = self.seed if seed is None else seed
        strength = self.strength if strength is None else strength
        size = frame0.shape[-2:]
        frame0, frame1 = (pad_to_multiple(x.to(self.device).float(), self.size_multiple)[0] for x in (frame0, frame1))
        t = t.to(self.device).float().view(-1)
        ae = self.autoencoder
        scale = float(self.denoiser.latent_scale) or 1.0
        (e0, features0), (e1, features1) = ae.encoder(frame0), ae.encoder(frame1)
        z0, z1 = (ae.quantizer(e).latent * scale for e in (e0, e1))
        prior = ae.prior(frame0, frame1, self.motion(frame0, frame1), t)
        init = None
        if strength < 1:
            init = ae.encode(prior_frame(frame0, frame1, prior)).latent * scale
        generator = torch.Generator(device=self.device).manual_seed(int(seed))
        latent = sample(lambda z, step: self.denoiser(z, step.to(self.device), z0, z1, t), self.schedule,
                        torch.zeros_like(z0), torch.ones_like(z0[:, :1, :1, :1]), steps, sampler,
                        generator, init=init, strength=strength, progress=progress, clip=None)
        latent = ae.quantizer(latent / scale).latent
        out = ae.decode(latent, frame0, frame1, prior,
                        features=(features0, features1) if ae.config.cross_attention else ([], []))
        return crop_to(out.clamp(0, 1), size)
