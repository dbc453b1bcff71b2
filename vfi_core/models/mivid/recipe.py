"""Training recipe of :mod:`vfi_core.models.mivid` (``vfi train mivid``): self-supervised on raw
video windows, no ground-truth middle frames.

Per step, from the step's random stream (so a resumed run repeats the same clips, masks, noise):

1. a clip length ``L`` from ``loss.clip_lengths`` (default 3, 5, 7, 9); per item a span ``S`` in
   ``L-1..8`` frames of its 9-frame window, a start, and ``L-2`` interior frames drawn without
   replacement, so clips have irregular spacing; each frame's time is its position in the span,
   ``tau = (i - first) / S`` (the model sees real times, which is what makes any ``t`` honest at
   inference: a 3-frame clip with its middle frame at ``tau = j/S`` is pair mode at ``t = j/S``);
   then a downscaling factor from ``loss.scales`` (area averaging; default 1: none);
2. the hybrid mask (:func:`~vfi_core.models.mivid.masking.hybrid_mask`) with the curriculum at the
   training progress ``step / steps``;
3. a diffusion step ``t`` uniform in ``0..T-1`` and noise; ``z_t`` noises only masked frames;
4. :class:`~vfi_core.models.mivid.loss.MiVIDLoss`.

The trainer gives the recipe whole windows (``items = "window"``) and passes the training progress
``step / steps`` to :meth:`MiVIDRecipe.step_loss`.

On a GPU, train it beside the other models in one command: ``tools/gpu_train.sh``
(docs/TRAINING.md). The perceptual term reads ``runs/perceptual/vgg_relu3_3.safetensors``.
"""
from __future__ import annotations

import numpy as np
from torch import nn

from ...errors import InputError
from ...train.recipe_base import NetworkRecipe
from .model import masked_clip_loss


class MiVIDRecipe(NetworkRecipe):
    name = "mivid"
    items = "window"   # the TrainingData item mode this recipe needs

    def __init__(self):
        self._schedules: dict = {}

    def network_class(self) -> type[nn.Module]:
        from .model import MiVIDNet
        return MiVIDNet

    def loss(self, weights: dict) -> nn.Module:
        from .loss import MiVIDLoss, MiVIDLossConfig
        return MiVIDLoss(MiVIDLossConfig.from_dict(weights))

    def loss_config(self, weights: dict):
        from .loss import MiVIDLossConfig
        return MiVIDLossConfig.from_dict(weights)

    def terms(self) -> tuple[str, ...]:
        from .loss import TERMS
        return TERMS

    def schedule(self, net: nn.Module):
        from ...diffusion import NoiseSchedule
        c = net.config
        key = (c.schedule, c.timesteps, c.prediction)
        if key not in self._schedules:
            self._schedules[key] = NoiseSchedule(*key)
        return self._schedules[key]

    def step_loss(self, net: nn.Module, loss: nn.Module, batch: dict, rng: np.random.Generator,
                  progress: float = 0.0):
        """One training forward: ``(total, terms, {})`` (see the module docstring)."""
        windows = batch["frames"]
        if "gt" in batch or windows.ndim != 5 or windows.shape[1] < 3:
            raise InputError(f"{self.name} trains on whole windows: the trainer must build TrainingData(..., "
                             "items=recipe.items) (got four-frame items)")
        total, terms = masked_clip_loss(net, loss, windows, rng, self.schedule(net), progress)
        return total, terms, {}

    def interpolator(self, net: nn.Module):
        """The network as an interpolator (default steps, the blend guide: dev crops are generated
        at full size, where the guide plays no part)."""
        from .model import MiVID
        return MiVID.from_network(net, guide="blend")
