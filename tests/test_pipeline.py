"""Sequence pipeline: timing, scene cuts, duplicates, loops, streaming, hooks, batching, alpha, tiling."""
from __future__ import annotations

import gc
import math
import weakref
from fractions import Fraction

import pytest
import torch

from vfi_core.evaluation.benchmarks import LinearBlend
from vfi_core.errors import Cancelled, InputError, ParameterError
from vfi_core.pipeline import (SequenceOptions, TimedFrame, frames_at_rate, interpolate_frames, parse_fps)
from vfi_core.tiling import auto_tile_size, interpolate_tiled, tile_spans

H, W = 48, 64


class RecordingBlend(LinearBlend):
    """Linear blend that records each call's batch size and t values."""

    def __init__(self):
        self.calls: list[list[float]] = []

    def interpolate(self, frame0, frame1, t):
        self.calls.append(torch.as_tensor(t).tolist())
        return super().interpolate(frame0, frame1, t)

    @property
    def ts(self) -> list[float]:
        return [t for call in self.calls for t in call]


def solid(value: float, channel_values=None, spread: float = 0.6) -> torch.Tensor:
    """A (1,3,H,W) frame: a horizontal gradient of width ``spread`` over a base colour set by ``value``
    (or per channel by ``channel_values``), so neighbouring values differ but share colours."""
    ramp = torch.linspace(0, spread, W).view(1, 1, 1, W).expand(1, 3, H, W)
    colour = torch.tensor(channel_values or [value] * 3).view(1, 3, 1, 1)
    return (colour * 0.4 + ramp).clamp(0, 1)


def ramp_frames(n: int, fps=Fraction(25)):
    """n frames that each differ clearly (no duplicates) but share colours (no cuts)."""
    return list(frames_at_rate([solid(0.3 + 0.06 * i) for i in range(n)], fps))


def run(frames, options, fps=Fraction(25), model=None, **kwargs):
    model = model or RecordingBlend()
    stream = interpolate_frames(frames, model, options, fps, **kwargs)
    out = list(stream)
    return out, stream, model


@pytest.mark.parametrize("text,expected", [("59.94", Fraction(60000, 1001)), ("23.976", Fraction(24000, 1001)),
                                           ("29.97", Fraction(30000, 1001)), ("60000/1001", Fraction(60000, 1001)),
                                           ("12.5", Fraction(25, 2)), ("60", Fraction(60)), (59.94, Fraction(60000, 1001))])
def test_parse_fps(text, expected):
    assert parse_fps(text) == expected


@pytest.mark.parametrize("bad", ["abc", "0", "-5", "1/0"])
def test_parse_fps_refuses(bad):
    with pytest.raises(InputError):
        parse_fps(bad)


@pytest.mark.parametrize("n,mult,loop,expected", [(5, 2, False, 9), (5, 3, False, 13), (5, 2, True, 10),
                                                   (4, 1, False, 4)])
def test_multiplier_frame_counts_and_times(n, mult, loop, expected):
    frames = ramp_frames(n)
    out, stream, model = run(frames, SequenceOptions(multiplier=mult, loop=loop))
    assert len(out) == expected == stream.stats.output_frames
    assert stream.fps == 25 * mult
    pairs = n if loop else n - 1
    assert model.ts == pytest.approx([j / mult for _ in range(pairs) for j in range(1, mult)])
    for i, f in enumerate(frames):  # source frames pass through unchanged at their positions
        assert out[i * mult].rgb is f.rgb


@pytest.mark.parametrize("options", [SequenceOptions(multiplier=3), SequenceOptions(multiplier=2, loop=True),
                                     SequenceOptions(multiplier=(1, 3, 2)), SequenceOptions(multiplier=(2, 2, 1, 3), loop=True),
                                     SequenceOptions(fps=Fraction(60)), SequenceOptions(fps=Fraction(60000, 1001), loop=True)])
def test_output_count_predicts_the_stream(options):
    out, _, _ = run(ramp_frames(4), options)
    assert len(out) == options.output_count(4, Fraction(25))


def test_loop_interpolates_last_to_first():
    frames = ramp_frames(3)
    out, _, _ = run(frames, SequenceOptions(multiplier=2, loop=True))
    expected = (frames[2].rgb + frames[0].rgb) / 2
    assert torch.allclose(out[-1].rgb, expected)


def test_per_pair_multipliers():
    frames = ramp_frames(4)
    out, stream, model = run(frames, SequenceOptions(multiplier=[1, 3, 2]))
    assert len(out) == 1 + 3 + 2 + 1
    assert model.ts == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert stream.fps == 25 and not stream.options.keeps_timing
    with pytest.raises(ParameterError):
        run(ramp_frames(4), SequenceOptions(multiplier=[1, 2]), source_count=4)


@pytest.mark.parametrize("src,dst", [(Fraction(24000, 1001), Fraction(60)), (Fraction(25), Fraction(50)),
                                     (Fraction(30000, 1001), Fraction(60000, 1001))])
def test_target_fps_places_frames_at_exact_times(src, dst):
    n = 12
    frames = ramp_frames(n, src)
    out, stream, model = run(frames, SequenceOptions(fps=dst), fps=src)
    duration = n / src
    assert len(out) == math.ceil(duration * dst)
    assert abs(len(out) / dst - duration) < 1 / dst
    expected_t, passthrough = [], []
    for k in range(len(out)):
        pos = Fraction(k) / dst * src  # in source frames
        i = math.floor(pos)
        if pos == i or i >= n - 1:
            passthrough.append((k, min(i, n - 1)))
        else:
            expected_t.append(float(pos - i))
    assert model.ts == pytest.approx(expected_t)
    for k, i in passthrough:
        assert out[k].rgb is frames[i].rgb


def test_target_fps_follows_variable_timestamps():
    times = [Fraction(0), Fraction(1, 10), Fraction(3, 10)]
    frames = [TimedFrame(solid(0.3 + 0.1 * i), None, t, None) for i, t in enumerate(times)]
    frames[-1] = TimedFrame(frames[-1].rgb, None, times[-1], Fraction(1, 10))
    out, _, model = run(frames, SequenceOptions(fps=Fraction(10)), fps=Fraction(10))
    assert len(out) == 4  # 0, 0.1, 0.2 (between 0.1 and 0.3), 0.3
    assert model.ts == pytest.approx([0.5])
    assert out[1].rgb is frames[1].rgb and out[3].rgb is frames[2].rgb


def test_target_fps_lower_than_source_is_refused():
    with pytest.raises(InputError, match="lower than the source"):
        run(ramp_frames(3, Fraction(30)), SequenceOptions(fps=Fraction(24)), fps=Fraction(30))


def test_hard_cut_is_held_not_blended():
    shot_a = [solid(0, [0.1 + 0.2 * i, 0.05, 0.05], spread=0.3) for i in range(4)]   # dark red shot
    shot_b = [solid(0, [0.2, 1.5 - 0.2 * i, 1.9], spread=0.3) for i in range(4)]     # bright cyan shot
    frames = list(frames_at_rate(shot_a + shot_b, Fraction(25)))
    out, stream, model = run(frames, SequenceOptions(multiplier=4))
    assert stream.stats.scene_cuts == [frames[4].time]
    assert out[12:16] == [out[12]] * 4 and out[12].rgb is frames[3].rgb  # held last frame before the cut
    assert out[16].rgb is frames[4].rgb
    assert len(model.ts) == 3 * 6  # every other pair was interpolated
    # without detection the cut is morphed: a frame unlike either side appears
    out, _, _ = run(frames, SequenceOptions(multiplier=4, scene_threshold=None))
    assert not any(torch.equal(out[13].rgb, f.rgb) for f in frames)


def test_duplicates_detected_and_retimed():
    keys = [solid(0.2 + 0.1 * i) for i in range(3)]
    on_twos = [keys[0], keys[0].clone(), keys[1], keys[1].clone(), keys[2], keys[2].clone()]
    frames = list(frames_at_rate(on_twos, Fraction(12)))
    out, stream, model = run(frames, SequenceOptions(multiplier=2))
    assert stream.stats.duplicates == 3 and len(out) == 11
    assert model.ts == [0.5, 0.5]  # duplicate pairs are held, moving pairs interpolated once each
    out, stream, model = run(frames, SequenceOptions(multiplier=2, dedup=True))
    assert stream.stats.dropped_duplicates == 3 and len(out) == 11
    assert model.ts == pytest.approx([0.25, 0.5, 0.75] * 2)  # motion spread over the held time
    assert out[4].rgb is keys[1] and out[8].rgb is keys[2] and out[10].rgb is keys[2]


def test_streaming_holds_few_frames():
    """Frames are released as the stream moves on: memory does not grow with the length."""
    alive = weakref.WeakSet()
    peak = 0

    def source():
        nonlocal peak
        for f in ramp_frames(40):
            rgb = f.rgb.clone()
            alive.add(rgb)
            del f
            gc.collect()
            peak = max(peak, len(alive))
            yield TimedFrame(rgb, None, Fraction(len(alive)), None)

    stream = interpolate_frames(source(), RecordingBlend(), SequenceOptions(multiplier=2, duplicate_threshold=0),
                                Fraction(25))
    count = sum(1 for _ in stream)
    assert count == 79 and peak <= 4


def test_progress_and_cancel_hooks():
    seen = []
    run(ramp_frames(5), SequenceOptions(multiplier=2), source_count=5, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(i, 5) for i in range(1, 6)]
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) >= 2

    with pytest.raises(Cancelled):
        run(ramp_frames(5), SequenceOptions(multiplier=2), cancel=cancel)
    assert len(calls) == 2


def test_batching_matches_single_calls():
    frames = ramp_frames(6)
    single, _, m1 = run(frames, SequenceOptions(multiplier=4, batch_size=1))
    batched, _, m3 = run(frames, SequenceOptions(multiplier=4, batch_size=3))
    assert [len(c) for c in m3.calls] == [3] * 5 and all(len(c) == 1 for c in m1.calls)
    assert len(single) == len(batched) == 21
    assert all(torch.equal(a.rgb, b.rgb) for a, b in zip(single, batched))


def test_alpha_is_interpolated_alongside():
    alphas = [torch.zeros(1, 1, H, W), torch.ones(1, 1, H, W)]
    frames = list(frames_at_rate([solid(0.2), solid(0.6)], Fraction(25), alphas))
    out, _, model = run(frames, SequenceOptions(multiplier=4))
    assert [o.alpha.mean().item() for o in out] == pytest.approx([0, 0.25, 0.5, 0.75, 1])
    assert len(model.calls[0]) == 2  # colour and alpha in one model call


def test_frames_of_different_sizes_are_refused():
    frames = ramp_frames(2) + [TimedFrame(torch.zeros(1, 3, H + 2, W), None, Fraction(2, 25), None)]
    with pytest.raises(InputError, match="all frames must have one size"):
        run(frames, SequenceOptions(multiplier=2))


def test_fewer_than_two_frames_is_refused():
    with pytest.raises(InputError, match="only one frame"):
        run(ramp_frames(1), SequenceOptions(multiplier=2))


def test_tile_spans_cover_with_overlap():
    spans = tile_spans(300, 128, 32)
    assert spans[0][0] == 0 and spans[-1][1] == 300
    assert all(b[0] <= a[1] - 32 for a, b in zip(spans, spans[1:]))


def test_tiled_blend_equals_untiled():
    torch.manual_seed(0)
    f0, f1 = torch.rand(2, 3, 100, 130), torch.rand(2, 3, 100, 130)
    t = torch.tensor([0.3, 0.7])
    blend = LinearBlend()
    assert torch.allclose(interpolate_tiled(blend.interpolate, f0, f1, t, tile=48, overlap=16),
                          blend.interpolate(f0, f1, t), atol=1e-6)


def test_tiled_flow_model_matches_untiled_closely():
    import vfi_core
    model = vfi_core.load("flow-asb", device="cpu")
    yy, xx = torch.meshgrid(torch.arange(96.0), torch.arange(128.0), indexing="ij")

    def scene(dx):
        x = xx - dx
        return torch.stack([0.5 + 0.4 * torch.sin(x / 6) * torch.cos(yy / 9), 0.5 + 0.3 * torch.cos(x / 11),
                            0.5 + 0.3 * torch.sin((x + yy) / 7)])[None]

    f0, f1 = scene(0), scene(4)
    whole = model.interpolate(f0, f1, 0.5)
    tiled = interpolate_tiled(model.interpolate, f0, f1, torch.tensor([0.5]), tile=64, overlap=32)
    psnr = -10 * torch.log10(((whole - tiled) ** 2).mean())
    assert psnr > 35


def test_auto_tile_size_depends_on_memory(monkeypatch):
    import vfi_core.tiling as tiling
    monkeypatch.setattr(tiling, "available_memory", lambda device: 64 * 2**30)
    assert auto_tile_size(1080, 1920, 1, torch.device("cpu")) is None
    monkeypatch.setattr(tiling, "available_memory", lambda device: 2 * 2**30)
    tile = auto_tile_size(2160, 3840, 1, torch.device("cpu"))
    assert tile is not None and 256 <= tile < 2160


def test_forced_tiling_runs_through_the_pipeline():
    frames = list(frames_at_rate([torch.rand(1, 3, 100, 120), torch.rand(1, 3, 100, 120)], Fraction(25)))
    out, stream, _ = run(frames, SequenceOptions(multiplier=2, tile=64, tile_overlap=16, scene_threshold=None))
    assert stream.stats.tile == 64
    assert torch.allclose(out[1].rgb, (frames[0].rgb + frames[1].rgb) / 2, atol=1e-6)


@pytest.mark.parametrize("name, params", [("svmv", {"motion": "dis"}), ("mivid", {"steps": 4, "motion": "dis"}),
                                          ("pervfi", {"motion": "dis"}), ("flow-asb", {"motion": "dis"})])
def test_cancel_is_seen_inside_a_model_call(name, params):
    """One pair, one model call: the pipeline's check between pairs never fires, the model's own do."""
    from vfi_core import registry
    from vfi_core.cancellation import check_cancelled
    from vfi_core.errors import Cancelled
    from vfi_core.pipeline import SequenceOptions, interpolate_frames
    from vfi_core.timing import TimedFrame

    calls = []

    def cancel():
        calls.append(1)
        return len(calls) >= 2  # the pipeline's own check (before the pair) passes; the next one cancels

    g = torch.Generator().manual_seed(0)
    frames = [TimedFrame(torch.rand(1, 3, 32, 48, generator=g), None, Fraction(i, 25), Fraction(1, 25)) for i in range(2)]
    model = registry.load(name, device="cpu", **params)
    stream = interpolate_frames(iter(frames), model, SequenceOptions(multiplier=2, scene_threshold=None), Fraction(25),
                                cancel=cancel)
    with pytest.raises(Cancelled):
        list(stream)
    assert len(calls) == 2
    check_cancelled()  # outside the job nothing is cancellable: no error
