"""Frame sources for training: folders of image files and video files.

A source is a sequence of frames (``(H,W,3)`` uint8 RGB numpy arrays, the data edge) together with
its *runs*: maximal stretches of consecutive usable frames. Excluded frames (see
:mod:`vfi_core.data.split`) split runs, so a window sampled inside a run never contains or bridges
an excluded frame.

Video files are decoded whole with PyAV, once: into memory on first use, or, with a ``cache_dir``,
into a ``.npy`` file there that later runs (and every ``DataLoader`` worker) memory-map instead of
decoding again. ``max_side`` downscales frames whose longer side exceeds it (area interpolation),
which also keeps a decoded 720p clip small (a 290-frame clip at ``max_side=480`` is 113 MB).
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from .split import Exclusions

__all__ = ["FolderSource", "FrameSource", "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "VideoSource", "open_sources"]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v"})


def _downscale(image: np.ndarray, max_side: int | None) -> np.ndarray:
    h, w = image.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


class FrameSource:
    """Base of the frame sources: ``name``, ``size`` ``(H, W)`` after downscaling, ``runs``
    (``(start, stop)`` index ranges of consecutive usable frames), :meth:`read`."""

    name: str
    size: tuple[int, int]
    runs: list[tuple[int, int]]

    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` as an ``(H,W,3)`` uint8 RGB array (may be a read-only view)."""
        raise NotImplementedError

    def __len__(self) -> int:
        return max((stop for _, stop in self.runs), default=0)


class FolderSource(FrameSource):
    """The image files of one folder, in sorted name order, as consecutive frames.

    Args:
        folder: a folder with image files (``IMAGE_EXTENSIONS``).
        exclusions: frames to leave out; they split the folder into runs.
        max_side: downscale frames whose longer side exceeds this.
    """

    def __init__(self, folder: str | Path, exclusions: Exclusions | None = None, max_side: int | None = None):
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"frame folder not found: {folder}")
        self.files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not self.files:
            raise InputError(f"no image files in {folder}")
        self.name, self.max_side = str(folder), max_side
        usable = [exclusions is None or not exclusions.excludes(p) for p in self.files]
        self.runs = _runs(usable)
        self.size = self.read(0).shape[:2] if self.runs else (0, 0)

    def read(self, index: int) -> np.ndarray:
        bgr = cv2.imread(str(self.files[index]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"cannot read image {self.files[index]}")
        return _downscale(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), self.max_side)


class VideoSource(FrameSource):
    """All frames of a video file (first video stream), decoded once with PyAV.

    Args:
        path: the video file.
        max_side: downscale frames whose longer side exceeds this.
        cache_dir: if given, the decoded frames go to a ``.npy`` there (named by the file's path,
            size, modification time and ``max_side``) and are memory-mapped from it.
    """

    def __init__(self, path: str | Path, max_side: int | None = None, cache_dir: str | Path | None = None):
        path = Path(path)
        if not path.is_file():
            raise InputError(f"video file not found: {path}")
        self.path, self.name, self.max_side = path, str(path), max_side
        self.cache_file = None
        if cache_dir is not None:
            stat = path.stat()
            key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{max_side}"
            self.cache_file = Path(cache_dir) / f"{path.stem}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.npy"
        self._frames: np.ndarray | None = None
        frames = self._load()
        if len(frames) == 0:
            raise InputError(f"no video frames decoded from {path}")
        self.runs = [(0, len(frames))]
        self.size = frames.shape[1:3]

    def _decode(self) -> np.ndarray:
        import av  # here, not at module level: packs and folders train where PyAV is absent (a GPU machine)

        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise InputError(f"{self.path} has no video stream")
                frames = [_downscale(frame.to_ndarray(format="rgb24"), self.max_side)
                          for frame in container.decode(video=0)]
        except av.error.FFmpegError as error:
            raise InputError(f"cannot decode {self.path}: {error}") from error
        return np.stack(frames) if frames else np.zeros((0, 1, 1, 3), np.uint8)

    def _load(self) -> np.ndarray:
        if self._frames is None:
            if self.cache_file is None:
                self._frames = self._decode()
            else:
                if not self.cache_file.is_file():
                    self.cache_file.parent.mkdir(parents=True, exist_ok=True)
                    partial = self.cache_file.with_suffix(f".{os.getpid()}.partial.npy")
                    np.save(partial, self._decode())
                    os.replace(partial, self.cache_file)  # atomic: concurrent workers never read half a file
                self._frames = np.load(self.cache_file, mmap_mode="r")
        return self._frames

    def read(self, index: int) -> np.ndarray:
        return self._load()[index]


def _runs(usable: Sequence[bool]) -> list[tuple[int, int]]:
    runs, start = [], None
    for index, ok in enumerate(list(usable) + [False]):
        if ok and start is None:
            start = index
        elif not ok and start is not None:
            runs.append((start, index))
            start = None
    return runs


def open_sources(paths: Iterable[str | Path], exclusions: Exclusions | None = None, max_side: int | None = None,
                 cache_dir: str | Path | None = None) -> list[FrameSource]:
    """Frame sources under ``paths``: a video file is one source; a folder with image files is one;
    folders are searched recursively (a DAVIS root gives one source per sequence, a Vimeo root one
    per septuplet). Excluded files and folders are skipped; sources left without frames are dropped.

    Raises :class:`InputError` for a path that does not exist or when nothing usable is found.
    """
    paths = [Path(p) for p in paths]
    sources = _collect(paths, exclusions, max_side, cache_dir)
    if not sources:
        raise InputError(f"no usable frames under {', '.join(map(str, paths))} (after exclusions)")
    return sources


def _collect(paths: list[Path], exclusions, max_side, cache_dir) -> list[FrameSource]:
    sources: list[FrameSource] = []
    for path in paths:
        if not path.exists():
            raise InputError(f"training source not found: {path}")
        if exclusions is not None and exclusions.excludes(path):
            continue
        if path.is_file():
            if path.suffix.lower() not in VIDEO_EXTENSIONS:
                raise InputError(f"{path} is not a video file ({', '.join(sorted(VIDEO_EXTENSIONS))}) or a folder")
            sources.append(VideoSource(path, max_side, cache_dir))
            continue
        entries = sorted(path.iterdir())
        if any(p.suffix.lower() in IMAGE_EXTENSIONS for p in entries):
            folder = FolderSource(path, exclusions, max_side)
            if folder.runs:
                sources.append(folder)
        children = [p for p in entries if p.is_dir() or p.suffix.lower() in VIDEO_EXTENSIONS]
        sources.extend(_collect(children, exclusions, max_side, cache_dir))
    return sources
