"""Detail restoration: a compact learned stage after a flow-based interpolator's warp and blend.

Warping resamples (bilinear: a low-pass filter) and blending averages two imperfect alignments, so
the frames of ``flow-asb`` and ``svmv`` are softer than their inputs, most where motion is large.
:class:`RefineNet` takes what such a model already computed at time t,

- ``warped0``, ``warped1``: frames 0 and 1 warped to t ``(B,3,H,W)``,
- ``blended``: the model's frame ``(B,3,H,W)``,
- ``weight1``: the share of frame 1 in that blend ``(B,1,H,W)`` in [0,1] (0 or 1 where the other
  frame is occluded),
- ``confidence``: the model's confidence ``(B,1,H,W)`` in [0,1],

plus the time ``t`` ``(B,)``, and returns

    ``blended + s * (d * (warped1 - warped0) + r)``

with a residual ``r`` ``(B,3,H,W)`` (detail that warping and averaging lost) and ``d`` ``(B,1,H,W)``, a
per-pixel shift of the blend towards one warped frame (where averaging two alignments ghosts, the
better one alone is sharper), ``d`` bounded so that the blend weight stays in [0,1]. ``s`` is the
``refine`` parameter (0: the model's frame unchanged, 1: the trained stage). The last layer starts
at zero, so an untrained stage is the identity.

Network: a four-level U-Net whose stem is the only full-resolution convolution (12 -> 8 channels);
it works at 1/2, 1/4 and 1/8 of the frame and returns to full size by a pixel shuffle, then one
full-resolution convolution joins the result with the stem's features. About 24 GFLOP per
megapixel: a fraction of the models it follows (``vfi bench`` gives the figures).

Weights: ``vfi_core/weights/refine.safetensors`` with its model card (architecture, training legs,
dev figures); trained with ``vfi train refine`` on the frames the default model warps and blends
(:mod:`vfi_core.models.refine.recipe`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ...cancellation import check_cancelled
from ...config import ModelConfig
from ...errors import InputError, WeightsError
from ...registry import WEIGHTS_DIR, Param

WEIGHT_FILE = "refine.safetensors"
# What the stage adds to a model's time: `vfi bench --model svmv -p refine=1` against `-p refine=0` on
# 24 davis_gap1 pairs (854x480), one CPU core: +0.245 s a frame. Not yet timed on a GPU.
SECONDS_PER_MEGAPIXEL = {"cpu": 0.6}
INPUT_CHANNELS = 12  # warped0 3, warped1 3, blended 3, weight1 1, confidence 1, t 1


def add_cost(base: float | None, added: float | None) -> float | None:
    """A model's seconds per megapixel with a stage's added on top; None when either is unknown."""
    return None if base is None or added is None else base + added


def refine_param(default: float = 0.0) -> Param:
    """The ``refine`` parameter every model that can use the stage declares (one declaration)."""
    return Param("refine", float, default, "Learned detail restoration after the blend: 0 leaves the blended "
                 "frame as it is, 1 applies the trained stage (sharper detail, less ghosting).",
                 min=0.0, max=1.0, step=0.05)


class RestorationInputs(NamedTuple):
    """What a flow-based model hands the detail-restoration stage (see the module docstring)."""

    warped0: torch.Tensor
    warped1: torch.Tensor
    blended: torch.Tensor
    weight1: torch.Tensor
    confidence: torch.Tensor

    def check(self, t: torch.Tensor) -> None:
        """Raise :class:`InputError` unless the shapes agree (``(B,3,H,W)``, ``(B,1,H,W)``, ``t`` ``(B,)``)."""
        b, _, h, w = self.blended.shape
        for name, value, channels in zip(self._fields, self, (3, 3, 3, 1, 1)):
            if value.shape != (b, channels, h, w):
                raise InputError(f"refine: {name} must be ({b},{channels},{h},{w}), got {tuple(value.shape)}")
        if t.shape != (b,):
            raise InputError(f"refine: t must have shape ({b},), got {tuple(t.shape)}")


@dataclass(frozen=True)
class RefineConfig(ModelConfig):
    """Architecture of :class:`RefineNet` (saved in the model card as ``architecture.config``).

    Args:
        stem: channels of the full-resolution stem.
        widths: channels at 1/2, 1/4 and 1/8 of the frame.
        selection: predict the per-pixel shift ``d`` towards one warped frame (else the residual only).
    """

    config_name = "refine"

    stem: int = 8
    widths: tuple[int, int, int] = (24, 32, 48)
    selection: bool = True

    def __post_init__(self):
        if len(self.widths) != 3 or min(self.widths) < 1 or self.stem < 1:
            raise InputError("refine config: widths needs 3 positive entries (1/2, 1/4, 1/8) and stem >= 1")


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.1, inplace=True))


class RefineNet(nn.Module):
    """The detail-restoration network (see the module docstring).

    Args:
        config: a :class:`RefineConfig` (or a dict for :meth:`RefineConfig.from_dict`).
    """

    size_multiple = 8

    def __init__(self, config: RefineConfig | dict | None = None):
        super().__init__()
        config = RefineConfig.coerce(config)
        self.config = config
        w1, w2, w3 = config.widths
        self.stem = _conv(INPUT_CHANNELS, config.stem)
        self.down1 = nn.Sequential(_conv(config.stem, w1, 2), _conv(w1, w1))
        self.down2 = nn.Sequential(_conv(w1, w2, 2), _conv(w2, w2))
        self.down3 = nn.Sequential(_conv(w2, w3, 2), _conv(w3, w3), _conv(w3, w3))
        self.up2 = nn.Sequential(_conv(w3 + w2, w2), _conv(w2, w2))
        self.up1 = nn.Sequential(_conv(w2 + w1, w1), _conv(w1, w1))
        self.outputs = 3 + (1 if config.selection else 0)
        self.to_full = _conv(w1, 4 * self.outputs)  # pixel shuffle: 4 sub-pixels per channel
        self.head = nn.Conv2d(self.outputs + config.stem, self.outputs, 3, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def corrections(self, inputs: RestorationInputs, t: torch.Tensor) -> torch.Tensor:
        """``(B,outputs,H,W)``: the residual ``r`` (3 channels) and, with selection, ``d``'s logit.
        H and W must divide by 8."""
        inputs.check(t)
        b, _, h, w = inputs.blended.shape
        if h % self.size_multiple or w % self.size_multiple:
            raise InputError(f"refine: H and W must divide by {self.size_multiple}, got {w}x{h}")
        tt = t.to(inputs.blended.dtype).view(b, 1, 1, 1).expand(b, 1, h, w)
        x = torch.cat((inputs.warped0, inputs.warped1, inputs.blended, inputs.weight1, inputs.confidence, tt), 1)
        stem = self.stem(x * 2 - 1)
        s1 = self.down1(stem)
        s2 = self.down2(s1)
        check_cancelled()
        s3 = self.down3(s2)
        u2 = self.up2(torch.cat((F.interpolate(s3, size=s2.shape[-2:], mode="bilinear", align_corners=False), s2), 1))
        u1 = self.up1(torch.cat((F.interpolate(u2, size=s1.shape[-2:], mode="bilinear", align_corners=False), s1), 1))
        full = F.pixel_shuffle(self.to_full(u1), 2)
        return self.head(torch.cat((full, stem), 1))

    def forward(self, inputs: RestorationInputs, t: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
        """The restored frame ``(B,3,H,W)`` (not clamped).

        Args:
            inputs: :class:`RestorationInputs`, float, H and W divisible by 8.
            t: ``(B,)`` times in [0,1].
            strength: ``s`` of the module docstring, in [0,1].
        """
        out = self.corrections(inputs, t)
        change = out[:, :3]
        if self.config.selection:
            w1 = inputs.weight1
            # the blend weight of frame 1 moves by d, staying in [0,1]
            d = torch.where(out[:, 3:] >= 0, (1 - w1), w1) * torch.tanh(out[:, 3:])
            change = change + d * (inputs.warped1 - inputs.warped0)
        return inputs.blended + strength * change


def refine_weights_path(search_dirs: tuple[Path, ...] = ()) -> Path | None:
    """Where ``refine.safetensors`` is: ``search_dirs`` first, then the shipped weights; None if absent."""
    for folder in (*search_dirs, WEIGHTS_DIR):
        path = Path(folder) / WEIGHT_FILE
        if path.is_file():
            return path
    return None


class DetailRestorer:
    """The stage as a model uses it: the network loaded on first use, run on a model's
    :class:`RestorationInputs` at the ``refine`` strength, in float32 on the model's device.

    Args:
        device: where the model runs.
        network: an in-memory :class:`RefineNet` (training, tests); loaded from ``weights`` (or the
            shipped ``refine.safetensors``) when ``None``.
        weights: an explicit weight file.
        search_dirs: folders searched for ``refine.safetensors`` before the shipped weights.
    """

    def __init__(self, device: torch.device, network: RefineNet | None = None, weights: str | Path | None = None,
                 search_dirs: tuple[Path, ...] = ()):
        self.device = device
        self.network = network
        self.weights = weights
        self.search_dirs = tuple(search_dirs)

    def _load(self) -> RefineNet:
        if self.network is None:
            from ...weights import load_network

            path = Path(self.weights) if self.weights is not None else refine_weights_path(self.search_dirs)
            if path is None or not path.is_file():
                raise WeightsError(f"refine > 0 needs the detail-restoration weights {WEIGHT_FILE}, which are not in "
                                   "vfi_core/weights/ nor a weight folder given (train and export them with "
                                   "`vfi train refine` / `vfi export`), or set refine=0")
            self.network = load_network(path, RefineNet, RefineConfig, self.device, torch.float32)
        return self.network

    @staticmethod
    def added_seconds_per_megapixel(device_type: str, strength: float) -> float | None:
        """What the stage adds to a frame's time at ``strength`` on ``device_type`` (None: not measured there)."""
        return 0.0 if strength <= 0 else SECONDS_PER_MEGAPIXEL.get(device_type)

    def __call__(self, inputs: RestorationInputs, t: torch.Tensor, strength: float) -> torch.Tensor:
        """The restored ``(B,3,H,W)`` frame; ``inputs.blended`` itself when ``strength`` is 0."""
        if strength <= 0:
            return inputs.blended
        net = self._load()
        h, w = inputs.blended.shape[-2:]
        m = net.size_multiple
        pad = (0, (-w) % m, 0, (-h) % m)
        padded = RestorationInputs(*(F.pad(x.float(), pad, mode="replicate") for x in inputs))
        out = net(padded, t.float(), strength)
        return out[..., :h, :w].to(inputs.blended.dtype)
