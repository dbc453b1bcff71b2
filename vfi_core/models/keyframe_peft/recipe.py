"""Training recipe of :mod:`vfi_core.models.keyframe_peft` (``vfi train keyframe-peft``): the
noise-prediction loss on 7-frame clips with the first and last frames given and the five between
them generated, as the paper; only the condition encoder and the keyframe attention train, the base
stays frozen (it is not among the network's parameters).

Each step is MiVID's (:func:`~vfi_core.models.mivid.model.masked_clip_loss`: clips cut from the
trainer's 9-frame windows with irregular spacing and real frame times, a diffusion step, noise on
the masked frames only, :class:`~vfi_core.models.mivid.loss.MiVIDLoss`) with the masking fixed to
the keyframe protocol: every frame between the ends masked. A config's ``loss`` section may change
the weights, and (for ablations) ``clip_lengths`` and ``masking``.
"""
from __future__ import annotations

from torch import nn

from ..mivid.recipe import MiVIDRecipe
from .model import KEYFRAME_MASKING

KEYFRAME_LOSS = {"masking": KEYFRAME_MASKING, "clip_lengths": [7]}


class KeyframePEFTRecipe(MiVIDRecipe):
    name = "keyframe-peft"

    def network_class(self) -> type[nn.Module]:
        from .model import KeyframePEFTNet
        return KeyframePEFTNet

    def loss(self, weights: dict) -> nn.Module:
        from ..mivid.loss import MiVIDLoss
        return MiVIDLoss(self.loss_config(weights))

    def loss_config(self, weights: dict):
        from ..mivid.loss import MiVIDLossConfig
        return MiVIDLossConfig.from_dict({**KEYFRAME_LOSS, **weights})

    def interpolator(self, net: nn.Module):
        """The network as an interpolator (default steps, the blend guide: dev crops are generated
        at full size, where the guide plays no part)."""
        from .model import KeyframePEFT
        return KeyframePEFT.from_network(net, guide="blend")
