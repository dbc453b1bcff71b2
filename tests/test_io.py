"""Video and image I/O: reading, writing, audio copy, alpha, odd sizes, atomic output, bad input."""
from __future__ import annotations

import errno
import warnings
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from vfi_core.evaluation.benchmarks import LinearBlend
from vfi_core.errors import Cancelled, InputError, VFIError
from vfi_core.io import AudioDroppedWarning, ImageFolderReader, VideoReader, VideoWriter, open_reader
from vfi_core.pipeline import OutputFrame, SequenceOptions, interpolate_file


def moving_image(i: int, w: int, h: int) -> np.ndarray:
    """(h,w,3) uint8: a bright square moving 3 px per frame over a gradient."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.linspace(40, 200, w, dtype=np.uint8)[None]
    img[..., 2] = 90
    x = 4 + 3 * i
    img[10:26, x:x + 16] = 250
    return img


def make_clip(path: Path, frames: int = 12, size=(64, 48), fps=Fraction(30000, 1001), audio: str | None = "aac"):
    """Write a small H.264 clip (and AAC/Opus audio covering its length) with PyAV."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.options = {"preset": "ultrafast"}
        audio_stream = None
        if audio:
            audio_stream = out.add_stream(audio, rate=48000)
            audio_stream.layout = "stereo"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(moving_image(i, *size), format="rgb24")
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if audio_stream is not None:
            samples = int(48000 * frames / fps)
            tone = (0.2 * np.sin(np.arange(samples) / 48000 * 2 * np.pi * 440)).astype(np.float32)
            chunk = 960
            for start in range(0, samples, chunk):
                block = np.tile(tone[start:start + chunk], (2, 1))
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="fltp", layout="stereo")
                frame.sample_rate = 48000
                frame.pts = start
                for packet in audio_stream.encode(frame):
                    out.mux(packet)
            for packet in audio_stream.encode():
                out.mux(packet)
    return path


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def video_info(path: Path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        return len(frames), s.average_rate, frames[0].width, frames[0].height, frames


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4")


def test_reader_reports_exact_rate_count_and_times(clip):
    reader = VideoReader(clip)
    assert reader.fps == Fraction(30000, 1001) and reader.count == 12
    assert (reader.width, reader.height) == (64, 48) and not reader.has_alpha
    assert [a.codec for a in reader.audio_streams] == ["aac"]
    frames = list(reader.frames())
    assert [f.time - frames[0].time for f in frames] == [Fraction(1001 * i, 30000) for i in range(12)]
    assert frames[0].rgb.shape == (1, 3, 48, 64)


def test_multiplier_copies_audio_bit_identical(clip, tmp_path):
    out = tmp_path / "x2.mp4"
    result = interpolate_file(clip, out, LinearBlend(), SequenceOptions(multiplier=2))
    count, rate, *_ = video_info(out)
    assert result.frames == count == 23 and rate == Fraction(60000, 1001)
    assert audio_packets(out) == audio_packets(clip)
    assert leftovers(tmp_path) == []


def test_target_fps_keeps_duration_and_audio(clip, tmp_path):
    out = tmp_path / "60.mp4"
    interpolate_file(clip, out, LinearBlend(), SequenceOptions(fps=Fraction(60)))
    count, rate, *_ = video_info(out)
    source = VideoReader(clip)
    assert rate == 60 and abs(Fraction(count, 60) - source.duration) <= Fraction(1, 60)
    assert audio_packets(out) == audio_packets(clip)


def test_odd_size_h264_is_padded_webm_keeps_size(tmp_path):
    src = make_clip(tmp_path / "odd.mp4", frames=4, size=(64, 48), audio=None)
    frames = list(VideoReader(src).frames())
    for ext, size in ((".mp4", (66, 50)), (".webm", (65, 49))):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            writer = VideoWriter(tmp_path / f"o{ext}", Fraction(25), 65, 49)
            for f in frames:
                writer.write(OutputFrame(f.rgb[..., :49, :65].contiguous(), None))
            writer.commit()
        assert video_info(tmp_path / f"o{ext}")[2:4] == size
        assert any("padded" in str(w.message) for w in caught) == (ext == ".mp4")


def rgba_folder(folder: Path, n: int = 3, size=(40, 30)) -> Path:
    folder.mkdir()
    for i in range(n):
        img = np.zeros((size[1], size[0], 4), np.uint8)
        img[..., :3] = moving_image(i, *size)
        img[..., 3] = 255 if i % 2 else 0
        img[:, : size[0] // 2, 3] = 255
        cv2.imwrite(str(folder / f"f{i}.png"), cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA))
    return folder


def test_rgba_folder_keeps_alpha_in_png_webm_gif(tmp_path):
    src = rgba_folder(tmp_path / "rgba")
    options = SequenceOptions(multiplier=2, scene_threshold=None)
    png = interpolate_file(src, tmp_path / "png_out", LinearBlend(), options)
    assert png.frames == 5
    mid = cv2.imread(str(tmp_path / "png_out" / "000001.png"), cv2.IMREAD_UNCHANGED)
    assert mid.shape == (30, 40, 4) and abs(int(mid[5, 30, 3]) - 128) <= 1  # alpha blended halfway
    webm = interpolate_file(src, tmp_path / "a.webm", LinearBlend(), options)
    reader = VideoReader(webm.path)
    assert reader.has_alpha and (reader.width, reader.height) == (40, 30)
    alphas = [f.alpha[0, 0, 15, 35].item() for f in reader.frames()]
    assert alphas[0] < 0.05 and abs(alphas[1] - 0.5) < 0.1 and alphas[2] > 0.95
    interpolate_file(src, tmp_path / "a.gif", LinearBlend(), options)
    gif = VideoReader(tmp_path / "a.gif")
    first = next(iter(gif.frames()))
    assert gif.has_alpha and first.alpha[0, 0, 15, 35] == 0 and first.alpha[0, 0, 15, 5] == 1
    assert leftovers(tmp_path) == []


def test_folder_converts_grayscale_and_16_bit(tmp_path):
    folder = tmp_path / "gray16"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((20, 30), 1000 + 30000 * i, np.uint16))
    (folder / "notes.txt").write_text("ignored")
    reader = ImageFolderReader(folder, Fraction(24))
    frames = list(reader.frames())
    assert len(frames) == 2 and frames[0].rgb.shape == (1, 3, 20, 30)
    assert frames[1].rgb[0, :, 0, 0].tolist() == pytest.approx([31000 / 65535] * 3, abs=1e-6)


@pytest.mark.parametrize("case,message", [("sizes", "all frames must have one size"), ("one", "at least two"),
                                          ("broken", "not an image")])
def test_bad_image_folders(tmp_path, case, message):
    folder = tmp_path / case
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), np.zeros((20, 30, 3), np.uint8))
    if case == "sizes":
        cv2.imwrite(str(folder / "1.png"), np.zeros((22, 30, 3), np.uint8))
    if case == "broken":
        (folder / "1.png").write_bytes(b"this is not a png")
    with pytest.raises(InputError, match=message):
        interpolate_file(folder, tmp_path / "out.mp4", LinearBlend(), SequenceOptions(multiplier=2))
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []


def test_bad_video_inputs(tmp_path, clip):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("hello, not a video\n" * 20)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[:1500])
    audio_only = tmp_path / "audio.m4a"
    with av.open(str(clip)) as src, av.open(str(audio_only), "w", format="mp4") as dst:
        out = dst.add_stream_from_template(src.streams.audio[0])
        for p in src.demux(src.streams.audio[0]):
            if p.size:
                p.stream = out
                dst.mux(p)
    for path, message in ((tmp_path / "missing.mp4", "does not exist"), (empty, "empty"),
                          (text, "not a video"), (truncated, "damaged|truncated|not a video|without frames"),
                          (audio_only, "no video stream")):
        with pytest.raises(InputError, match=message):
            interpolate_file(path, tmp_path / "out.mp4", LinearBlend(), SequenceOptions(multiplier=2))
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []


def test_lower_target_fps_refused_before_writing(clip, tmp_path):
    with pytest.raises(InputError, match="lower than the source"):
        interpolate_file(clip, tmp_path / "o.mp4", LinearBlend(), SequenceOptions(fps=Fraction(24)))
    assert list(tmp_path.iterdir()) == []


def test_cancellation_leaves_nothing(clip, tmp_path):
    (tmp_path / "o.mp4").write_bytes(b"previous output")
    with pytest.raises(Cancelled):
        interpolate_file(clip, tmp_path / "o.mp4", LinearBlend(), SequenceOptions(multiplier=2),
                         cancel=iter([False, False, True]).__next__)
    assert (tmp_path / "o.mp4").read_bytes() == b"previous output"  # the old file is untouched
    assert leftovers(tmp_path) == []


def test_full_disk_is_a_clear_error(clip, tmp_path, monkeypatch):
    def full(self, time):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(VideoWriter, "_mux_audio_until", full)
    with pytest.raises(VFIError, match="no space left"):
        interpolate_file(clip, tmp_path / "o.mp4", LinearBlend(), SequenceOptions(multiplier=2))
    assert list(tmp_path.iterdir()) == []


def test_audio_the_container_cannot_carry(clip, tmp_path):
    with pytest.raises(InputError, match="cannot carry the source's aac audio"):
        interpolate_file(clip, tmp_path / "o.webm", LinearBlend(), SequenceOptions(multiplier=2))
    with pytest.warns(AudioDroppedWarning):
        interpolate_file(clip, tmp_path / "o.gif", LinearBlend(), SequenceOptions(multiplier=2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", AudioDroppedWarning)
        interpolate_file(clip, tmp_path / "n.webm", LinearBlend(), SequenceOptions(multiplier=2), audio=False)
    assert leftovers(tmp_path) == []


def test_mkv_and_webm_sources_are_read(clip, tmp_path):
    out = tmp_path / "c.mkv"
    interpolate_file(clip, out, LinearBlend(), SequenceOptions(multiplier=2))
    reader = open_reader(out)
    assert reader.count == 23 and reader.fps == Fraction(60000, 1001)
    assert audio_packets(out) == audio_packets(clip)


@pytest.fixture
def umask_022():
    import os
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_outputs_and_weights_get_the_umask_mode_not_a_private_one(clip, tmp_path, umask_022):
    """Temporary files (mkstemp, mkdtemp, safetensors) are private; what is renamed into place is not."""
    import torch

    from vfi_core.files import save_safetensors, umask
    from vfi_core.io import PngSequenceWriter

    assert umask() == 0o022
    interpolate_file(clip, tmp_path / "x2.mp4", LinearBlend(), SequenceOptions(multiplier=2))
    folder = tmp_path / "frames"
    writer = PngSequenceWriter(folder, alpha=False)
    writer.write(OutputFrame(torch.rand(1, 3, 8, 8), None))
    writer.commit()
    save_safetensors({"w": torch.zeros(2)}, tmp_path / "w.safetensors")
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"x2.mp4": 0o644, "frames": 0o755, "w.safetensors": 0o644}
    assert (folder / "000000.png").stat().st_mode & 0o777 == 0o644
    kept = tmp_path / "kept"
    kept.mkdir(mode=0o750)
    writer = PngSequenceWriter(kept, alpha=False)
    writer.write(OutputFrame(torch.rand(1, 3, 8, 8), None))
    writer.commit()
    assert kept.stat().st_mode & 0o777 == 0o750 and (kept / "000000.png").is_file()  # an existing folder keeps its mode


def test_a_truncated_video_is_reported_with_both_counts(tmp_path, capsys):
    """A file whose index (at the front) declares more frames than the file holds: a warning naming
    both counts and the frames that are there, or with --strict a one-line error (exit 2)."""
    from vfi_core.cli import main
    from vfi_core.io import ShortVideoWarning

    whole = tmp_path / "whole.mp4"
    with av.open(str(whole), "w", options={"movflags": "faststart"}) as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.options = {"preset": "ultrafast"}
        noise = np.random.default_rng(0).integers(0, 256, (20, 48, 64, 3), dtype=np.uint8)  # packets of ~2 kB
        for image in noise:
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 3 // 5])
    assert not [w for w in warnings_of(lambda: VideoReader(whole))]
    with pytest.warns(ShortVideoWarning, match=r"declares 20 frames but holds \d+"):
        reader = VideoReader(cut)
    assert 0 < reader.count < 20 and len(list(reader.frames())) == reader.count  # the count the job gets
    with pytest.raises(InputError, match="declares 20 frames"):
        VideoReader(cut, strict=True)
    assert main(["interpolate", str(cut), str(tmp_path / "o.mp4"), "--model", "flow-asb", "-p", "motion=dis", "-m", "2", "--strict"]) == 2
    err = capsys.readouterr().err
    assert "declares 20 frames" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.mp4").exists() and leftovers(tmp_path) == []
    assert main(["interpolate", str(cut), str(tmp_path / "o.mp4"), "--model", "flow-asb", "-p", "motion=dis", "-m", "2"]) == 0
    captured = capsys.readouterr()
    assert "vfi: warning:" in captured.err + captured.out and (tmp_path / "o.mp4").is_file()


def warnings_of(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return caught
