"""Video files in and out with PyAV.

Reading (:class:`VideoReader`): any container and codec FFmpeg decodes (mp4, mov, mkv, webm, gif,
...). The video stream's packets are scanned once without decoding to count frames and find the
duration, so a progress total is known and a file without frames is refused before any work. Every
frame carries its presentation time from its timestamp (``pts * time_base``, exact Fractions), so
variable frame rate sources are placed correctly. Alpha is kept for pixel formats that carry it;
VP8/VP9 alpha (webm ``alpha_mode``) is decoded with libvpx, which reads it. Sources with more than
8 bits per sample are read at 16 bits.

Writing (:class:`VideoWriter`), chosen by the extension:

* ``.mp4``, ``.mov``, ``.mkv``: H.264 (libx264, yuv420p, ``crf``/``preset``). 4:2:0 needs even
  sizes, so an odd width or height is padded by one replicated row/column (the output is then one
  pixel larger, and a warning says so); use ``.webm``, ``.gif`` or a PNG folder to keep an odd size
  exactly. H.264 carries no alpha: alpha sources warn that alpha is dropped.
* ``.webm``: VP9 (libvpx-vp9, constant quality ``crf``), ``yuva420p`` when the frames carry alpha;
  odd sizes are kept.
* ``.gif``: each frame quantised to its own 255-colour palette (Floyd-Steinberg dithering) plus a
  transparent entry for alpha < 0.5. GIF delays are whole hundredths of a second: rates above 50 fps
  warn that players show them slower.

Audio: the source's audio packets are copied unchanged (no re-encode) into containers that accept
the codec (:data:`AUDIO_CODECS`), interleaved with the video as it is written, so memory stays
constant. Timestamps are shifted by the start time of the first video frame, so audio stays in sync
with the output's first frame. Audio that the chosen container cannot carry is an error (choose
another container or drop audio explicitly); GIF and PNG carry no audio at all, and a warning says
the audio is left out. Subtitle and data streams are not copied (a warning says so).

Output goes to a temporary file beside the destination, renamed when complete; :meth:`abort`
removes it, so a failure or cancellation leaves no broken file behind.
"""
from __future__ import annotations

import errno
import os
import tempfile
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from ..errors import InputError, VFIError
from ..files import publish
from ..timing import NTSC_DECIMALS, OutputFrame, TimedFrame
from .images import array_to_frame, check_output_parent, frame_to_array

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".gif")
# Audio codecs each output container accepts for copying packets unchanged.
AUDIO_CODECS = {
    ".mp4": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"},
    ".mov": {"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
    ".mkv": None,  # Matroska takes any codec
    ".webm": {"opus", "vorbis"},
    ".gif": set(),
}
_ALPHA_DECODERS = {"vp9": "libvpx-vp9", "vp8": "libvpx"}
_AUDIO_LEAD = Fraction(1, 2)  # seconds of audio muxed ahead of the video written so far


class AudioDroppedWarning(UserWarning):
    """The output format carries no audio, so the source's audio is not in the output."""


class ShortVideoWarning(UserWarning):
    """The file holds fewer frames than its index declares (truncated or damaged): the frames that
    are there are used."""


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty (0 bytes)")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not a video or image file that can be read ({exc.strerror or exc})") from None


@dataclass(frozen=True)
class AudioInfo:
    """One audio stream: its index in the source, codec name and channel layout name."""

    index: int
    codec: str
    layout: str


class VideoReader:
    """Frames of a video file as :class:`TimedFrame` s.

    Args:
        path: the video file.
        strict: a file holding fewer frames than its index declares (a truncated download, say) is
            an :class:`InputError`; by default a :class:`ShortVideoWarning` names both counts and
            the frames that are there are used.

    Attributes:
        fps: the average frame rate as an exact Fraction.
        count: number of video packets (frames) found by the scan.
        declared: the frame count the container's index declares (0 where it declares none).
        width, height: frame size; ``has_alpha``: frames carry alpha.
        start: time of the first frame in seconds; ``duration``: from the first frame's start to the
            last frame's end, in seconds.
        variable_rate: the timestamps are not evenly spaced.
        keyframes: presentation indices of the keyframes (where reading from a frame on starts decoding).
        audio_streams: :class:`AudioInfo` of each audio stream.
    """

    def __init__(self, path: str | Path, strict: bool = False):
        self.path = Path(path)
        container = _open(self.path)
        try:
            self._scan(container)
        finally:
            container.close()
        if self.declared > self.count:
            self._keep_decodable()
            message = (f"{self.path.name} declares {self.declared} frames but holds {self.count} "
                       "(truncated or damaged)")
            if strict:
                raise InputError(f"{message}; without --strict the {self.count} frames that are there are used")
            warnings.warn(f"{message}: using those {self.count} frames", ShortVideoWarning, stacklevel=2)

    def _scan(self, container) -> None:
        if not container.streams.video:
            raise InputError(f"{self.path} has no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if not ctx.width or not ctx.height:
            raise InputError(f"{self.path}: the video stream has no frame size (damaged file?)")
        self.width, self.height = ctx.width, ctx.height
        self.codec = ctx.name
        self.audio_streams = [AudioInfo(s.index, s.codec_context.name, s.codec_context.layout.name)
                              for s in container.streams.audio]
        self.other_streams = [s.type for s in container.streams if s.type not in ("video", "audio")]
        self._alpha_decoder = None
        if stream.metadata.get("alpha_mode") == "1" and self.codec in _ALPHA_DECODERS:
            self._alpha_decoder = _ALPHA_DECODERS[self.codec]
        pix_fmt = ctx.format
        self.has_alpha = self._alpha_decoder is not None or (pix_fmt is not None and _has_alpha(pix_fmt))
        self.high_depth = pix_fmt is not None and max(c.bits for c in pix_fmt.components) > 8
        stamps: list[int] = []
        key_stamps: list[int] = []
        max_pts, last_duration = None, 0  # the duration of the frame shown last
        try:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.pts is None:
                    continue
                if max_pts is None or packet.pts >= max_pts:
                    max_pts, last_duration = packet.pts, packet.duration or 0
                stamps.append(packet.pts)
                if packet.is_keyframe:
                    key_stamps.append(packet.pts)
        except av.error.FFmpegError as exc:
            raise InputError(f"{self.path} is damaged or truncated: {exc.strerror or exc}") from None
        self.declared = int(stream.frames or 0)
        if not stamps:
            if self.declared:
                raise InputError(f"{self.path.name} declares {self.declared} frames but holds none "
                                 "(truncated or damaged)")
            raise InputError(f"{self.path} has a video stream without frames")
        self._index(stream, stamps, key_stamps, last_duration)

    def _index(self, stream, stamps: list[int], key_stamps: list[int], last_duration: int) -> None:
        """Frame count, presentation order, keyframes, rate and duration from the frames' timestamps
        (in ``stream``'s time base)."""
        time_base = stream.time_base
        stamps = sorted(stamps)
        self._stamps = stamps
        self._positions = {pts: i for i, pts in enumerate(stamps)}  # presentation index by timestamp
        self.keyframes = sorted(self._positions[pts] for pts in set(key_stamps) if pts in self._positions)
        self.count = len(stamps)
        rate = stream.average_rate or stream.guessed_rate
        if rate is None and self.count > 1:
            rate = Fraction(self.count - 1) / ((stamps[-1] - stamps[0]) * time_base)
        if not rate:
            raise InputError(f"{self.path} does not say its frame rate; convert it with a fixed rate first")
        self.fps = _standard_rate(Fraction(rate))
        deltas = {b - a for a, b in zip(stamps, stamps[1:])}
        self.variable_rate = len(deltas) > 1 and max(deltas) - min(deltas) > 1
        self.start = stamps[0] * time_base
        last_time = stamps[-1] * time_base
        self.duration = last_time - self.start + (last_duration * time_base if last_duration else 1 / self.fps)

    def _keep_decodable(self) -> None:
        """A file holding fewer frames than it declares may end in a packet cut off mid-frame: count
        only the frames that decode, so the reported count is the count the job gets."""
        container = _open(self.path)
        try:
            stream = container.streams.video[0]
            decoded = {frame.pts for frame in self._decode(container, stream)}
            stamps = [pts for pts in self._stamps if pts in decoded]
            if len(stamps) == self.count:
                return
            if not stamps:
                raise InputError(f"{self.path.name} declares {self.declared} frames but not one of them decodes "
                                 "(truncated or damaged)")
            step = stamps[1] - stamps[0] if len(stamps) > 1 else 0
            self._index(stream, stamps, [self._stamps[i] for i in self.keyframes], step)
        finally:
            container.close()

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[TimedFrame]:
        """Decode the frames in presentation order, each with its time and duration in seconds.

        ``start``/``stop``: only the frames with those presentation indices (``[start, stop)``, as in
        a slice); decoding then begins at the keyframe before ``start`` (see :attr:`keyframes`).
        """
        if start or stop is not None:
            return self._frames_between(start, self.count if stop is None else stop)
        return self._all_frames()

    def _all_frames(self) -> Iterator[TimedFrame]:
        container = _open(self.path)
        try:
            stream = container.streams.video[0]
            if self.declared <= self.count:  # frame threading drops the frames in flight at a cut-off packet
                stream.thread_type = "AUTO"
            fmt = self._pixel_format()
            pending = None  # (image, time) waiting for the next frame's time to know its duration
            index = 0
            for frame in self._decode(container, stream):
                time = frame.pts * stream.time_base if frame.pts is not None else self.start + index / self.fps
                image = self._to_array(frame, fmt)
                if pending is not None:
                    yield array_to_frame(pending[0], pending[1], time - pending[1])
                pending = (image, time)
                index += 1
            if pending is None:
                raise InputError(f"{self.path}: no frame could be decoded (damaged file?)")
            last_duration = self.start + self.duration - pending[1]
            yield array_to_frame(pending[0], pending[1], last_duration if last_duration > 0 else 1 / self.fps)
        finally:
            container.close()

    def _frames_between(self, start: int, stop: int) -> Iterator[TimedFrame]:
        if not 0 <= start < stop <= self.count:
            raise InputError(f"frames {start}-{stop - 1} are not all in {self.path.name} ({self.count} frames)")
        container = _open(self.path)
        try:
            stream = container.streams.video[0]
            if self.declared <= self.count:
                stream.thread_type = "AUTO"
            fmt = self._pixel_format()
            container.seek(self._stamps[start], stream=stream, backward=True)
            end_time = self.start + self.duration
            for frame in self._decode(container, stream):
                index = self._positions.get(frame.pts)
                if index is None:
                    raise InputError(f"{self.path}: a decoded frame's time is not in the file's index "
                                     "(damaged file?); read it whole")
                if index < start:
                    continue
                time = frame.pts * stream.time_base
                after = self._stamps[index + 1] * stream.time_base if index + 1 < self.count else end_time
                yield array_to_frame(self._to_array(frame, fmt), time, after - time if after > time else 1 / self.fps)
                if index + 1 >= stop:
                    return
            raise InputError(f"{self.path}: frames {start}-{stop - 1} could not all be decoded (damaged file?)")
        finally:
            container.close()

    def _pixel_format(self) -> str:
        return ("rgba64le" if self.high_depth else "rgba") if self.has_alpha else \
            ("rgb48le" if self.high_depth else "rgb24")

    def _to_array(self, frame: av.VideoFrame, fmt: str) -> np.ndarray:
        try:
            return frame.to_ndarray(format=fmt)
        except (ValueError, av.error.FFmpegError) as exc:
            raise InputError(f"{self.path}: pixel format {frame.format.name} is not supported ({exc})") from None

    def _decode(self, container, stream) -> Iterator[av.VideoFrame]:
        """Frames packet by packet. In a file known to be short (fewer frames than declared), a
        cut-off packet that does not decode is skipped, and the frames before it still come out."""
        decoder = stream.codec_context if self._alpha_decoder is None else \
            av.CodecContext.create(self._alpha_decoder, "r")
        try:
            for packet in container.demux(stream):  # the last, empty packet flushes the decoder
                try:
                    yield from decoder.decode(packet)
                except av.error.InvalidDataError:
                    if self.declared <= self.count:
                        raise
        except av.error.FFmpegError as exc:
            raise InputError(f"{self.path} is damaged or truncated: {exc.strerror or exc}") from None

    def close(self) -> None:
        """Nothing stays open between :meth:`frames` calls; present so every reader closes alike."""


def _standard_rate(rate: Fraction) -> Fraction:
    """``rate``, or the standard rate (an integer, or an NTSC ``k*1000/1001``) within 0.005% of it.

    Containers with coarse time bases (Matroska and WebM count in milliseconds) only give a rate
    measured from rounded timestamps, e.g. 19001/317 for 60000/1001.
    """
    for candidate in (Fraction(round(rate)), *NTSC_DECIMALS.values()):
        if candidate and abs(rate / candidate - 1) < Fraction(1, 20000):
            return candidate
    return rate


def _has_alpha(fmt: av.VideoFormat) -> bool:
    return fmt.name.startswith(("yuva", "rgba", "bgra", "argb", "abgr", "gbrap", "ya", "pal8"))


def _mkstemp_beside(path: Path) -> Path:
    check_output_parent(path)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from None
    os.close(fd)
    return Path(name)


def _write_error(path: Path, exc: Exception) -> VFIError:
    if getattr(exc, "errno", None) == errno.ENOSPC:
        return VFIError(f"no space left on the device while writing {path}; nothing was written")
    return VFIError(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}")


class VideoWriter:
    """Encode output frames to ``path`` (format from its extension), copying audio from ``audio_source``.

    Args:
        path: destination file (.mp4, .mov, .mkv, .webm, .gif).
        fps: output frame rate (exact).
        width, height: frame size.
        alpha: the frames carry alpha (kept by .webm and .gif; H.264 warns that it is dropped).
        crf: constant-quality factor (H.264: 0-51, default 18; VP9: 0-63, default 30).
        preset: x264 preset (ultrafast ... veryslow, default "medium"); refused for other formats.
        audio_source: a :class:`VideoReader` whose audio streams are copied, or None for no audio.

    Call :meth:`write` per frame, then :meth:`commit` (returns the final path) or :meth:`abort`.
    """

    def __init__(self, path: str | Path, fps: Fraction, width: int, height: int, *, alpha: bool = False,
                 crf: int | None = None, preset: str | None = None, audio_source: VideoReader | None = None):
        self.path = Path(path)
        self.kind = self.path.suffix.lower()
        if self.kind not in VIDEO_EXTENSIONS:
            raise InputError(f"cannot write {self.path.suffix or 'files without extension'}: use "
                             f"{', '.join(VIDEO_EXTENSIONS)} or a folder for a PNG sequence")
        if preset is not None and self.kind in (".webm", ".gif"):
            raise InputError(f"--preset applies to H.264 (.mp4, .mov, .mkv), not {self.kind}")
        if crf is not None and self.kind == ".gif":
            raise InputError("--crf does not apply to GIF output")
        top = 63 if self.kind == ".webm" else 51
        if crf is not None and not 0 <= crf <= top:
            codec = "VP9" if self.kind == ".webm" else "H.264"
            raise InputError(f"--crf {crf} is out of range: {codec} ({self.kind}) takes 0-{top} (lower is better quality)")
        self.fps = fps
        self.width, self.height = width, height
        self.count = 0
        self._audio_plan = self._plan_audio(audio_source)
        self._audio_in = None
        self._held_audio = None  # (time, packet) read ahead of the video written so far
        self._tmp = _mkstemp_beside(self.path)
        try:
            self._out = av.open(str(self._tmp), "w", format={".mkv": "matroska", ".mov": "mov"}.get(self.kind))
            self.alpha = self._add_video_stream(alpha, crf, preset)
            self._audio_packets = self._open_audio(audio_source)
        except BaseException:  # Ctrl-C or SIGTERM during set-up too: leave no partial file
            self.abort()
            raise

    # -- set-up ---------------------------------------------------------------------------------
    def _plan_audio(self, source: VideoReader | None) -> list[AudioInfo]:
        if source is None or not source.audio_streams:
            return []
        if source.other_streams:
            warnings.warn(f"{source.path} also has {', '.join(source.other_streams)} stream(s); "
                          "they are not copied", stacklevel=3)
        accepted = AUDIO_CODECS[self.kind]
        if accepted is not None and not accepted:
            warnings.warn(f"{self.kind} carries no audio: the audio of {source.path.name} is not in the output",
                          AudioDroppedWarning, stacklevel=3)
            return []
        for info in source.audio_streams:
            if accepted is not None and info.codec not in accepted:
                raise InputError(f"{self.kind} cannot carry the source's {info.codec} audio without re-encoding; "
                                 "write .mkv (takes any audio) or drop the audio")
        return source.audio_streams

    def _add_video_stream(self, alpha: bool, crf: int | None, preset: str | None) -> bool:
        """Add the encoder; returns whether alpha is written."""
        if self.kind == ".gif":
            stream = self._out.add_stream("gif", rate=self.fps)
            stream.pix_fmt = "pal8"
            if self.fps > 50:
                warnings.warn(f"GIF delays are whole 1/100 s: {float(self.fps):.5g} fps plays at most at 50 fps; "
                              "use .webm or .mp4 for high frame rates", stacklevel=4)
            width, height = self.width, self.height
        elif self.kind == ".webm":
            stream = self._out.add_stream("libvpx-vp9", rate=self.fps)
            stream.pix_fmt = "yuva420p" if alpha else "yuv420p"
            stream.options = {"crf": str(30 if crf is None else crf), "b": "0", "row-mt": "1"}
            width, height = self.width, self.height
        else:
            stream = self._out.add_stream("libx264", rate=self.fps)
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(18 if crf is None else crf), "preset": preset or "medium"}
            if alpha:
                warnings.warn("H.264 carries no alpha: the output is opaque; write .webm, .gif or a PNG folder "
                              "to keep transparency", stacklevel=4)
                alpha = False
            width, height = self.width + self.width % 2, self.height + self.height % 2
            if (width, height) != (self.width, self.height):
                warnings.warn(f"H.264 (4:2:0) needs even sizes: {self.width}x{self.height} is padded to "
                              f"{width}x{height} by repeating the last row/column; write .webm or PNG to keep "
                              "the size exactly", stacklevel=4)
        stream.width, stream.height = width, height
        self._stream = stream
        return alpha

    def _open_audio(self, source: VideoReader | None) -> Iterator | None:
        if not self._audio_plan:
            return None
        self._audio_in = _open(source.path)
        outputs = {}
        for info in self._audio_plan:
            in_stream = self._audio_in.streams[info.index]
            outputs[info.index] = self._out.add_stream_from_template(in_stream)
        offset = source.start

        def packets():
            for packet in self._audio_in.demux([self._audio_in.streams[i.index] for i in self._audio_plan]):
                if packet.size == 0 or packet.dts is None:
                    continue
                time = packet.pts * packet.time_base - offset if packet.pts is not None else None
                shift = int(round(offset / packet.time_base))
                if packet.pts is not None:
                    packet.pts -= shift
                packet.dts -= shift
                packet.stream = outputs[packet.stream.index]
                yield time, packet

        return packets()

    # -- writing --------------------------------------------------------------------------------
    def write(self, frame: OutputFrame) -> None:
        """Encode one output frame (``rgb`` ``(1,3,H,W)``, ``alpha`` ``(1,1,H,W)`` or None, in [0,1])."""
        image = frame_to_array(frame)
        video_frame = self._to_video_frame(image)
        video_frame.pts = self.count
        video_frame.time_base = 1 / self.fps
        try:
            for packet in self._stream.encode(video_frame):
                self._out.mux(packet)
            self.count += 1
            self._mux_audio_until(Fraction(self.count) / self.fps + _AUDIO_LEAD)
        except (OSError, av.error.FFmpegError) as exc:
            raise _write_error(self.path, exc) from None

    def _to_video_frame(self, image: np.ndarray) -> av.VideoFrame:
        if self.kind == ".gif":
            return av.VideoFrame.from_ndarray(_quantise(image), format="pal8")
        if self.alpha:
            return av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgba")
        rgb = image[:, :, :3]
        pad_y, pad_x = self._stream.height - self.height, self._stream.width - self.width
        if pad_y or pad_x:
            rgb = np.pad(rgb, ((0, pad_y), (0, pad_x), (0, 0)), mode="edge")
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")

    def _mux_audio_until(self, time: Fraction | None) -> None:
        """Mux source audio packets up to ``time`` seconds (all remaining ones for None)."""
        if self._audio_packets is None:
            return
        if self._held_audio is not None:
            held_time, packet = self._held_audio
            if time is not None and held_time is not None and held_time > time:
                return
            self._out.mux(packet)
            self._held_audio = None
        for packet_time, packet in self._audio_packets:
            if time is not None and packet_time is not None and packet_time > time:
                self._held_audio = (packet_time, packet)
                return
            self._out.mux(packet)

    def commit(self) -> Path:
        """Flush the encoder, write the rest of the audio, close, and move the file into place."""
        try:
            for packet in self._stream.encode(None):
                self._out.mux(packet)
            self._mux_audio_until(None)
            self._out.close()
            self._close_audio()
            publish(self._tmp, self.path)
        except (OSError, av.error.FFmpegError) as exc:
            self.abort()
            raise _write_error(self.path, exc) from None
        return self.path

    def abort(self) -> None:
        """Close everything and delete the temporary file."""
        for closer in (getattr(self, "_out", None), getattr(self, "_audio_in", None)):
            if closer is not None:
                try:
                    closer.close()
                except (OSError, av.error.FFmpegError):
                    pass
        self._tmp.unlink(missing_ok=True)

    def _close_audio(self) -> None:
        if self._audio_in is not None:
            self._audio_in.close()


def _quantise(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An ``(H,W,3|4)`` uint8 image as GIF indices ``(H,W)`` and an ARGB palette ``(256,4)``.

    255 colours from the frame (fast octree, Floyd-Steinberg dithering); index 255 is transparent and
    used where alpha < 128.
    """
    from PIL import Image

    quantised = Image.fromarray(np.ascontiguousarray(image[:, :, :3])).quantize(
        colors=255, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.FLOYDSTEINBERG)
    indices = np.asarray(quantised, dtype=np.uint8).copy()
    colours = np.asarray(quantised.getpalette()[: 255 * 3], dtype=np.uint8).reshape(-1, 3)
    palette = np.zeros((256, 4), dtype=np.uint8)
    palette[: len(colours), 0] = 255
    palette[: len(colours), 1:] = colours
    if image.shape[2] == 4:
        indices[image[:, :, 3] < 128] = 255
    return indices, palette
