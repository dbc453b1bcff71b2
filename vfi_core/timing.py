"""Source and output frames in time, and exact frame rates.

A :class:`TimedFrame` is a source frame with its presentation time; an :class:`OutputFrame` is what
:mod:`vfi_core.pipeline` yields and the writers of :mod:`vfi_core.io` take. Rates are exact
:class:`fractions.Fraction` s; :func:`parse_fps` reads them as users type them. Both the pipeline and
the readers and writers build on this module, which imports neither.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable, Iterator, NamedTuple

import torch

from .errors import InputError

__all__ = ["NTSC_DECIMALS", "OutputFrame", "TimedFrame", "frames_at_rate", "parse_fps"]

# Decimal spellings of the NTSC rates (k * 1000/1001) that users type; each maps to its exact fraction.
NTSC_DECIMALS = {
    "23.976": Fraction(24000, 1001), "23.98": Fraction(24000, 1001),
    "29.97": Fraction(30000, 1001), "47.952": Fraction(48000, 1001), "47.95": Fraction(48000, 1001),
    "59.94": Fraction(60000, 1001), "119.88": Fraction(120000, 1001), "239.76": Fraction(240000, 1001),
}


def parse_fps(value: str | int | float | Fraction) -> Fraction:
    """An exact frame rate from ``"60"``, ``"60000/1001"``, ``"59.94"``, a number or a Fraction.

    The NTSC decimals in :data:`NTSC_DECIMALS` (23.976, 23.98, 29.97, 47.952, 59.94, 119.88, 239.76)
    mean their exact ``k*1000/1001`` rates; other decimals are taken literally (``"12.5"`` is 25/2).
    """
    if isinstance(value, Fraction):
        rate = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        rate = parse_fps(repr(float(value))) if isinstance(value, float) else Fraction(value)
    elif isinstance(value, str):
        text = value.strip()
        if text in NTSC_DECIMALS:
            return NTSC_DECIMALS[text]
        try:
            rate = Fraction(text)
        except (ValueError, ZeroDivisionError):
            raise InputError(f"frame rate {value!r} is not a number or a fraction like 60000/1001") from None
    else:
        raise InputError(f"frame rate must be a number or a string, got {type(value).__name__}")
    if rate <= 0:
        raise InputError(f"frame rate must be positive, got {value}")
    return rate


@dataclass(frozen=True)
class TimedFrame:
    """One source frame: ``rgb`` ``(1,3,H,W)`` float in [0,1], optional ``alpha`` ``(1,1,H,W)`` in [0,1],
    its presentation ``time`` in seconds and, where known, how long it is shown (``duration``)."""

    rgb: torch.Tensor
    alpha: torch.Tensor | None
    time: Fraction
    duration: Fraction | None = None


class OutputFrame(NamedTuple):
    """One output frame: ``rgb`` ``(1,3,H,W)`` and ``alpha`` ``(1,1,H,W)`` or None, float in [0,1];
    ``confidence`` ``(1,1,H,W)`` in [0,1] for an interpolated frame of a model that gives one
    (1 = sure), None for a source frame passed through or a model without confidence."""

    rgb: torch.Tensor
    alpha: torch.Tensor | None
    confidence: torch.Tensor | None = None


def frames_at_rate(images: Iterable[torch.Tensor], fps: Fraction,
                   alphas: Iterable[torch.Tensor] | None = None) -> Iterator[TimedFrame]:
    """Timestamp frames ``(1,3,H,W)`` (and alphas ``(1,1,H,W)``) at a constant ``fps``, starting at 0."""
    alpha_iter = iter(alphas) if alphas is not None else None
    for i, rgb in enumerate(images):
        alpha = next(alpha_iter) if alpha_iter is not None else None
        yield TimedFrame(rgb, alpha, Fraction(i) / fps, 1 / fps)
