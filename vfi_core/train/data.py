"""Training batches: four-frame items ``[I-1, I0, I1, I2]`` (``items="quadruplet"``, SVMV) or
whole windows of 9 frames (``items="window"``, MiVID).

A data spec (``--data``, repeatable) is one of:

- ``synthetic``: :class:`~vfi_core.data.SyntheticTripletDataset` scenes with exact motion: two-frame
  items with ground-truth flows (supervised);
- a ``.npz`` pack from :func:`~vfi_core.data.pack_training_crops` (the way data travels to a GPU);
- a ``.npz`` pack from :func:`~vfi_core.data.motion_pack.pack_motion_crops`: two-frame items chosen
  where motion is large and occlusions are, with the motion estimator's flows (``flows``
  ``(B,4,h,w)``) computed on the whole frames as at inference;
- a video file or a folder of frames/sequences (opened with the dev benchmark's exclusions).

Packs and video give windows of frames, cut into quadruplets ``I-1, I0, I1, I2`` at a gap ``k``
(``t = j/k``, the target frame ``j`` between ``I0`` and ``I1``) or, with probability
``two_frame_probability``, into two-frame items whose outer frames repeat ``I0``/``I1`` (pairs and
clip ends); these carry no motion ground truth (self-supervised: the video is its own target).

With ``items="window"`` every item is a whole window ``(9,3,h,w)``, uncut (the model chooses its
masks); ``synthetic`` then gives :class:`~vfi_core.data.SyntheticWindowDataset` windows of 9 frames
evenly spaced over one scene's motion.

Batches are stateless in the step: batch ``s`` is drawn from ``numpy.random.default_rng([seed, s])``,
so a resumed run sees exactly the batches an uninterrupted one would.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data import (PackedCropDataset, SyntheticTripletDataset, SyntheticWindowDataset, WindowDataset,
                    dev_benchmark_exclusions, open_sources)
from ..data.motion_pack import MotionCropDataset, is_motion_pack
from ..errors import InputError

_ITEMS = 2**31 - 1  # dataset length: items are drawn by index from the step's random stream
_WINDOW = 9
ITEM_MODES = ("quadruplet", "window")


def _quadruplet(window: torch.Tensor, rng: np.random.Generator, two_frame_probability: float,
                max_gap: int) -> dict:
    """Cut ``(T,3,h,w)`` into ``{"frames": (4,3,h,w), "gt", "t", "four_frame"}``."""
    frames = window.shape[0]
    four = [k for k in range(2, max_gap + 1) if 3 * k + 1 <= frames]
    if four and rng.random() >= two_frame_probability:
        k = four[int(rng.integers(0, len(four)))]
        a = int(rng.integers(k, frames - 2 * k))
        idx, four_frame = (a - k, a, a + k, a + 2 * k), True
    else:
        k = int(rng.integers(2, min(max_gap, frames - 1) + 1))
        a = int(rng.integers(0, frames - k))
        idx, four_frame = (a, a, a + k, a + k), False
    j = int(rng.integers(1, k))
    return {"frames": window[list(idx)], "gt": window[a + j], "t": torch.tensor(j / k, dtype=torch.float32),
            "four_frame": torch.tensor(four_frame)}


class _Source:
    def __init__(self, spec: str, dataset, kind: str):
        self.spec, self.dataset, self.kind = spec, dataset, kind


class TrainingData:
    """Batches from one or more data specs (module docstring), one source per batch.

    Args:
        specs: data specs. crop: square crop size (divisible by 16 for SVMV).
        batch_size: items per batch. seed: the data seed.
        weights: relative frequency of each spec (default: equal).
        two_frame_probability: share of window items given as two-frame input.
        max_gap: largest frame gap ``k`` cut from windows.
        shared_dir: the folder holding ``data/dev/triplets.csv``; needed for video/folder specs so
            that the dev benchmark's frames are never trained on.
        max_side: video/folder frames are downscaled to this longest side first (``None``: as is).
        items: ``"quadruplet"`` (four-frame items, the default) or ``"window"`` (whole 9-frame windows).
    """

    def __init__(self, specs: list[str], crop: int, batch_size: int, seed: int = 0,
                 weights: list[float] | None = None, two_frame_probability: float = 0.5, max_gap: int = 4,
                 shared_dir: str | Path | None = None, max_side: int | None = None, items: str = "quadruplet"):
        if items not in ITEM_MODES:
            raise InputError(f"training items must be one of {', '.join(ITEM_MODES)}, got {items!r}")
        self.items = items
        if not specs:
            raise InputError("no training data: pass --data synthetic, a .npz pack, a video or a folder")
        if batch_size < 1 or crop < 16:
            raise InputError(f"batch_size must be >= 1 and crop >= 16, got {batch_size} and {crop}")
        if weights is not None and (len(weights) != len(specs) or min(weights) < 0 or sum(weights) <= 0):
            raise InputError(f"data weights {weights} must be {len(specs)} non-negative numbers, not all 0")
        self.crop, self.batch_size, self.seed = crop, batch_size, seed
        self.two_frame_probability, self.max_gap = two_frame_probability, max_gap
        self.sources = [self._open(spec, shared_dir, max_side) for spec in specs]
        p = np.asarray(weights if weights is not None else [1.0] * len(specs), dtype=np.float64)
        self.probabilities = p / p.sum()

    def _open(self, spec: str, shared_dir, max_side) -> _Source:
        if spec == "synthetic" and self.items == "window":
            return _Source(spec, SyntheticWindowDataset(self.crop, window=_WINDOW, length=_ITEMS, seed=self.seed),
                           "synthetic-window")
        if spec == "synthetic":
            return _Source(spec, SyntheticTripletDataset(self.crop, length=_ITEMS, seed=self.seed), "synthetic")
        path = Path(spec)
        if not path.exists():
            raise InputError(f"training data not found: {spec} (use 'synthetic', a .npz pack, a video or a folder)")
        if path.suffix == ".npz" and is_motion_pack(path):
            if self.items == "window":
                raise InputError(f"{spec}: a motion-crop pack holds triplets, not the windows this model trains on")
            return _Source(spec, MotionCropDataset(path, crop=self.crop, length=_ITEMS, seed=self.seed), "motion")
        if path.suffix == ".npz":
            return _Source(spec, PackedCropDataset(path, mode="window", crop=self.crop, length=_ITEMS,
                                                   seed=self.seed), "window")
        if shared_dir is None:
            raise InputError(f"{spec}: training on video or folders needs the dev benchmark's exclusions: "
                             "pass --shared DIR (the folder holding data/dev/triplets.csv, whose frames "
                             "training must exclude)")
        if not (Path(shared_dir) / "data" / "dev" / "triplets.csv").is_file():
            raise InputError(f"{spec}: --shared {shared_dir} holds no data/dev/triplets.csv: pass --shared DIR "
                             "(the folder holding data/dev/triplets.csv, whose frames training must exclude)")
        sources = open_sources([path], dev_benchmark_exclusions(shared_dir), max_side=max_side)
        return _Source(spec, WindowDataset(sources, window=_WINDOW, crop=self.crop, length=_ITEMS,
                                           seed=self.seed), "window")

    def batch(self, step: int) -> dict:
        """Batch ``step`` (deterministic): ``frames`` ``(B,4,3,h,w)``, ``gt`` ``(B,3,h,w)``, ``t`` ``(B,)``,
        ``four_frame`` ``(B,)`` bool, and for synthetic batches ``flow_t0``, ``flow_t1``, ``visible_t0``,
        ``visible_t1``. With ``items="window"``: ``frames`` ``(B,9,3,h,w)`` only."""
        rng = np.random.default_rng([self.seed, step])
        source = self.sources[int(rng.choice(len(self.sources), p=self.probabilities))]
        indices = rng.integers(0, _ITEMS, self.batch_size)
        items = []
        for index in indices:
            item = source.dataset[int(index)]
            if self.items == "window":
                item = {"frames": item["frames"]}
            elif source.kind == "motion":
                pass  # already a two-frame item with its flows
            elif source.kind == "synthetic":
                item = {"frames": torch.stack((item["frame0"], item["frame0"], item["frame1"], item["frame1"])),
                        "gt": item["gt"], "t": item["t"], "four_frame": torch.tensor(False),
                        **{k: item[k] for k in ("flow_t0", "flow_t1", "visible_t0", "visible_t1")}}
            else:
                item = _quadruplet(item["frames"], rng, self.two_frame_probability, self.max_gap)
            items.append(item)
        return {key: torch.stack([item[key] for item in items]) for key in items[0]}
