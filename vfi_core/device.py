"""Device and dtype selection, in one place for every front end."""
from __future__ import annotations

import torch

from .errors import InputError

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
           "fp16": torch.float16, "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}

# Device types that run models here; torch also names others (meta: shapes only, no data).
_COMPUTE_TYPES = ("cpu", "cuda", "mps")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Return the device to run on: the one asked for, else CUDA, then MPS, then CPU.

    Asking for a device that is not available is an error, never a silent fallback.
    """
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps") from exc
    if dev.type not in _COMPUTE_TYPES:
        raise InputError(f"device {str(device)!r} cannot run a model: use auto, cpu, cuda, cuda:N or mps")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} was asked for but CUDA is not available here")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InputError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError(f"device {device!r} was asked for but MPS is not available here")
    return dev


def resolve_dtype(dtype: str | torch.dtype | None, *, supports_half: bool, model: str,
                  device: torch.device | None = None) -> torch.dtype:
    """Return the compute dtype: float32 unless half precision is asked for and the model supports it.

    Half precision on the CPU is refused: there float16 convolutions run tens of times slower than
    float32 (RAFT: about 40x on two cores), the opposite of what it is asked for.
    """
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise InputError(f"unknown dtype {dtype!r}: use one of {sorted(set(_DTYPES))}")
        dtype = _DTYPES[dtype]
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise InputError(f"dtype must be float32, float16 or bfloat16, got {dtype}")
    if dtype != torch.float32 and not supports_half:
        raise InputError(f"model {model!r} does not support half precision; run it in float32")
    if dtype != torch.float32 and device is not None and device.type == "cpu":
        raise InputError("half precision is for GPUs (CUDA, MPS): on the CPU it runs tens of times slower "
                         "than float32; run without --half")
    return dtype


def synchronize(device: str | torch.device) -> None:
    """Wait for the work queued on ``device`` (CUDA, MPS), so that a timing covers it; on the CPU,
    where work is done when the call returns, nothing."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
