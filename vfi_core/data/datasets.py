"""Training datasets over real frame sources (:mod:`vfi_core.data.sources`) and over packed crops.

Every dataset is a ``torch.utils.data.Dataset`` of a fixed ``length``; item ``i`` is drawn from a
random stream seeded by ``(seed, i)``, so it is the same in every epoch and every ``DataLoader``
worker (vary ``seed`` per epoch for fresh samples). Items are dicts of float32 tensors in [0, 1]:

- :class:`WindowDataset`: ``frames`` ``(T,3,h,w)``, ``T`` frames at a random stride (MiVID-style
  windows, or any length).
- :class:`TripletDataset`: ``frame0``, ``frame1``, ``gt`` ``(3,h,w)`` and ``t`` (0-d): frames
  ``i`` and ``i+k`` of a window with ``gt`` its frame ``j``, ``t = (j - i) / k``.
- :class:`PackedCropDataset`: either kind, from a file written by :func:`pack_training_crops`.

Augmentation: one random ``crop`` box for the whole window, horizontal and vertical flips and
temporal reversal, each with probability 1/2 (reversal maps ``t`` to ``1 - t``).
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import InputError
from .sources import FrameSource, open_sources
from .split import Exclusions

__all__ = ["PACK_LIMIT_BYTES", "PackedCropDataset", "TripletDataset", "WindowDataset", "pack_training_crops"]

PACK_LIMIT_BYTES = 64 * 1024 * 1024  # what may travel to a GPU machine with the working tree


def _crop_size(crop: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (crop, crop) if isinstance(crop, int) else tuple(crop)
    if h < 1 or w < 1:
        raise InputError(f"crop must be positive, got {crop}")
    return h, w


class _WindowSampler:
    """Draws windows (source, first frame, stride) uniformly over all valid placements in runs."""

    def __init__(self, sources: Sequence[FrameSource], crop: tuple[int, int]):
        if not sources:
            raise InputError("no frame sources given")
        for source in sources:
            if source.size[0] < crop[0] or source.size[1] < crop[1]:
                raise InputError(f"crop {crop[1]}x{crop[0]} is larger than the {source.size[1]}x{source.size[0]} "
                                 f"frames of {source.name}: use a smaller crop or a larger max_side")
        self.sources, self.crop = list(sources), crop
        self._placements: dict[int, tuple[list[tuple[int, int]], np.ndarray]] = {}

    def placements(self, span: int) -> tuple[list[tuple[int, int]], np.ndarray]:
        """Runs ``(source index, run start)`` long enough for ``span`` frames, with the cumulative
        count of start positions in them."""
        if span not in self._placements:
            runs, counts = [], []
            for index, source in enumerate(self.sources):
                for start, stop in source.runs:
                    if stop - start >= span:
                        runs.append((index, start))
                        counts.append(stop - start - span + 1)
            self._placements[span] = runs, np.cumsum(counts, dtype=np.int64)
        return self._placements[span]

    def usable_strides(self, frames: int, max_stride: int) -> list[int]:
        strides = [s for s in range(1, max_stride + 1) if len(self.placements((frames - 1) * s + 1)[0])]
        if not strides:
            raise InputError(f"no source has {frames} consecutive usable frames (after exclusions)")
        return strides

    def draw(self, rng: np.random.Generator, frames: int, stride: int, flip: bool, reverse: bool) -> list[np.ndarray]:
        """``frames`` uint8 ``(h,w,3)`` crops at ``stride``, augmented, in time order."""
        runs, cumulative = self.placements((frames - 1) * stride + 1)
        pick = int(rng.integers(0, cumulative[-1]))
        run = int(np.searchsorted(cumulative, pick, side="right"))
        source_index, run_start = runs[run]
        first = run_start + pick - (int(cumulative[run - 1]) if run else 0)
        source = self.sources[source_index]
        (h, w), (ch, cw) = source.size, self.crop
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        window = [source.read(first + k * stride)[y0:y0 + ch, x0:x0 + cw] for k in range(frames)]
        return _augment(window, rng, flip, reverse)


def _augment(window: list[np.ndarray], rng: np.random.Generator, flip: bool, reverse: bool) -> list[np.ndarray]:
    # draw all three coins whatever the options, so switching one off leaves the others' draws alone
    h_flip, v_flip, backwards = rng.random(3) < 0.5
    if flip and h_flip:
        window = [frame[:, ::-1] for frame in window]
    if flip and v_flip:
        window = [frame[::-1] for frame in window]
    return window[::-1] if reverse and backwards else window


def _to_tensor(frames: list[np.ndarray]) -> torch.Tensor:
    """uint8 ``(h,w,3)`` frames to a float32 ``(T,3,h,w)`` tensor in [0, 1]."""
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255.0)


def _pick_triplet(rng: np.random.Generator, gap: int, random_t: bool) -> int:
    """Index ``j`` of the ground-truth frame between frames 0 and ``gap``."""
    return int(rng.integers(1, gap)) if random_t else gap // 2


def _triplet_item(window: torch.Tensor, middle: int) -> dict:
    gap = window.shape[0] - 1
    return {"frame0": window[0], "frame1": window[-1], "gt": window[middle],
            "t": torch.tensor(middle / gap, dtype=torch.float32)}


class _SeededDataset(Dataset):
    def __init__(self, length: int, seed: int):
        if length < 1:
            raise InputError(f"dataset length must be at least 1, got {length}")
        self.length, self.seed = length, seed

    def __len__(self) -> int:
        return self.length

    def _rng(self, index: int) -> np.random.Generator:
        if not 0 <= index < self.length:
            raise IndexError(index)
        return np.random.default_rng([self.seed, index])


def _as_sources(sources: Iterable[FrameSource | str | Path], exclusions: Exclusions | None) -> list[FrameSource]:
    sources = list(sources)
    paths = [s for s in sources if not isinstance(s, FrameSource)]
    ready = [s for s in sources if isinstance(s, FrameSource)]
    return ready + (open_sources(paths, exclusions) if paths else [])


class WindowDataset(_SeededDataset):
    """Windows of ``window`` frames from real sources.

    Args:
        sources: :class:`FrameSource` objects, or paths given to :func:`open_sources` with
            ``exclusions`` (open them yourself for ``max_side`` or ``cache_dir``).
        window: frames per item (3 for triplets, 9 for MiVID-style windows).
        crop: ``(h, w)`` or an int: the crop cut from every frame of the window.
        max_stride: the step between consecutive window frames is uniform in ``1..max_stride``
            (strides whose span no run can hold are not drawn).
        length: items per epoch. seed: see the module docstring.
        flip, reverse: enable flips and temporal reversal.
    Item: ``{"frames": (T,3,h,w) float32, "stride": int64 0-d}``.
    """

    def __init__(self, sources: Iterable[FrameSource | str | Path], window: int = 9, crop: int | tuple[int, int] = 256,
                 max_stride: int = 1, length: int = 10000, seed: int = 0, flip: bool = True, reverse: bool = True,
                 exclusions: Exclusions | None = None):
        super().__init__(length, seed)
        if window < 2:
            raise InputError(f"a window needs at least 2 frames, got {window}")
        self.sampler = _WindowSampler(_as_sources(sources, exclusions), _crop_size(crop))
        self.window, self.flip, self.reverse = window, flip, reverse
        self.strides = self.sampler.usable_strides(window, max_stride)

    def __getitem__(self, index: int) -> dict:
        rng = self._rng(index)
        stride = self.strides[int(rng.integers(0, len(self.strides)))]
        frames = self.sampler.draw(rng, self.window, stride, self.flip, self.reverse)
        return {"frames": _to_tensor(frames), "stride": torch.tensor(stride)}


class TripletDataset(_SeededDataset):
    """Triplets ``(frame0, frame1, gt, t)`` from real sources, with random ``t`` from longer windows.

    The gap ``k`` between ``frame0`` and ``frame1`` is uniform over ``2..max_gap`` (gaps no run can
    hold are not drawn); ``gt`` is frame ``j``, uniform in ``1..k-1``, so ``t = j / k``. With
    ``random_t=False`` only even gaps are drawn and ``gt`` is the middle frame (t = 0.5).

    Args: as :class:`WindowDataset`.
    Item: ``{"frame0", "frame1", "gt": (3,h,w) float32, "t": float32 0-d}``.
    """

    def __init__(self, sources: Iterable[FrameSource | str | Path], crop: int | tuple[int, int] = 256,
                 max_gap: int = 4, random_t: bool = True, length: int = 10000, seed: int = 0, flip: bool = True,
                 reverse: bool = True, exclusions: Exclusions | None = None):
        super().__init__(length, seed)
        if max_gap < 2:
            raise InputError(f"max_gap must be at least 2 (frame0, gt, frame1), got {max_gap}")
        self.sampler = _WindowSampler(_as_sources(sources, exclusions), _crop_size(crop))
        gaps = [k for k in range(2, max_gap + 1) if random_t or k % 2 == 0]
        self.gaps = [k for k in gaps if len(self.sampler.placements(k + 1)[0])]
        if not self.gaps:
            raise InputError("no source has 3 consecutive usable frames (after exclusions)")
        self.random_t, self.flip, self.reverse = random_t, flip, reverse

    def __getitem__(self, index: int) -> dict:
        rng = self._rng(index)
        gap = self.gaps[int(rng.integers(0, len(self.gaps)))]
        window = _to_tensor(self.sampler.draw(rng, gap + 1, 1, self.flip, self.reverse))
        return _triplet_item(window, _pick_triplet(rng, gap, self.random_t))


def pack_training_crops(sources: Iterable[FrameSource | str | Path], out_path: str | Path,
                        crop: int | tuple[int, int] = 128, n: int = 200, seed: int = 0, window: int = 9,
                        max_stride: int = 1, exclusions: Exclusions | None = None,
                        limit_bytes: int = PACK_LIMIT_BYTES) -> Path:
    """Write ``n`` random windows of ``window`` frames, cropped to ``crop``, to a compressed ``.npz``
    that training on another machine reads with :class:`PackedCropDataset`.

    Uncompressed a window takes ``window * h * w * 3`` bytes: 432 KiB for 9 frames at 128x128
    (48 KiB for 3 frames). Zip compression leaves about 2/3 of that on DAVIS crops (measured 0.66:
    20 windows of 9x128x128 in 5.6 MiB), so 64 MiB hold about 220 such windows. Windows are unaugmented (the reader flips, reverses
    and picks triplets). Arrays: ``frames`` uint8 ``(n, window, h, w, 3)``, ``strides`` uint8 ``(n,)``.

    Raises :class:`InputError` when the written file exceeds ``limit_bytes`` (and before any work
    when the raw size exceeds four times the limit, more than compression could save).
    """
    h, w = _crop_size(crop)
    if n < 1:
        raise InputError(f"n must be at least 1, got {n}")
    raw = n * window * h * w * 3
    if raw > 4 * limit_bytes:  # far beyond what compression can save: refuse before the work
        raise InputError(f"{n} windows of {window}x{w}x{h} take {raw / 2**20:.0f} MiB raw, over the "
                         f"{limit_bytes / 2**20:.0f} MiB limit: pack fewer or smaller windows")
    dataset = WindowDataset(sources, window, (h, w), max_stride, length=n, seed=seed, flip=False, reverse=False,
                            exclusions=exclusions)
    frames = np.empty((n, window, h, w, 3), np.uint8)
    strides = np.empty(n, np.uint8)
    for index in range(n):
        rng = dataset._rng(index)
        stride = dataset.strides[int(rng.integers(0, len(dataset.strides)))]
        frames[index] = np.stack(dataset.sampler.draw(rng, window, stride, False, False))
        strides[index] = stride
    out_path = Path(out_path)
    if out_path.suffix != ".npz":
        raise InputError(f"the pack must be a .npz file, got {out_path}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_suffix(f".{os.getpid()}.partial.npz")
    np.savez_compressed(partial, frames=frames, strides=strides)
    if partial.stat().st_size > limit_bytes:
        size = partial.stat().st_size
        partial.unlink()
        raise InputError(f"the pack would take {size / 2**20:.1f} MiB, over the {limit_bytes / 2**20:.0f} MiB "
                         "limit: pack fewer or smaller windows")
    os.replace(partial, out_path)
    return out_path


class PackedCropDataset(_SeededDataset):
    """Windows or triplets from a pack written by :func:`pack_training_crops` (loaded into memory).

    Args:
        path: the ``.npz`` pack.
        mode: ``"window"``: items ``{"frames": (T,3,h,w), "stride"}``; ``"triplet"``: items
            ``{"frame0", "frame1", "gt", "t"}`` with a gap uniform in ``2..min(max_gap, T-1)``
            placed anywhere in the window and ``t`` as in :class:`TripletDataset`.
        crop: an optional smaller random crop ``(h, w)`` or int; ``None`` keeps the packed size.
        length: items per epoch (default: one per packed window); item ``i`` uses window ``i % n``.
    """

    def __init__(self, path: str | Path, mode: str = "triplet", crop: int | tuple[int, int] | None = None,
                 length: int | None = None, seed: int = 0, max_gap: int = 4, random_t: bool = True,
                 flip: bool = True, reverse: bool = True):
        path = Path(path)
        if not path.is_file():
            raise InputError(f"pack not found: {path}")
        with np.load(path) as pack:
            if "frames" not in pack or "strides" not in pack:
                raise InputError(f"{path} is not a training pack (no frames/strides arrays)")
            self.frames, self.strides = pack["frames"], pack["strides"]
        if mode not in ("window", "triplet"):
            raise InputError(f"mode must be 'window' or 'triplet', got {mode!r}")
        n, frames_per_window, h, w = self.frames.shape[:4]
        self.crop = (h, w) if crop is None else _crop_size(crop)
        if self.crop[0] > h or self.crop[1] > w:
            raise InputError(f"crop {self.crop[1]}x{self.crop[0]} is larger than the packed {w}x{h} windows")
        self.gaps = [k for k in range(2, min(max_gap, frames_per_window - 1) + 1) if random_t or k % 2 == 0]
        if mode == "triplet" and not self.gaps:
            raise InputError(f"packed windows of {frames_per_window} frames are too short for triplets")
        super().__init__(n if length is None else length, seed)
        self.mode, self.random_t, self.flip, self.reverse = mode, random_t, flip, reverse

    def __getitem__(self, index: int) -> dict:
        rng = self._rng(index)
        stored = self.frames[index % len(self.frames)]
        (h, w), (ch, cw) = stored.shape[1:3], self.crop
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        if self.mode == "window":
            window = _augment(list(stored[:, y0:y0 + ch, x0:x0 + cw]), rng, self.flip, self.reverse)
            return {"frames": _to_tensor(window),
                    "stride": torch.tensor(int(self.strides[index % len(self.frames)]))}
        gap = self.gaps[int(rng.integers(0, len(self.gaps)))]
        first = int(rng.integers(0, stored.shape[0] - gap))
        window = _augment(list(stored[first:first + gap + 1, y0:y0 + ch, x0:x0 + cw]), rng, self.flip, self.reverse)
        return _triplet_item(_to_tensor(window), _pick_triplet(rng, gap, self.random_t))
