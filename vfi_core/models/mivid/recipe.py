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
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import InputError
from ...train.recipe_base import NetworkRecipe


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

    @staticmethod
    def cut_clips(windows: torch.Tensor, length: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Clips of ``length`` frames from windows ``(B,W,3,h,w)``: ``(B,3,length,h,w)`` and times ``(B,length)``."""
        b, w = windows.shape[:2]
        if not 3 <= length <= w:
            raise InputError(f"mivid: clips of {length} frames cannot be cut from windows of {w}")
        index, times = [], []
        for _ in range(b):
            span = int(rng.integers(length - 1, w))
            first = int(rng.integers(0, w - span))
            inner = np.sort(rng.choice(np.arange(1, span), size=length - 2, replace=False))
            offsets = np.concatenate(([0], inner, [span]))
            index.append(first + offsets)
            times.append(offsets / span)
        index = torch.as_tensor(np.stack(index), device=windows.device)
        clips = torch.stack([windows[i, index[i]] for i in range(b)]).transpose(1, 2)
        return clips, torch.as_tensor(np.stack(times), dtype=torch.float32, device=windows.device)

    def step_loss(self, net: nn.Module, loss: nn.Module, batch: dict, rng: np.random.Generator,
                  progress: float = 0.0):
        """One training forward: ``(total, terms, {})`` (see the module docstring)."""
        from .model import network_base
        from .masking import hybrid_mask

        windows = batch["frames"]
        if "gt" in batch or windows.ndim != 5 or windows.shape[1] < 3:
            raise InputError("mivid trains on whole windows: the trainer must build TrainingData(..., "
                             "items=recipe.items) (got four-frame items)")
        lengths = [n for n in loss.config.clip_lengths if n <= windows.shape[1]]
        if not lengths:
            raise InputError(f"mivid: no clip length in {loss.config.clip_lengths} fits windows of {windows.shape[1]}")
        length = lengths[int(rng.integers(0, len(lengths)))]
        clips, tau = self.cut_clips(windows, length, rng)
        scale = loss.config.scales[int(rng.integers(0, len(loss.config.scales)))]
        if scale > 1:
            from .model import SIZE_MULTIPLE
            h, w = clips.shape[-2:]
            if h % (scale * SIZE_MULTIPLE) or w % (scale * SIZE_MULTIPLE):
                raise InputError(f"mivid: crops of {w}x{h} do not divide by {scale * SIZE_MULTIPLE} (scale {scale})")
            clips = F.avg_pool3d(clips, (1, scale, scale))
        mask = hybrid_mask(clips, rng, loss.masking, progress)
        schedule = self.schedule(net)
        b = clips.shape[0]
        x0 = clips * 2 - 1
        t = torch.as_tensor(rng.integers(0, schedule.timesteps, b), device=x0.device)
        generator = torch.Generator(device=x0.device).manual_seed(int(rng.integers(0, 2**62)))
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        z = schedule.q_sample(x0, t, noise, mask)
        visible = torch.where(mask.bool(), torch.zeros_like(x0), x0)
        base = network_base(net.config.base, clips, mask, tau)
        output = net(z, visible, base, mask, tau, t)
        x0_hat, _ = schedule.split(z, output.float(), t, clip=None)
        total, terms = loss(output, schedule.target(x0, noise, t), x0_hat, x0, mask, schedule.abar(t, x0).view(b))
        return total, terms, {}

    def interpolator(self, net: nn.Module):
        """The network as an interpolator (default steps, the blend guide: dev crops are generated
        at full size, where the guide plays no part)."""
        from .model import MiVID
        return MiVID.from_network(net, guide="blend")
