"""Training recipe of :mod:`vfi_core.models.svmv` (imported by the trainer when it trains svmv)."""
from __future__ import annotations

import numpy as np
from torch import nn

from ...train.recipe_base import NetworkRecipe


class SVMVRecipe(NetworkRecipe):
    """Training recipe of :mod:`vfi_core.models.svmv`: random ensemble size ``M`` per step (in the
    trained range), :class:`~vfi_core.models.svmv.loss.SVMVLoss`."""

    name = "svmv"

    def network_class(self) -> type[nn.Module]:
        from .model import SVMVNet
        return SVMVNet

    def loss(self, weights: dict) -> nn.Module:
        from .loss import SVMVLoss, SVMVLossWeights
        return SVMVLoss(SVMVLossWeights.from_dict(weights))

    def terms(self) -> tuple[str, ...]:
        from .loss import SVMVLossWeights
        return SVMVLossWeights.terms()

    def loss_config(self, weights: dict):
        from .loss import SVMVLossWeights
        return SVMVLossWeights.from_dict(weights)

    def ensemble_range(self, net: nn.Module) -> tuple[int, int]:
        from .model import ENSEMBLE_RANGE
        return ENSEMBLE_RANGE[0], min(ENSEMBLE_RANGE[1], net.config.ensemble_max)

    def prepare_batch(self, batch: dict, architecture) -> dict:
        """Add the motion prior (``"prior"``) to a batch; runs where batches are made (the data
        workers on a GPU machine), so that OpenCV's flow never stalls the training step. A
        motion-crop pack's batch carries the flows the ``motion`` parameter's default estimator
        found on the whole frames, as at inference: they are the prior (at the DIS grid's size,
        which a crop no larger than ``dis_max_side`` keeps). Other batches get DIS on the crops."""
        from .model import dis_prior
        from ...ops.flow import capped_size
        from ...ops.warp import resize_flow

        frames = batch["frames"]
        if "flows" in batch and architecture.flow_prior != "none":
            flows = batch.pop("flows")
            grid = capped_size(*frames.shape[-2:], architecture.dis_max_side)
            return {**batch, "prior": resize_flow(flows, grid)}
        batch.pop("flows", None)
        return {**batch, "prior": dis_prior(frames[:, 1], frames[:, 2], architecture)}

    def step_loss(self, net: nn.Module, loss: nn.Module, batch: dict, rng: np.random.Generator,
                  progress: float = 0.0):
        """Forward one batch with a random ``M``: ``(total, terms, {"ensemble": M})``. Every recipe takes
        the training ``progress`` (step / steps, for curricula); SVMV has none."""
        low, high = self.ensemble_range(net)
        m = int(rng.integers(low, high + 1))
        output = net(batch["frames"], batch["t"], ensemble=m, prior=batch.get("prior"))
        total, terms = loss(output, batch)
        return total, terms, {"ensemble": m}

    def interpolator(self, net: nn.Module):
        """The network as an interpolator at the declared default ``M`` (or ``ensemble_max`` if smaller)."""
        from .model import SVMV
        default = SVMV.descriptor.param("ensemble").default
        return SVMV.from_network(net, ensemble=min(default, net.config.ensemble_max))
