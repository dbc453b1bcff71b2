"""Frame conventions, written down once.

Inside ``vfi_core`` every frame is a ``torch.Tensor`` of shape ``(B, 3, H, W)``, floating point,
values in ``[0, 1]``, RGB; a clip is ``(B, C, T, H, W)``; the time of an intermediate frame is a
tensor ``t`` of shape ``(B,)`` in ``[0, 1]`` (0 is ``frame0``, 1 is ``frame1``).

uint8/uint16 arrays, ``(H, W, C)`` layouts (numpy, PIL, ComfyUI's ``[B, H, W, C]``) and BGR exist
only at the edges; the converters below are the only way in and out.

Padding: a model that needs sizes divisible by ``m`` gets its inputs padded on the right and bottom
by edge replication (replicated edges keep flow estimates at the border sane, unlike zeros), and its
output is cropped back. Callers never pad.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError


def check_frame_pair(frame0: torch.Tensor, frame1: torch.Tensor) -> None:
    """Raise :class:`InputError` unless both are ``(B,3,H,W)`` float tensors of one shape, with at least
    one frame, holding data (not ``meta``), finite and in [0, 1]."""
    for name, x in (("frame0", frame0), ("frame1", frame1)):
        if not isinstance(x, torch.Tensor):
            raise InputError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != 3:
            raise InputError(f"{name} must have shape (B,3,H,W), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise InputError(f"{name} must be a float tensor in [0,1], got {x.dtype}; "
                             "convert uint8 frames with vfi_core.frames.from_numpy")
        if x.device.type == "meta":
            raise InputError(f"{name} is a meta tensor, which holds no pixel values; pass frames on the CPU or a GPU")
    if frame0.shape != frame1.shape:
        raise InputError(f"frames differ in shape: {tuple(frame0.shape)} vs {tuple(frame1.shape)}")
    if frame0.shape[0] == 0:
        raise InputError("the frames hold a batch of 0 frames; pass at least one frame pair, shape (B,3,H,W) with B >= 1")
    if frame0.shape[2] < 2 or frame0.shape[3] < 2:
        raise InputError(f"frames of {frame0.shape[3]}x{frame0.shape[2]} are too small to interpolate")
    for name, x in (("frame0", frame0), ("frame1", frame1)):
        _check_values(name, x)


# Float rounding in a caller's conversion may overshoot [0, 1] by a hair; anything beyond this is a mistake.
_RANGE_SLACK = 1e-3


def _check_values(name: str, x: torch.Tensor) -> None:
    """Refuse NaN, infinities and values outside [0, 1], in one pass (min and max: NaN propagates)."""
    low, high = (float(v) for v in torch.aminmax(x.detach()))
    if math.isnan(low) or math.isnan(high) or math.isinf(low) or math.isinf(high):
        raise InputError(f"{name} contains NaN or infinite values; frames must be finite float RGB in [0, 1]")
    if low < -_RANGE_SLACK or high > 1 + _RANGE_SLACK:
        hint = "; divide 0-255 values by 255" if high > 1.5 else ""
        raise InputError(f"{name} holds values from {low:.4g} to {high:.4g}; frames must be float RGB in [0, 1]"
                         f"{hint} (or clamp them to [0, 1])")


def check_image_pair(pred: torch.Tensor, target: torch.Tensor, what: str, min_size: int = 1) -> None:
    """Raise :class:`InputError` unless both are ``(B,C,H,W)`` float tensors of one shape with ``H, W >=
    min_size``; messages start with ``what`` (the name of the loss or metric that checks)."""
    for name, x in (("pred", pred), ("target", target)):
        if not isinstance(x, torch.Tensor):
            raise InputError(f"{what}: {name} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4:
            raise InputError(f"{what}: {name} must have shape (B,C,H,W), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise InputError(f"{what}: {name} must be a float tensor, got {x.dtype}")
    if pred.shape != target.shape:
        raise InputError(f"{what}: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    if min(pred.shape[-2:]) < min_size:
        raise InputError(f"{what}: needs H and W of at least {min_size}, got {pred.shape[-1]}x{pred.shape[-2]}")


def as_time_tensor(t, batch: int, device: torch.device) -> torch.Tensor:
    """Return ``t`` as a float32 tensor of shape ``(batch,)`` in [0, 1].

    Accepts a tensor of shape ``(B,)``, a 0-d tensor or a Python number (broadcast to the batch).
    """
    if isinstance(t, torch.Tensor) and t.device.type == "meta":
        raise InputError("t is a meta tensor, which holds no values; pass a number or a (B,) tensor of times")
    if isinstance(t, (str, bytes)):
        raise InputError(f"t must be a number or a (B,) tensor of times in [0, 1], got the string {t!r}")
    try:
        t = torch.as_tensor(t, dtype=torch.float32, device=device)
    except (TypeError, ValueError, RuntimeError):
        raise InputError(f"t must be a number or a (B,) tensor of times in [0, 1], got {type(t).__name__}") from None
    if t.ndim == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise InputError(f"t must have shape ({batch},) to match the batch, got {tuple(t.shape)}")
    if not torch.isfinite(t).all() or (t < 0).any() or (t > 1).any():
        raise InputError(f"t must lie in [0, 1], got {t.tolist()}")
    return t.contiguous()


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad ``(B,C,H,W)`` on the right and bottom by edge replication so H and W divide by ``multiple``.

    Returns the padded tensor and the original ``(H, W)`` for :func:`crop_to`.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop the last two dims of ``x`` back to ``size = (H, W)``."""
    return x[..., : size[0], : size[1]]


def from_numpy(image: np.ndarray) -> torch.Tensor:
    """Convert one ``(H,W,3)`` RGB image (uint8, uint16 or float in [0,1]) to a ``(1,3,H,W)`` float32 frame.

    Grayscale ``(H,W)`` or ``(H,W,1)`` is replicated to RGB. Alpha is not accepted here: split it off
    first (:func:`split_alpha`), so that it is never dropped silently.
    """
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise InputError(f"an image must be (H,W) or (H,W,C), got shape {image.shape}")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if image.shape[2] != 3:
        raise InputError(f"expected an RGB image, got {image.shape[2]} channels")
    if image.dtype == np.uint8:
        x = torch.from_numpy(np.ascontiguousarray(image)).float().div_(255.0)
    elif image.dtype == np.uint16:
        x = torch.from_numpy(image.astype(np.float32)).div_(65535.0)
    elif np.issubdtype(image.dtype, np.floating):
        x = torch.from_numpy(image.astype(np.float32)).clamp_(0.0, 1.0)
    else:
        raise InputError(f"unsupported image dtype {image.dtype}")
    return x.permute(2, 0, 1).unsqueeze(0).contiguous()


def to_numpy_uint8(frames: torch.Tensor) -> np.ndarray:
    """Convert ``(B,C,H,W)`` float frames in [0,1] to a ``(B,H,W,C)`` uint8 array (rounded)."""
    x = frames.detach().float().clamp(0.0, 1.0).mul(255.0).round_().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def split_alpha(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Split an ``(H,W,C)`` image into its colour part and its alpha channel (``None`` without one).

    Grayscale+alpha (C=2) gives a grayscale colour part.
    """
    if image.ndim == 3 and image.shape[2] in (2, 4):
        return image[:, :, :-1], image[:, :, -1]
    return image, None
