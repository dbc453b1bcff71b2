"""Bounded work: a job is checked against :class:`WorkLimits` before its first model call.

Every entry (``vfi interpolate``, the web app, the ComfyUI nodes) runs its frames through
:class:`~vfi_core.pipeline.InterpolatedStream`, which knows the frame size at the first frame and,
when the source's frame count is known, how many frames the output will have
(:meth:`~vfi_core.pipeline.SequenceOptions.output_count`). It refuses, with one line that names the
limit and how to raise it:

- an output of more than ``max_frames`` frames (``--fps 1e9`` or ``-m 1000`` on a real clip); a
  source of unknown length is stopped when its output passes the limit;
- frames of more than ``max_megapixels`` (a 20000x20000 pair);
- frames whose working copies would not fit in the memory the machine has free;
- work estimated at more than ``max_hours``, from the model's declared cost
  (:attr:`~vfi_core.registry.ModelDescriptor.seconds_per_megapixel`) on the device it runs on;
  once the job's second model call has been timed (the first warms up), the time is checked again
  from that measured speed, so a device without a declared cost, or slower than the one the cost
  was measured on, is bounded too.

The defaults suit a workstation; the web app sets stricter ones. Image files are also checked
against ``max_megapixels`` from their header, before anything is decoded.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import InputError

# working copies of a frame while a pair is interpolated: the decoded uint8 frames and their float32
# copies (source, held key frame, output), the model's inputs and outputs; tiling bounds the rest
BYTES_PER_PIXEL = 3 * (1 + 4 * 8)


class LimitError(InputError):
    """A job over one of its :class:`WorkLimits`: the message names the limit and how to raise it."""


def available_memory() -> int | None:
    """Bytes of memory free for a new job (``MemAvailable`` where the OS reports it), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


@dataclass(frozen=True)
class WorkLimits:
    """What one job may ask for. ``raise_with`` says how each limit (frames, megapixels, hours) is
    raised where the job comes from (the CLI's options by default), so that a refusal says what to
    change."""

    max_frames: int = 1_000_000
    max_megapixels: float = 64.0
    max_hours: float = 48.0
    memory_share: float = 0.8
    raise_with: tuple[str, str, str] = ("--max-frames raises it", "--max-megapixels raises it",
                                        "--max-hours raises it")

    def __post_init__(self):
        for name, how in zip(("max_frames", "max_megapixels", "max_hours"), self.raise_with):
            value = getattr(self, name)
            if not value > 0 or value != value or value == float("inf"):
                raise InputError(f"the limit {name} must be a positive finite number, got {value!r} ({how})")

    def check_image(self, width: int, height: int | None, what: str) -> None:
        """Refuse an image larger than ``max_megapixels`` (read from its header, before decoding);
        ``height`` None: ``width`` is the pixel count."""
        megapixels = width * (height or 1) / 1e6
        if megapixels > self.max_megapixels:
            size = f"{width}x{height} ({megapixels:.1f} megapixels)" if height else f"{megapixels:.1f} megapixels"
            raise LimitError(f"{what} is {size}, over the limit of "
                             f"{self.max_megapixels:g} megapixels ({self.raise_with[1]}); scale it down")

    def check(self, *, width: int, height: int, output_frames: int | None, interpolated_frames: int | None,
              seconds_per_megapixel: float | None = None, device: str = "cpu",
              held_bytes: int = 0) -> float | None:
        """Refuse a job over a limit; return its estimated seconds (None without a declared cost).

        ``output_frames``/``interpolated_frames``: the planned counts, None when the source's length
        is unknown (the stream then stops when its output passes ``max_frames``). ``held_bytes``:
        memory the caller keeps besides the working copies (outputs held as one batch).
        """
        self.check_image(width, height, "the frames")
        if output_frames is not None and output_frames > self.max_frames:
            raise LimitError(f"the output would have {output_frames:,} frames, over the limit of "
                             f"{self.max_frames:,} ({self.raise_with[0]}); ask for a lower rate or "
                             "multiplier")
        free = available_memory()
        needed = width * height * BYTES_PER_PIXEL + held_bytes
        if free is not None and needed > self.memory_share * free:
            held = f", the {output_frames:,} outputs held," if held_bytes and output_frames else ""
            raise LimitError(f"frames of {width}x{height}{held} need about {needed / 2**30:.1f} GiB of memory "
                             f"and {free / 2**30:.1f} GiB is free; ask for fewer or smaller frames")
        if seconds_per_megapixel is None or interpolated_frames is None:
            return None
        seconds = interpolated_frames * width * height / 1e6 * seconds_per_megapixel
        self.check_time(seconds, interpolated_frames=interpolated_frames, width=width, height=height,
                        device=device, how="estimated")
        return seconds

    def check_time(self, seconds: float, *, interpolated_frames: int, width: int, height: int,
                   device: str = "cpu", how: str = "estimated") -> None:
        """Refuse a job whose ``seconds`` pass ``max_hours``; ``how`` says in the message how they
        were found (``"estimated"`` from the declared cost, or measured on the job's first frames)."""
        if seconds > self.max_hours * 3600:
            raise LimitError(f"this job would take about {_duration(seconds)} ({interpolated_frames:,} frames "
                             f"of {width}x{height} on the {device}, {how}), over the limit of "
                             f"{self.max_hours:g} h ({self.raise_with[2]}); ask for fewer frames or "
                             "a smaller size")

    def check_count(self, output_frames: int) -> None:
        """Stop a stream of unknown length once its output passes ``max_frames``."""
        if output_frames > self.max_frames:
            raise LimitError(f"the output passed the limit of {self.max_frames:,} frames ({self.raise_with[0]}); "
                             "ask for a lower rate or multiplier")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"
