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

Loss: :mod:`.loss`.
"""
from __future__ import annotations


import numpy as np
import torch
from torch import nn

from ...errors import InputError
from ...train.recipe_base import NetworkRecipe, add_crop_flows
from .loss import RefineLoss, RefineLossWeights


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
        """Add the motion: a motion pack's flows, else DIS on the crops (:func:`add_crop_flows`)."""
        return add_crop_flows(batch)

    def base_inputs(self, batch: dict, use_flow_asb: bool):
        """The frozen base model's :class:`~vfi_core.models.refine.RestorationInputs` for a batch, at
        the model's default settings (what the stage meets at inference)."""
        from ..flow_asb import FlowASB, synthesize
        from ..svmv.model import SVMV, restoration_inputs

        frames, t, flows = batch["frames"], batch["t"], batch["flows"]
        descriptor = FlowASB.descriptor if use_flow_asb else SVMV.descriptor
        blend = {name: descriptor.param(name).default for name in ("selection", "sharpness")}
        with torch.no_grad(), torch.autocast(frames.device.type, enabled=False):
            if use_flow_asb:
                return synthesize(frames[:, 1], frames[:, 2], flows[:, :2], flows[:, 2:], t, **blend)[1]
            base = self.base_network(frames.device)
            out = base(frames.float(), t.float(), ensemble=SVMV.descriptor.param("ensemble").default,
                       prior=flows.float(), **blend)
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
