"""Pipeline benchmark: peak memory (RSS) and speed for 100 and 1000 frames, side by side.

    python -m vfi_core.evaluation.benchmarks [--frames 100 1000] [--size 1920x1080] [--multiplier 2] [--encode]

Each frame count runs in a fresh process (so each peak RSS is its own) on synthetic frames through
:class:`LinearBlend` (a cheap interpolator: the measurement is of the pipeline, not a model). The
output goes to a null sink, or with ``--encode`` to an H.264 file (ultrafast) in a temporary folder.
Constant memory shows as the same peak RSS for both counts.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import torch

from ..pipeline import SequenceOptions, TimedFrame, interpolate_frames


class LinearBlend:
    """A cheap interpolator: ``(1-t)*frame0 + t*frame1`` on ``(B,3,H,W)`` frames, ``t`` ``(B,)``."""

    device = torch.device("cpu")

    def interpolate(self, frame0: torch.Tensor, frame1: torch.Tensor, t) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=frame0.dtype).reshape(-1, 1, 1, 1)
        return frame0 * (1 - t) + frame1 * t


def synthetic_frames(count: int, width: int, height: int, fps: Fraction) -> Iterator[TimedFrame]:
    """``count`` frames ``(1,3,H,W)`` of a gradient moving 8 px per frame, made one at a time."""
    xs = torch.linspace(0, 1, width).view(1, 1, 1, width)
    ys = torch.linspace(0, 1, height).view(1, 1, height, 1)
    for i in range(count):
        shift = (i * 8) / width
        rgb = torch.cat([((xs + shift) % 1).expand(1, 1, height, width),
                         ys.expand(1, 1, height, width),
                         ((xs * ys + shift) % 1).expand(1, 1, height, width)], dim=1)
        yield TimedFrame(rgb, None, Fraction(i) / fps, 1 / fps)


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def run_once(frames: int, width: int, height: int, multiplier: int, encode: bool) -> dict:
    """Interpolate ``frames`` synthetic frames in this process; returns counts, seconds, fps, peak RSS."""
    fps = Fraction(25)
    stream = interpolate_frames(synthetic_frames(frames, width, height, fps), LinearBlend(),
                                SequenceOptions(multiplier=multiplier, scene_threshold=None, tile=0), fps)
    start = time.perf_counter()
    if encode:
        from ..io import VideoWriter
        with tempfile.TemporaryDirectory() as tmp:
            writer = VideoWriter(Path(tmp) / "bench.mp4", stream.fps, width, height, preset="ultrafast")
            for frame in stream:
                writer.write(frame)
            writer.commit()
    else:
        for _ in stream:
            pass
    seconds = time.perf_counter() - start
    out = stream.stats.output_frames
    return {"source_frames": frames, "output_frames": out, "seconds": round(seconds, 2),
            "output_fps": round(out / seconds, 2), "peak_rss_mib": round(_peak_rss_bytes() / 2**20, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vfi_core.evaluation.benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--size", default="1920x1080", help="WxH of the synthetic frames")
    parser.add_argument("--multiplier", type=int, default=2)
    parser.add_argument("--encode", action="store_true", help="encode H.264 instead of discarding the output")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    if args.one:
        print(json.dumps(run_once(args.frames[0], width, height, args.multiplier, args.encode)))
        return 0
    rows = []
    for count in args.frames:
        cmd = [sys.executable, "-m", "vfi_core.evaluation.benchmarks", "--one", "--frames", str(count), "--size", args.size,
               "--multiplier", str(args.multiplier)] + (["--encode"] if args.encode else [])
        rows.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
    print(f"{'source frames':>13} {'output frames':>13} {'seconds':>8} {'out fps':>8} {'peak RSS MiB':>12}")
    for r in rows:
        print(f"{r['source_frames']:>13} {r['output_frames']:>13} {r['seconds']:>8} {r['output_fps']:>8} "
              f"{r['peak_rss_mib']:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
