"""Image folders in and out, and the conversion between decoded images and pipeline frames.

Reading a folder: the files with an image extension (:data:`IMAGE_EXTENSIONS`) are taken in natural
order (``2.png`` before ``10.png``); other files (``Thumbs.db``, notes) are ignored. Grayscale is
replicated to RGB, 16-bit images keep their precision (they become float frames), grayscale+alpha
and RGBA keep their alpha. Every frame must have the size of the first and, like it, have or lack
alpha. The folder has no frame rate of its own; the caller gives one (the CLI's default is 25).

Writing a PNG sequence: 8-bit RGB, or RGBA when the frames carry alpha, named ``000000.png`` and
up, into a temporary folder beside the destination that is renamed at the end.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch

from ..errors import InputError, VFIError
from ..files import publish
from ..frames import from_numpy, split_alpha, to_numpy_uint8
from ..limits import WorkLimits
from ..timing import OutputFrame, TimedFrame

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def array_to_frame(image: np.ndarray, time: Fraction, duration: Fraction | None) -> TimedFrame:
    """A :class:`TimedFrame` from an ``(H,W)``/``(H,W,C)`` RGB(A) uint8/uint16 image (C in 1..4)."""
    colour, alpha = split_alpha(image)
    rgb = from_numpy(colour)
    alpha_t = None
    if alpha is not None:
        scale = 65535.0 if alpha.dtype == np.uint16 else 255.0
        alpha_t = torch.from_numpy(alpha.astype(np.float32) / scale)[None, None]
    return TimedFrame(rgb, alpha_t, time, duration)


def frame_to_array(frame: OutputFrame) -> np.ndarray:
    """An ``(H,W,3)`` or, with alpha, ``(H,W,4)`` uint8 RGB(A) image from an output frame."""
    rgb = to_numpy_uint8(frame.rgb)[0]
    if frame.alpha is None:
        return rgb
    alpha = to_numpy_uint8(frame.alpha)[0]
    return np.concatenate([rgb, alpha], axis=2)


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_images(folder: Path) -> list[Path]:
    """The image files of ``folder`` in natural order."""
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                  key=_natural_key)


def image_header_size(path: Path) -> tuple[int, int | None] | None:
    """``(width, height)`` from an image file's header, without decoding it; ``(pixels, None)`` for
    an image over Pillow's own bound (its count only is reported); None if unrecognised."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.size
    except Image.DecompressionBombError as exc:  # "Image size (N pixels) exceeds limit of ..."
        found = re.search(r"\((\d+) pixels\)", str(exc))
        return (int(found.group(1)) if found else 2 * (Image.MAX_IMAGE_PIXELS or 0) + 1, None)
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def read_image(path: Path, limits: WorkLimits | None = None) -> np.ndarray:
    """``(H,W)`` or ``(H,W,C)`` RGB(A) uint8/uint16 array of one image file; InputError if unreadable,
    :class:`~vfi_core.limits.LimitError` if its header declares more than ``limits`` (default
    :class:`~vfi_core.limits.WorkLimits`) allow, before anything is decoded."""
    size = image_header_size(path)
    if size is not None:
        (limits or WorkLimits()).check_image(*size, what=path.name)
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise InputError(f"{path} is not an image that can be read (damaged or not an image)")
    if image.dtype not in (np.uint8, np.uint16):
        raise InputError(f"{path} has {image.dtype} samples; only 8- and 16-bit images are supported")
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return image


class ImageFolderReader:
    """Frames of a folder of images at a constant frame rate ``fps``.

    ``count``, ``width``, ``height``, ``has_alpha`` describe it (from the first image); the reader
    checks the folder has at least two images when it opens, and each image's declared size against
    ``limits`` (default :class:`~vfi_core.limits.WorkLimits`) before decoding it.
    """

    def __init__(self, folder: str | Path, fps: Fraction, limits: WorkLimits | None = None):
        self.path = Path(folder)
        self.limits = limits
        self.files = list_images(self.path)
        if len(self.files) < 2:
            raise InputError(f"{self.path} holds {len(self.files)} image(s) ({', '.join(IMAGE_EXTENSIONS)}); "
                             "interpolation needs at least two")
        self.fps = fps
        first = read_image(self.files[0], limits)
        self.height, self.width = first.shape[:2]
        self.has_alpha = first.ndim == 3 and first.shape[2] in (2, 4)
        self.count = len(self.files)
        self.duration = Fraction(self.count) / fps
        self.variable_rate = False
        self.audio_streams: list = []

    def frames(self) -> Iterator[TimedFrame]:
        """The images as :class:`TimedFrame` s at ``i / fps``, each checked against the first's size."""
        for i, path in enumerate(self.files):
            image = read_image(path, self.limits)
            if image.shape[:2] != (self.height, self.width):
                raise InputError(f"{path.name} is {image.shape[1]}x{image.shape[0]} but {self.files[0].name} "
                                 f"is {self.width}x{self.height}; all frames must have one size")
            yield array_to_frame(image, Fraction(i) / self.fps, 1 / self.fps)

    def close(self) -> None:
        """Nothing to release; present so that every reader closes the same way."""


def check_output_parent(path: Path) -> None:
    """Raise :class:`InputError` unless the folder that will hold ``path`` exists and is writable."""
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise InputError(f"cannot write {path}: {parent} is a file, not a folder; choose another output")
    if not parent.is_dir():
        raise InputError(f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {path}: the folder {parent} is not writable; choose an output in a folder "
                         "you can write to")


class PngSequenceWriter:
    """Writes output frames as ``000000.png``... into ``folder``, atomically (temporary folder, renamed).

    ``folder`` must not exist or be empty. Call :meth:`write` per frame, then :meth:`commit`, or
    :meth:`abort` to remove everything written.
    """

    def __init__(self, folder: str | Path, alpha: bool):
        self.path = Path(folder)
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise InputError(f"{self.path} already exists and is not an empty folder; choose a new folder")
        check_output_parent(self.path)
        self.alpha = alpha
        self.count = 0
        try:
            self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".partial", dir=self.path.parent))
        except OSError as exc:
            raise VFIError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def write(self, frame: OutputFrame) -> None:
        image = frame_to_array(frame)
        if not self.alpha:
            image = image[:, :, :3]
        code = cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR
        ok, data = cv2.imencode(".png", cv2.cvtColor(image, code))
        if not ok:
            raise VFIError(f"could not encode frame {self.count} as PNG")
        target = self._tmp / f"{self.count:06d}.png"
        try:
            with open(target, "wb") as f:
                f.write(data.tobytes())
        except OSError as exc:
            raise VFIError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        self.count += 1

    def commit(self) -> Path:
        """Move the frames into place; an existing empty folder is replaced but keeps its mode."""
        if self.path.exists():
            mode = self.path.stat().st_mode & 0o7777
            self.path.rmdir()
            os.replace(self._tmp, self.path)
            os.chmod(self.path, mode)
        else:
            publish(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)
