"""Training recipe of :mod:`vfi_core.models.pervfi` (imported lazily by :mod:`vfi_core.train.recipes`)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...train.recipe_base import NetworkRecipe


class PerVFIRecipe(NetworkRecipe):
    """PerVFI: :class:`~vfi_core.models.pervfi.loss.PerVFILoss` on the network's condition.

    With a learned motion refiner, a share ``dis_probability`` of the steps runs on the estimated
    motion alone (the refiner bypassed, ``refine_motion=false``): the blending then learns to cope
    with both motions' errors, as the paper trains on RAFT and GMFlow flows drawn at random. The choice is drawn from the step's random stream (resumable).

    On a GPU, train it beside the other models in one command: ``tools/gpu_train.sh``
    (docs/TRAINING.md). The perceptual term reads ``runs/perceptual/vgg_relu3_3.safetensors``.
    """

    name = "pervfi"
    dis_probability = 0.25

    def network_class(self) -> type[nn.Module]:
        from .model import PerVFINet
        return PerVFINet

    def loss(self, weights: dict) -> nn.Module:
        from .loss import PerVFILoss, PerVFILossWeights
        return PerVFILoss(PerVFILossWeights.from_dict(weights))

    def loss_config(self, weights: dict):
        from .loss import PerVFILossWeights
        return PerVFILossWeights.from_dict(weights)

    def terms(self) -> tuple[str, ...]:
        from .loss import PerVFILossWeights
        return PerVFILossWeights.terms()

    def prepare_batch(self, batch: dict, architecture) -> dict:
        """Add the motion (``"dis_flows"`` ``(B,4,h,w)``) where batches are made (data workers): the
        pack's flows when the batch carries them (a motion-crop pack, estimated on whole frames),
        else the estimator of the ``motion`` parameter's default (RAFT refined by DIS where the RAFT
        weights are installed) on the crops, as PerVFI runs it at inference."""
        from ...flow import MotionEstimator, capped_flows, resolve_motion
        from ...ops.warp import resize_flow

        if "flows" in batch:
            flows = batch.pop("flows")
            return {**batch, "dis_flows": flows}
        frames = batch["frames"]
        estimator = MotionEstimator(resolve_motion("auto"), architecture.dis_preset, 0,
                                    architecture.dis_global_motion)
        with torch.no_grad():
            flows = capped_flows(frames[:, 1], frames[:, 2], estimator, architecture.dis_max_side)
        return {**batch, "dis_flows": resize_flow(flows, frames.shape[-2:])}

    def step_loss(self, net: nn.Module, loss: nn.Module, batch: dict, rng: np.random.Generator,
                  progress: float = 0.0):
        """``(total, terms, {})`` for one batch (pair mode: frames ``I0``, ``I1`` of the stack)."""
        motion = "learned" if net.has_learned_motion and rng.random() >= self.dis_probability else "dis"
        frames = batch["frames"]
        cond = net.condition(frames[:, 1], frames[:, 2], batch["t"], motion, dis_flows=batch.get("dis_flows"))
        total, terms = loss(net, cond, batch)
        return total, terms, {}

    def interpolator(self, net: nn.Module):
        """The network as an interpolator at the declared default temperature and seed."""
        from .model import PerVFI
        return PerVFI.from_network(net)
