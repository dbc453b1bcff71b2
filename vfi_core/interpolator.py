"""The interpolator protocol every registered model implements."""
from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch

from .frames import as_time_tensor, check_frame_pair, crop_to, pad_to_multiple
from .registry import ModelDescriptor


class Interpolation(NamedTuple):
    """An interpolated frame ``(B,3,H,W)`` in [0,1] and, where the model gives one, a confidence map
    ``(B,1,H,W)`` in [0,1] (1 = sure; low values mark where artefacts are likely)."""

    frame: torch.Tensor
    confidence: torch.Tensor | None = None


class Interpolator:
    """Base class: input checks, device/dtype, padding and cropping live here once.

    Subclasses implement :meth:`_interpolate` on padded inputs already on the model's device and
    dtype, with sizes divisible by ``descriptor.size_multiple``.
    """

    descriptor: ClassVar[ModelDescriptor]

    def __init__(self, *, descriptor: ModelDescriptor, device: torch.device, dtype: torch.dtype,
                 params: dict, weights=None, weight_dirs: tuple = ()):
        self.descriptor = descriptor
        self.device = device
        self.dtype = dtype
        self.params = dict(params)
        self.weights = weights
        # folders searched before the shipped weights for further weight files (the refine stage's)
        self.weight_dirs = tuple(weight_dirs)
        self._check_motion(self.params)

    @classmethod
    def from_network(cls, network: torch.nn.Module, device=None, **params) -> "Interpolator":
        """Wrap an in-memory network (e.g. during training) as this interpolator, in float32; for the
        models built around one trainable network, whose ``__init__`` takes ``network=``."""
        desc = cls.descriptor
        dev = torch.device(device) if device is not None else next(network.parameters()).device
        return cls(network=network, descriptor=desc, device=dev, dtype=torch.float32,
                   params=desc.resolve_params(params))

    def on_network(self, network: torch.nn.Module, **extra) -> "Interpolator":
        """The same interpolator (descriptor, device, dtype, parameters, weight folders) on another
        network, e.g. an adapted copy; ``extra`` goes to ``__init__`` beside ``network=``."""
        return type(self)(network=network, descriptor=self.descriptor, device=self.device, dtype=self.dtype,
                          params=self.params, weights=self.weights, weight_dirs=self.weight_dirs, **extra)

    @property
    def name(self) -> str:
        return self.descriptor.name

    def seconds_per_megapixel(self) -> float | None:
        """Measured seconds per megapixel of an interpolated frame on this model's device with its
        parameters (the descriptor's figure; models whose parameters add work add it), or None."""
        return self.descriptor.seconds_per_megapixel.get(torch.device(self.device).type)

    def adaptation(self):
        """What per-clip adaptation needs (:class:`vfi_core.adapt.Adaptation`), or None for a model
        that does not adapt (``descriptor.adaptable`` is False)."""
        return None

    def set_params(self, **params) -> None:
        """Change declared parameters without reloading; each is validated against its range."""
        values = {key: self.descriptor.param(key).validate(value) for key, value in params.items()}
        self._check_motion(values)
        self.params.update(values)

    @staticmethod
    def _check_motion(params: dict) -> None:
        """A RAFT motion choice without the RAFT weights fails here, before any work, in one line."""
        if "motion" in params:
            from .flow import resolve_motion

            resolve_motion(params["motion"])

    @torch.inference_mode()
    def interpolate_with_confidence(self, frame0: torch.Tensor, frame1: torch.Tensor, t) -> Interpolation:
        """Like :meth:`interpolate`, also returning the confidence map (``None`` if the model has none)."""
        check_frame_pair(frame0, frame1)
        batch, _, h, w = frame0.shape
        t = as_time_tensor(t, batch, self.device)
        out_dtype, out_device = frame0.dtype, frame0.device
        m = self.descriptor.size_multiple
        x0, size = pad_to_multiple(frame0.to(self.device, self.dtype), m)
        x1, _ = pad_to_multiple(frame1.to(self.device, self.dtype), m)
        result = self._interpolate(x0, x1, t)
        frame = crop_to(result.frame, size).clamp(0.0, 1.0).to(out_device, out_dtype)
        conf = result.confidence
        if conf is not None:
            conf = crop_to(conf, size).clamp(0.0, 1.0).to(out_device, out_dtype)
        return Interpolation(frame, conf)

    def interpolate(self, frame0: torch.Tensor, frame1: torch.Tensor, t) -> torch.Tensor:
        """Interpolate between two frames.

        Args:
            frame0, frame1: ``(B,3,H,W)`` float RGB in [0,1], any size (padding is done here).
            t: ``(B,)`` times in [0,1] (a Python float is broadcast); 0 is ``frame0``.

        Returns:
            ``(B,3,H,W)`` in [0,1], same dtype and device as ``frame0``.
        """
        return self.interpolate_with_confidence(frame0, frame1, t).frame

    def _interpolate(self, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor) -> Interpolation:
        raise NotImplementedError
