"""Training recipes of LDMVFI: the VQ-FIGAN autoencoder first (``vfi train ldmvfi-autoencoder``), then
the latent denoiser on its frozen latents (``vfi train ldmvfi``).

First stage.

Per step: the frames 0 and 1 of the batch, the ground truth at ``t`` and motion (a motion pack's
flows where the batch comes from one, else DIS on the crops, as the other recipes); the synthesis
starts from the autoencoder's motion prior on those flows (:meth:`VQFIGAN.prior`).
The autoencoder reconstructs the ground truth through its quantised latent and the discriminator
judges it (:class:`~vfi_core.models.ldmvfi.loss.VQFIGANLoss`: L1, perceptual, quantiser, patch GAN
in one optimizer step).

The trained network is the pair (:class:`VQFIGANPair`); ``vfi export`` ships the autoencoder alone.
The dev evaluation scores reconstructions: the autoencoder given the truth's own latent, which
bounds what the latent denoiser of the second stage can reach.

Second stage. The frozen autoencoder (``loss.autoencoder``, default the shipped
``vq_figan.safetensors``) encodes the two frames and the ground truth; the latents are scaled to
unit variance (the scale measured on the first batch and kept in the denoiser's weights), the
truth's latent is noised to a random diffusion step and the denoiser, given the frames' latents and
t, predicts the noise (mean squared error). The dev evaluation runs the whole pipeline
(:class:`~vfi_core.models.ldmvfi.pipeline.LDMVFIPipeline`, 10 DDIM steps, seed 0).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import nn

from ...frames import crop_to, pad_to_multiple
from ...train.recipe_base import NetworkRecipe, add_crop_flows
from .autoencoder import VQFIGAN, VQFIGANConfig
from .loss import LatentDiffusionLossWeights, PatchDiscriminator, VQFIGANLoss, VQFIGANLossWeights

WEIGHT_STEM = "vq_figan"
DENOISER_STEM = "ldmvfi"


@dataclass(frozen=True)
class VQFIGANPairConfig(VQFIGANConfig):
    """The autoencoder's config plus the discriminator's width and strided layers."""

    config_name = "vq-figan training pair"

    discriminator_width: int = 32
    discriminator_layers: int = 3

    def autoencoder(self) -> VQFIGANConfig:
        return VQFIGANConfig(**{f.name: getattr(self, f.name) for f in fields(VQFIGANConfig)})


class VQFIGANPair(nn.Module):
    """The autoencoder and its discriminator, trained together (one optimizer, see the loss)."""

    def __init__(self, config: VQFIGANPairConfig | dict | None = None):
        super().__init__()
        self.config = config = VQFIGANPairConfig.coerce(config)
        self.autoencoder = VQFIGAN(config.autoencoder())
        self.discriminator = PatchDiscriminator(config.discriminator_width, config.discriminator_layers)


class Reconstruction:
    """Dev evaluation of the autoencoder: ``reconstruct(frame0, frame1, t, truth)`` encodes the truth
    and decodes it with the two frames and the core's motion (the pipeline's), at any size (padded
    to the size multiple)."""

    def __init__(self, autoencoder: VQFIGAN):
        self.autoencoder = autoencoder
        self.device = next(autoencoder.parameters()).device

    @torch.no_grad()
    def reconstruct(self, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor,
                    truth: torch.Tensor) -> torch.Tensor:
        from .pipeline import core_motion

        size = frame0.shape[-2:]
        frames = [pad_to_multiple(x.to(self.device).float(), self.autoencoder.size_multiple)[0]
                  for x in (frame0, frame1, truth)]
        prior = self.autoencoder.prior(frames[0], frames[1], core_motion(frames[0], frames[1]), t.to(self.device))
        self.autoencoder.eval()
        out, _ = self.autoencoder(frames[2], frames[0], frames[1], prior)
        return crop_to(out.clamp(0, 1), size)


class VQFIGANRecipe(NetworkRecipe):
    """LDMVFI's first stage; see the module docstring."""

    name = "ldmvfi-autoencoder"
    log_extras = ("codebook_usage",)

    def network_class(self) -> type[nn.Module]:
        return VQFIGANPair

    def loss(self, weights: dict) -> nn.Module:
        return VQFIGANLoss(VQFIGANLossWeights.from_dict(weights))

    def loss_config(self, weights: dict):
        return VQFIGANLossWeights.from_dict(weights)

    def terms(self) -> tuple[str, ...]:
        return (*VQFIGANLossWeights.terms(), "discriminator")

    def prepare_batch(self, batch: dict, architecture) -> dict:
        """Add the motion: a motion pack's flows, else DIS on the crops (:func:`add_crop_flows`)."""
        return add_crop_flows(batch)

    def step_loss(self, net: VQFIGANPair, loss: VQFIGANLoss, batch: dict, rng: np.random.Generator,
                  progress: float = 0.0):
        frames, t, gt = batch["frames"], batch["t"], batch["gt"]
        prior = net.autoencoder.prior(frames[:, 1], frames[:, 2], batch["flows"], t)
        out, quantized = net.autoencoder(gt, frames[:, 1], frames[:, 2], prior)
        total, terms = loss(out, gt, quantized.loss, net.discriminator, progress)
        usage = float(quantized.indices.unique().numel()) / net.config.codebook_size
        return total, terms, {"codebook_usage": usage}

    def interpolator(self, net: VQFIGANPair) -> Reconstruction:
        return Reconstruction(net.autoencoder)

    def export(self, weights: dict, architecture: dict) -> tuple[dict, dict, int]:
        """The autoencoder's weights, architecture and parameter count (the discriminator stays behind)."""
        config = VQFIGANPairConfig.from_dict(architecture["config"]).autoencoder()
        kept = {k[len("autoencoder."):]: v for k, v in weights.items() if k.startswith("autoencoder.")}
        parameters = sum(p.numel() for p in VQFIGAN(config).parameters())
        return kept, {"class": "VQFIGAN", "config": config.to_dict()}, parameters

    def weight_stem(self) -> str:
        return WEIGHT_STEM

    def load_exported(self, path):
        from ...weights import load_network
        return Reconstruction(load_network(path, VQFIGAN, VQFIGANConfig, torch.device("cpu"), torch.float32))


class LatentDiffusionLoss(nn.Module):
    """``forward(prediction, target) -> (total, terms)``: the weighted mean squared error."""

    def __init__(self, weights: LatentDiffusionLossWeights):
        super().__init__()
        self.weights = weights

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        error = (prediction.float() - target.float()).pow(2).mean()
        return self.weights.diffusion * error, {"diffusion": float(error.detach())}


class LatentDenoiserRecipe(NetworkRecipe):
    """LDMVFI's second stage; see the module docstring."""

    name = "ldmvfi"

    def __init__(self):
        self._autoencoder: tuple[str, VQFIGAN] | None = None

    def network_class(self) -> type[nn.Module]:
        from .denoiser import LatentDenoiser
        return LatentDenoiser

    def loss(self, weights: dict) -> nn.Module:
        return LatentDiffusionLoss(LatentDiffusionLossWeights.from_dict(weights))

    def loss_config(self, weights: dict):
        return LatentDiffusionLossWeights.from_dict(weights)

    def terms(self) -> tuple[str, ...]:
        return LatentDiffusionLossWeights.terms()

    @staticmethod
    def _autoencoder_file(path: str | None):
        from pathlib import Path

        from ...registry import WEIGHTS_DIR
        return Path(path) if path is not None else WEIGHTS_DIR / f"{WEIGHT_STEM}.safetensors"

    def autoencoder(self, path: str | None, device: torch.device) -> VQFIGAN:
        """The frozen autoencoder from ``path`` (None: the shipped one), loaded once."""
        from ...errors import InputError
        from ...weights import load_network

        file = self._autoencoder_file(path)
        if self._autoencoder is None or self._autoencoder[0] != str(file):
            if not file.is_file():
                raise InputError(f"ldmvfi learns the latents of a trained autoencoder: {file} is missing (train "
                                 "it with `vfi train ldmvfi-autoencoder`, export it, or set loss.autoencoder)")
            net = load_network(file, VQFIGAN, VQFIGANConfig, device, torch.float32).requires_grad_(False)
            self._autoencoder = (str(file), net)
        return self._autoencoder[1].to(device)

    def step_loss(self, net, loss: LatentDiffusionLoss, batch: dict, rng: np.random.Generator, progress: float = 0.0):
        from ...diffusion import NoiseSchedule

        frames, t, gt = batch["frames"], batch["t"].float(), batch["gt"]
        autoencoder = self.autoencoder(loss.weights.autoencoder, gt.device)
        with torch.no_grad(), torch.autocast(gt.device.type, enabled=False):
            latents = [autoencoder.encode(x.float()).latent for x in (gt, frames[:, 1], frames[:, 2])]
            if float(net.latent_scale) == 0:  # the first step: unit variance from here on
                net.latent_scale.fill_(1.0 / latents[0].std().clamp_min(1e-6))
        scale = net.latent_scale
        x0, z0, z1 = (z * scale for z in latents)
        c = net.config
        schedule = NoiseSchedule(c.schedule, c.timesteps, c.prediction)
        step = torch.as_tensor(rng.integers(0, schedule.timesteps, x0.shape[0]), device=x0.device)
        generator = torch.Generator(device=x0.device).manual_seed(int(rng.integers(0, 2**62)))
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        z = schedule.q_sample(x0, step, noise, torch.ones_like(x0[:, :1, :1, :1]))
        total, terms = loss(net(z, step, z0, z1, t), schedule.target(x0, noise, step))
        return total, terms, {}

    def interpolator(self, net):
        from .pipeline import LDMVFIPipeline
        return LDMVFIPipeline(self.autoencoder(self._autoencoder[0] if self._autoencoder else None,
                                               next(net.parameters()).device), net)

    def weight_stem(self) -> str:
        return DENOISER_STEM

    def card_extras(self, config: dict) -> dict:
        """The autoencoder the denoiser learned the latents of (file name and sha256), so that the
        interpolator refuses another."""
        from ...files import file_sha256

        file = self._autoencoder_file(self.loss_config(config["loss"]).autoencoder)
        return {"autoencoder": {"file": file.name, "sha256": file_sha256(file)}}
