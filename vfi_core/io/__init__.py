"""Reading sources (video files, image folders) and writing outputs (video files, PNG folders).

:func:`open_reader` and :func:`open_writer` pick the right class from the path; see
:mod:`vfi_core.io.video` and :mod:`vfi_core.io.images` for formats, audio and atomic writing.
Importing this package imports PyAV and OpenCV.
"""
from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

from ..errors import InputError
from ..limits import WorkLimits
from .images import IMAGE_EXTENSIONS, ImageFolderReader, PngSequenceWriter
from .video import VIDEO_EXTENSIONS, AudioDroppedWarning, ShortVideoWarning, VideoReader, VideoWriter

DEFAULT_FOLDER_FPS = Fraction(25)


def open_reader(path: str | Path, folder_fps: Fraction | None = None, strict: bool = False,
                limits: WorkLimits | None = None) -> VideoReader | ImageFolderReader:
    """A reader for a video file or a folder of images (read at ``folder_fps``, default 25).

    ``strict``: a video holding fewer frames than it declares is an error (see :class:`VideoReader`).
    ``limits`` (default :class:`~vfi_core.limits.WorkLimits`): frames over its size are refused from
    the file's header, before anything is decoded.
    """
    path = Path(path)
    limits = limits or WorkLimits()
    if path.is_dir():
        return ImageFolderReader(path, folder_fps or DEFAULT_FOLDER_FPS, limits)
    if folder_fps is not None:
        raise InputError("an input frame rate applies to image folders only; a video file has its own")
    reader = VideoReader(path, strict=strict)
    limits.check_image(reader.width, reader.height, f"the video {path.name}")
    return reader


def is_folder_output(path: str | Path) -> bool:
    """Whether ``path`` names a PNG-sequence folder (an existing folder, or a name without extension)."""
    path = Path(path)
    return path.is_dir() or str(path).endswith(("/", "\\")) or not path.suffix


def open_writer(path: str | Path, fps: Fraction, width: int, height: int, *, alpha: bool,
                crf: int | None = None, preset: str | None = None,
                audio_source: VideoReader | ImageFolderReader | None = None) -> VideoWriter | PngSequenceWriter:
    """A writer for a video file or, for a folder (see :func:`is_folder_output`), a PNG sequence.

    ``audio_source``'s audio is copied where the format carries audio (see :mod:`vfi_core.io.video`).
    """
    if is_folder_output(path):
        if crf is not None or preset is not None:
            raise InputError("--crf and --preset apply to video output, not a PNG folder")
        if audio_source is not None and audio_source.audio_streams:
            warnings.warn(f"a PNG folder carries no audio: the audio of {audio_source.path.name} is not in the "
                          "output", AudioDroppedWarning, stacklevel=2)
        return PngSequenceWriter(path, alpha)
    audio = audio_source if isinstance(audio_source, VideoReader) else None
    return VideoWriter(path, fps, width, height, alpha=alpha, crf=crf, preset=preset, audio_source=audio)


__all__ = ["AudioDroppedWarning", "DEFAULT_FOLDER_FPS", "IMAGE_EXTENSIONS", "ImageFolderReader",
           "PngSequenceWriter", "ShortVideoWarning", "VIDEO_EXTENSIONS", "VideoReader", "VideoWriter", "is_folder_output",
           "open_reader", "open_writer"]
