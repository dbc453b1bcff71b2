"""Noise schedules, the masked forward process and the samplers of the diffusion models
(:mod:`vfi_core.models.mivid` in pixel space, :mod:`vfi_core.models.ldmvfi` in a latent space).

Organised as in ``diffusers``: a :class:`NoiseSchedule` (betas, ``abar``, ``q_sample``, the
conversions between the network's output and ``x0``/``eps``), single steps (:func:`ddim_step`,
:func:`ddpm_step`) and a sampler loop (:func:`sample`) with a progress callback and a seeded
``torch.Generator``.

Masked forward process (MiVID eq. for ``z_t``), with ``M`` 1 on masked (generated) frames::

    z_t = (1 - M) * x0 + M * (sqrt(abar_t) * x0 + sqrt(1 - abar_t) * eps)

implemented with ``torch.where`` on the binary mask, so visible frames are returned bit for bit.
The clips are ``(B,C,T,H,W)`` for MiVID; any tensor works with a mask that broadcasts to it, and a
mask of ones generates the whole of it (LDMVFI's latent ``(B,D,h,w)``).

Schedules (``T`` training steps, ``t`` in ``0..T-1``):

- ``linear`` (DDPM, Ho et al.): ``beta`` from ``1e-4`` to ``0.02`` at ``T = 1000`` (scaled by
  ``1000/T`` for other ``T``, as improved DDPM does).
- ``cosine`` (Nichol & Dhariwal): ``abar(t) = f(t)/f(0)``, ``f(t) = cos(((t/T + s)/(1 + s)) pi/2)^2``,
  ``s = 0.008``, betas clipped at 0.999. Less noise early, a slower end: better for few-step sampling.

Both give ``abar`` strictly decreasing in (0, 1). Predictions: ``eps`` (the noise, the paper's
choice) or ``v`` (``v = sqrt(abar) eps - sqrt(1-abar) x0``, Salimans & Ho), which stays well scaled
at both ends of the schedule and often trains better for few-step sampling.

Sampling with fewer steps than ``T``: the steps are ``T`` respaced (evenly spaced timesteps, the
``abar`` of consecutive chosen steps define the step's posterior: DDIM with ``eta = 0`` and DDPM
ancestral sampling with the respaced posterior variance). ``strength`` in (0, 1] starts from an
initial estimate noised to ``t = strength * (T-1)`` and runs only the steps at or below it, as
diffusers' img2img does: a low strength refines the estimate, 1 generates from pure noise.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .cancellation import check_cancelled
from .errors import InputError

SCHEDULES = ("linear", "cosine")
SAMPLERS = ("ddim", "ddpm")


def sampler_params(steps: int, strength: float, strength_help: str,
                   steps_help: str = "Denoising steps: more is slower.") -> tuple:
    """The ``steps``, ``sampler``, ``strength`` and ``seed`` parameters of a diffusion model, in the
    order its controls show, each declared once here with its range: ``steps`` and ``strength`` take
    the model's default, and ``strength`` its help (what it re-noises differs by model)."""
    from .registry import Param

    return (Param("steps", int, steps, steps_help, min=1, max=1000, step=1),
            Param("sampler", str, "ddim", "ddim: deterministic, good in few steps; ddpm: stochastic ancestral "
                  "sampling, needs more steps.", choices=SAMPLERS),
            Param("strength", float, strength, strength_help, min=0.05, max=1.0, step=0.05),
            Param("seed", int, 0, "Seed of the sampling noise: the same seed gives the same frames.", min=0,
                  max=2**63 - 1, step=1))


PREDICTIONS = ("eps", "v")


def sinusoidal(x: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """``(..., dim)`` sinusoidal features of ``x`` (any shape), as the DDPM timestep embedding."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=x.device, dtype=torch.float32) / half)
    args = x.float().unsqueeze(-1) * freqs
    return torch.cat((args.cos(), args.sin()), -1)


def beta_schedule(kind: str, timesteps: int) -> torch.Tensor:
    """``(T,)`` float64 betas of the ``linear`` or ``cosine`` schedule."""
    if kind not in SCHEDULES:
        raise InputError(f"diffusion: schedule must be one of {', '.join(SCHEDULES)}, got {kind!r}")
    if timesteps < 2:
        raise InputError(f"diffusion: the schedule needs at least 2 timesteps, got {timesteps}")
    if kind == "linear":
        scale = 1000.0 / timesteps
        return torch.linspace(scale * 1e-4, min(scale * 0.02, 0.999), timesteps, dtype=torch.float64)
    s = 0.008
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / f[0]
    return (1 - abar[1:] / abar[:-1]).clamp(max=0.999)


class NoiseSchedule:
    """The diffusion's schedule: ``betas``, ``alphas_cumprod`` (``abar``), the forward process and
    the conversions between network outputs, ``x0`` and ``eps``.

    Args:
        kind: ``linear`` or ``cosine``. timesteps: ``T``. prediction: ``eps`` or ``v``.
    """

    def __init__(self, kind: str = "cosine", timesteps: int = 1000, prediction: str = "eps"):
        if prediction not in PREDICTIONS:
            raise InputError(f"diffusion: prediction must be one of {', '.join(PREDICTIONS)}, got {prediction!r}")
        self.kind, self.timesteps, self.prediction = kind, int(timesteps), prediction
        self.betas = beta_schedule(kind, self.timesteps)
        self.alphas_cumprod = torch.cumprod(1 - self.betas, 0)   # float64, strictly decreasing in (0, 1)

    def abar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``abar_t`` for integer steps ``t`` ``(B,)`` (``-1`` means ``abar = 1``, the clean end),
        shaped ``(B,1,1,1,1)`` in ``like``'s dtype and device."""
        table = torch.cat((torch.ones(1, dtype=torch.float64), self.alphas_cumprod))
        return table[t.long().cpu() + 1].to(like.device, like.dtype).view(-1, *(1,) * (like.ndim - 1))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``z_t``: masked frames noised to step ``t``, visible frames exactly ``x0``.

        Args:
            x0: ``(B,C,T,H,W)`` clean clip. t: ``(B,)`` integer steps. noise: like ``x0``.
            mask: ``(B,1,T,1,1)`` (or broadcastable) with 1 on masked frames, 0 on visible ones.
        """
        a = self.abar(t, x0)
        noised = a.sqrt() * x0 + (1 - a).sqrt() * noise
        return torch.where(mask.bool(), noised, x0)

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the network is trained to output: ``eps``, or ``v = sqrt(abar) eps - sqrt(1-abar) x0``."""
        if self.prediction == "eps":
            return noise
        a = self.abar(t, x0)
        return a.sqrt() * noise - (1 - a).sqrt() * x0

    def split(self, z: torch.Tensor, output: torch.Tensor, t: torch.Tensor,
              clip: float | None = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x0, eps)`` implied by the network ``output`` at ``z_t``; ``x0`` clipped to ``[-clip, clip]``
        (and ``eps`` recomputed from the clipped ``x0``) unless ``clip`` is None."""
        a = self.abar(t, z)
        if self.prediction == "eps":
            x0 = (z - (1 - a).sqrt() * output) / a.sqrt()
        else:
            x0 = a.sqrt() * z - (1 - a).sqrt() * output
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
        eps = (z - a.sqrt() * x0) / (1 - a).sqrt().clamp_min(1e-8)
        return x0, eps

    def sampling_steps(self, steps: int, strength: float = 1.0) -> list[int]:
        """The descending timesteps a ``steps``-step sampler visits; with ``strength < 1`` only the
        ``max(1, round(steps * strength))`` of them at or below ``strength * (T-1)``."""
        if steps < 1:
            raise InputError(f"diffusion: steps must be at least 1, got {steps}")
        if not 0 < strength <= 1:
            raise InputError(f"diffusion: strength must lie in (0, 1], got {strength}")
        steps = min(int(steps), self.timesteps)
        start = strength * (self.timesteps - 1)
        count = max(1, round(steps * strength))
        # evenly spaced over [0, start], the noisiest first (trailing spacing: the last step is t = 0)
        grid = torch.linspace(start, 0, count, dtype=torch.float64).round().long().tolist()
        return sorted(set(grid), reverse=True)


def ddim_step(z: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, abar_prev: torch.Tensor) -> torch.Tensor:
    """Deterministic DDIM (``eta = 0``): ``z_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps``."""
    return abar_prev.sqrt() * x0 + (1 - abar_prev).sqrt() * eps


def ddpm_step(z: torch.Tensor, x0: torch.Tensor, abar_t: torch.Tensor, abar_prev: torch.Tensor,
              generator: torch.Generator | None) -> torch.Tensor:
    """Ancestral DDPM step with the (respaced) posterior ``q(z_prev | z_t, x0)``.

    ``beta = 1 - abar_t / abar_prev``; mean ``sqrt(abar_prev) beta / (1-abar_t) x0 +
    sqrt(1-beta) (1-abar_prev) / (1-abar_t) z_t``; variance ``beta (1-abar_prev) / (1-abar_t)``
    (no noise added on the last step, where ``abar_prev = 1``).
    """
    beta = 1 - abar_t / abar_prev
    mean = (abar_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - abar_prev) * z) / (1 - abar_t)
    variance = beta * (1 - abar_prev) / (1 - abar_t)
    noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
    return mean + variance.clamp_min(0).sqrt() * noise


def sample(denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], schedule: NoiseSchedule,
           x_visible: torch.Tensor, mask: torch.Tensor, steps: int, sampler: str = "ddim",
           generator: torch.Generator | None = None, init: torch.Tensor | None = None,
           strength: float = 1.0, progress: Callable[[int, int], None] | None = None,
           clip: float | None = 1.0) -> torch.Tensor:
    """Generate the masked frames of a clip by reverse diffusion; visible frames stay exact.

    Args:
        denoise: ``denoise(z_t, t)`` -> the network output (``eps`` or ``v``) for ``z_t`` ``(B,C,T,H,W)``
            at integer steps ``t`` ``(B,)``.
        x_visible: ``(B,C,T,H,W)`` clip whose visible frames are the conditions (masked ones ignored).
        mask: ``(B,1,T,1,1)``, 1 on frames to generate.
        steps: sampler steps (respaced from ``T``). sampler: ``ddim`` or ``ddpm``.
        generator: seeds the initial noise (and DDPM's per-step noise): same seed, same result.
        init: an initial estimate of the clip (masked frames used) for ``strength < 1``.
        strength: in (0, 1]: 1 starts from pure noise; below 1, ``init`` noised to
            ``strength * (T-1)`` and only the steps below it (see :meth:`NoiseSchedule.sampling_steps`).
        progress: called as ``progress(done, total)`` after each step.
        clip: ``x0`` predictions are clipped to ``[-clip, clip]`` (data range) at every step.
    Returns:
        the clip ``(B,C,T,H,W)``: generated masked frames, the exact visible ones.
    """
    if sampler not in SAMPLERS:
        raise InputError(f"diffusion: sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if strength < 1 and init is None:
        raise InputError("diffusion: strength below 1 refines an initial estimate: pass init")
    timesteps = schedule.sampling_steps(steps, strength)
    b = x_visible.shape[0]
    noise = torch.randn(x_visible.shape, generator=generator, device=x_visible.device, dtype=x_visible.dtype)
    if strength >= 1:
        start = torch.where(mask.bool(), noise, x_visible)
    else:
        start_t = torch.full((b,), timesteps[0], dtype=torch.long)
        start = schedule.q_sample(torch.where(mask.bool(), init, x_visible), start_t, noise, mask)
    z = start
    x0 = x_visible
    for index, step in enumerate(timesteps):
        check_cancelled()
        t = torch.full((b,), step, dtype=torch.long)
        prev = torch.full((b,), timesteps[index + 1] if index + 1 < len(timesteps) else -1, dtype=torch.long)
        x0, eps = schedule.split(z, denoise(z, t), t, clip)
        abar_t, abar_prev = schedule.abar(t, z), schedule.abar(prev, z)
        if sampler == "ddim":
            z = ddim_step(z, x0, eps, abar_prev)
        else:
            z = ddpm_step(z, x0, abar_t, abar_prev, generator)
        z = torch.where(mask.bool(), z, x_visible)
        if progress is not None:
            progress(index + 1, len(timesteps))
    # the last step lands on abar = 1: z is the final x0 estimate (visible frames exact)
    return torch.where(mask.bool(), z, x_visible)
