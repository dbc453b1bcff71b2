"""Bounded work: every entry refuses a job over its limits before it starts, in one line that names
the limit and how to raise it, and leaves nothing behind."""
from __future__ import annotations

import struct
import zlib
from fractions import Fraction

import dataclasses

import pytest
import torch

from vfi_core import limits as limits_module
from vfi_core.cli import main
from vfi_core.limits import LimitError, WorkLimits
from vfi_core.pipeline import SequenceOptions, interpolate_frames
from vfi_core.timing import TimedFrame

FAST = ["--model", "flow-asb", "-p", "motion=dis"]


def cli(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("options, message", [
    (["--fps", "1000", "--max-frames", "100"], "the output would have 160 frames, over the limit of 100 (--max-frames "
                                               "raises it)"),
    (["--fps", "1e9"], "parameter 'target_fps' must lie in [0.0, 1000.0], got 1000000000.0"),
    (["-m", "64", "--max-frames", "100"], "the output would have 193 frames, over the limit of 100 (--max-frames"),
    (["-m", "1000"], "parameter 'multiplier' must lie in [1, 64], got 1000"),
    (["-m", "2", "--max-megapixels", "0.001"], "0.png is 48x32 (0.0 megapixels), over the limit of 0.001 megapixels "
                                                "(--max-megapixels raises it)"),
    (["-m", "8", "--max-hours", "1e-6"], "this job would take about 0 s (21 frames of 48x32 on the cpu, estimated), "
                                         "over the limit of 1e-06 h (--max-hours raises it)"),
    (["-m", "2", "--max-frames", "0"], "the limit max_frames must be a positive finite number, got 0"),
])
def test_cli_refuses_work_over_its_limits(frames_dir, tmp_path, capsys, options, message):
    code, err = cli(["interpolate", str(frames_dir), str(tmp_path / "o.mp4"), *FAST, *options], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


@pytest.mark.parametrize("side, size", [(60000, "3600.0 megapixels"), (9000, "9000x9000 (81.0 megapixels)")])
def test_an_image_is_refused_from_its_header_before_decoding(tmp_path, capsys, side, size):
    """A PNG declaring a huge size (its data a few bytes) is refused by its size, not a decoder error."""
    folder = tmp_path / "in"
    folder.mkdir()

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    for i in range(2):
        (folder / f"{i}.png").write_bytes(png)
    code, err = cli(["interpolate", str(folder), str(tmp_path / "o.mp4"), *FAST, "-m", "2"], capsys)
    assert code == 2 and f"0.png is {size}, over the limit of 64 megapixels" in err
    assert "cv2" not in err and len(err.strip().splitlines()) == 1


def test_a_stream_of_unknown_length_stops_at_the_frame_limit():
    frames = (TimedFrame(torch.full((1, 3, 8, 8), i / 10), None, Fraction(i, 25), Fraction(1, 25)) for i in range(10))

    class Blend:
        device = "cpu"

        def interpolate(self, a, b, t):
            return a + (b - a) * t.view(-1, 1, 1, 1)

    stream = interpolate_frames(frames, Blend(), SequenceOptions(multiplier=4, scene_threshold=None), Fraction(25),
                                limits=WorkLimits(max_frames=10))
    out = []
    with pytest.raises(LimitError, match="passed the limit of 10 frames"):
        for frame in stream:
            out.append(frame)
    assert len(out) <= 10


def test_memory_and_time_estimates(monkeypatch):
    limits = WorkLimits()
    monkeypatch.setattr(limits_module, "available_memory", lambda: 4 * 2**30)
    with pytest.raises(LimitError, match=r"frames of 7000x7000 need about 4\.5 GiB of memory and 4\.0 GiB is free"):
        limits.check(width=7000, height=7000, output_frames=3, interpolated_frames=1)
    with pytest.raises(LimitError, match="the 10,000 outputs held"):
        limits.check(width=640, height=360, output_frames=10_000, interpolated_frames=5_000,
                     held_bytes=10_000 * 640 * 360 * 4 * 4)
    seconds = limits.check(width=1280, height=720, output_frames=201, interpolated_frames=100,
                           seconds_per_megapixel=5.0)
    assert seconds == pytest.approx(100 * 0.9216 * 5.0)
    with pytest.raises(LimitError, match=r"about 5\.1 h .* over the limit of 1 h \(--max-hours raises it\)"):
        WorkLimits(max_hours=1).check(width=1280, height=720, output_frames=8001, interpolated_frames=4000,
                                      seconds_per_megapixel=5.0)


def test_a_model_without_a_declared_speed_on_its_device_says_how_its_time_is_bounded(monkeypatch):
    from vfi_core import registry
    from vfi_core.pipeline import InterpolatedStream, SequenceOptions

    model = registry.load("flow-asb", device="cpu")
    monkeypatch.setattr(model, "descriptor", dataclasses.replace(model.descriptor, seconds_per_megapixel={}))
    stream = InterpolatedStream([], model, SequenceOptions(multiplier=2), Fraction(25), source_count=3)
    with pytest.warns(UserWarning, match="flow-asb has no declared speed on the cpu: the time limit is checked "
                                         "once the job's first frames are timed"):
        stream.check_limits(64, 48)
    assert stream.estimated_seconds is None


def test_the_time_limit_holds_on_the_speed_measured_on_the_jobs_first_frames():
    """A model with no declared cost (or slower than declared) is stopped at its second model call,
    the first being warm-up; a job within the limit gets the measured estimate."""
    import time as time_module

    class Slow:
        device = "cpu"
        calls = 0

        def interpolate(self, a, b, t):
            Slow.calls += 1
            time_module.sleep(0.02)
            return a + (b - a) * t.view(-1, 1, 1, 1)

    def frames():
        return (TimedFrame(torch.full((1, 3, 8, 8), i / 10), None, Fraction(i, 25), Fraction(1, 25))
                for i in range(10))

    options = SequenceOptions(multiplier=4, scene_threshold=None)
    stream = interpolate_frames(frames(), Slow(), options, Fraction(25), source_count=10,
                                limits=WorkLimits(max_hours=1e-5))  # 36 ms for 27 frames
    with pytest.raises(LimitError, match=r"27 frames of 8x8 on the cpu, measured on its first frames\), over the "
                                         r"limit of 1e-05 h \(--max-hours raises it\)"):
        list(stream)
    assert Slow.calls == 2 and stream.estimated_seconds >= 27 * 0.02
    stream = interpolate_frames(frames(), Slow(), options, Fraction(25), source_count=10)
    assert len(list(stream)) == 37 and stream.estimated_seconds >= 27 * 0.02


def test_cli_refuses_a_job_slower_than_its_model_declares(frames_dir, tmp_path, capsys, monkeypatch):
    from vfi_core.interpolator import Interpolator

    monkeypatch.setattr(Interpolator, "seconds_per_megapixel", lambda self: 1e-9)  # passes the estimate
    code, err = cli(["interpolate", str(frames_dir), str(tmp_path / "o.mp4"), *FAST, "-m", "8", "--max-hours", "1e-6"],
                    capsys)
    lines = [line for line in err.replace("\r", "\n").splitlines() if line and not line.startswith("interpolating:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err  # after the progress bar, one line
    assert "(21 frames of 48x32 on the cpu, measured on its first frames), over the limit of 1e-06 h" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_every_registered_model_declares_its_cpu_cost():
    from vfi_core import registry
    for descriptor in registry.list_models():
        assert descriptor.seconds_per_megapixel.get("cpu", 0) > 0, descriptor.name


def test_the_time_estimate_counts_the_detail_restoration_stage_when_it_is_on():
    from vfi_core import registry
    from vfi_core.models.refine import SECONDS_PER_MEGAPIXEL
    from vfi_core.pipeline import InterpolatedStream, SequenceOptions

    model = registry.load("flow-asb", device="cpu")
    estimates = {}
    for refine in (0.0, 1.0):
        model.set_params(refine=refine)
        stream = InterpolatedStream([], model, SequenceOptions(multiplier=2), Fraction(25), source_count=3)
        stream.check_limits(1000, 1000)
        estimates[refine] = stream.estimated_seconds
    base = model.descriptor.seconds_per_megapixel["cpu"]
    assert estimates[0.0] == pytest.approx(2 * base)  # two interpolated frames of one megapixel
    assert estimates[1.0] == pytest.approx(2 * (base + SECONDS_PER_MEGAPIXEL["cpu"]))
