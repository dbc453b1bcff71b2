"""Training crops chosen where interpolation is hard, with the motion the model will see at inference.

:func:`pack_motion_crops` runs a motion estimator (:class:`~vfi_core.flow.MotionEstimator`, e.g.
RAFT refined by DIS) on whole frames, exactly as an interpolator does at inference (frames capped to
``max_side``, flows resized back), then cuts crops from the pair. Candidate crops on a grid are
scored by their motion and occlusion, and drawn with probability proportional to

    ``base + mean |F01| / motion_scale + occlusion_weight * occluded share``

so large motion and occlusions (where a blend fails) are oversampled while still-camera crops keep a
share (``base``). Occlusion is the forward-backward inconsistency of the two flows
(``|F01(p) + F10(p + F01(p))| > 0.5 + 0.05 (|F01| + |F10(p + F01)|)``, after Sundaram et al. 2010).

Items are triplets: inputs ``I0 = frame i`` and ``I1 = frame i + 2g`` for a gap ``g`` (the dev
benchmark's naming: gap 1 is frames i, i+2 around i+1), the target ``frame i + j`` for ``j`` in
``1 .. 2g-1`` (``t = j / 2g``). Synthetic scenes (:class:`~vfi_core.data.SyntheticTripletDataset`)
may be added: the estimator runs on the whole scene.

:class:`MotionCropDataset` reads a pack and augments each item with horizontal and vertical flips and
temporal reversal (the flows flipped, negated and swapped to match), giving
``{"frames": (4,3,h,w) = I0,I0,I1,I1, "gt", "t", "four_frame": False, "flows": (4,h,w)}``.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from .datasets import _SeededDataset
from .sources import FrameSource

__all__ = ["CropScoring", "MotionCropDataset", "crop_scores", "pack_motion_crops"]

PACK_KIND = "motion-crops"


@dataclass(frozen=True)
class CropScoring:
    """How candidate crops are weighted (module docstring): ``base + motion / motion_scale +
    occlusion_weight * occluded``; candidates every ``stride`` pixels."""

    base: float = 0.25
    motion_scale: float = 16.0
    occlusion_weight: float = 8.0
    stride: int = 32


def occlusion_mask(f01: torch.Tensor, f10: torch.Tensor) -> torch.Tensor:
    """``(B,1,H,W)`` 1 where frame 0's pixel fails the forward-backward check (occluded in frame 1
    or the flow is wrong there), else 0. Flows ``(B,2,H,W)`` in pixels."""
    from ..ops.warp import backward_warp

    back = backward_warp(f10, f01)
    diff = (f01 + back).norm(dim=1, keepdim=True)
    bound = 0.5 + 0.05 * (f01.norm(dim=1, keepdim=True) + back.norm(dim=1, keepdim=True))
    return (diff > bound).float()


def crop_scores(f01: torch.Tensor, f10: torch.Tensor, crop: int, scoring: CropScoring = CropScoring()
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score every ``crop`` box at multiples of ``scoring.stride`` for one pair (flows ``(1,2,H,W)``).

    Returns ``(positions (N,2) y,x, weights (N,), stats (N,2) mean motion px / occluded share)``.
    """
    import torch.nn.functional as F

    h, w = f01.shape[-2:]
    if h < crop or w < crop:
        raise InputError(f"frames of {w}x{h} are smaller than the {crop}-px crop")
    magnitude = f01.norm(dim=1, keepdim=True)
    occluded = occlusion_mask(f01, f10)
    stats = torch.cat((magnitude, occluded), 1)
    s = scoring.stride
    means = F.avg_pool2d(stats, crop, stride=s)[0]  # (2, ny, nx), boxes at multiples of s
    ny, nx = means.shape[-2:]
    ys, xs = np.meshgrid(np.arange(ny) * s, np.arange(nx) * s, indexing="ij")
    positions = np.stack((ys.ravel(), xs.ravel()), 1)
    m, o = means[0].flatten().numpy(), means[1].flatten().numpy()
    weights = scoring.base + m / scoring.motion_scale + scoring.occlusion_weight * o
    return positions, weights.astype(np.float64), np.stack((m, o), 1)


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0


def _pair_flows(estimator, max_side: int, frame0: np.ndarray, frame1: np.ndarray,
                device: torch.device | None = None) -> torch.Tensor:
    """``(1,4,H,W)`` float32 CPU flows at the frames' size, as an interpolator computes them at
    inference; the estimator runs on ``device`` (default CPU)."""
    from ..flow import capped_flows
    from ..ops.warp import resize_flow

    x0, x1 = _to_tensor(frame0).to(device), _to_tensor(frame1).to(device)
    with torch.no_grad():
        return resize_flow(capped_flows(x0, x1, estimator, max_side), x0.shape[-2:]).float().cpu()


def pack_motion_crops(sources: Iterable[FrameSource], out_path: str | Path, estimator, *, crop: int = 256,
                      pairs: int = 100, crops_per_pair: int = 3, gaps: tuple[int, ...] = (1, 2, 3, 4),
                      synthetic: int = 0, max_side: int = 640, seed: int = 0,
                      scoring: CropScoring = CropScoring(), limit_bytes: int = 1024 * 2**20,
                      progress: Callable[[int, int], None] | None = None,
                      device: torch.device | None = None) -> dict:
    """Write a pack of ``pairs * crops_per_pair + synthetic`` items (module docstring) to ``out_path``.

    Args:
        sources: real frame sources (opened with the dev benchmark's exclusions); sources smaller
            than ``crop`` are skipped. Pairs are drawn uniformly over sources, then gaps, then places.
        estimator: a callable ``(frame0, frame1) -> (F01, F10)`` on ``(1,3,H,W)`` tensors, e.g.
            :class:`~vfi_core.flow.MotionEstimator`; run on frames capped to ``max_side``.
        synthetic: synthetic scenes of ``crop`` px added (estimated the same way).
        limit_bytes: refuse to write a larger file.
        progress: called with ``(done, total)`` pairs.
        device: where the estimator runs (default CPU); the pack is the same up to the estimator's
            numerical differences between devices.

    Arrays: ``frame0``, ``frame1``, ``gt`` uint8 ``(n,h,w,3)``; ``t`` float32 ``(n,)``; ``flows``
    float16 ``(n,4,h,w)`` (``F01``, ``F10`` in pixels); ``gap`` uint8 (0 for synthetic); ``stats``
    float32 ``(n,2)`` (mean motion in px, occluded share); ``info`` a JSON string.
    Returns the summary stored as ``info``.
    """
    out_path = Path(out_path)
    n = _checked_item_count(out_path, crop, pairs, crops_per_pair, synthetic, gaps, limit_bytes)
    usable = [s for s in sources if s.size[0] >= crop and s.size[1] >= crop]
    if pairs and not usable:
        raise InputError(f"no source has frames of at least {crop}x{crop}")
    rng = np.random.default_rng(seed)
    arrays = {"frame0": np.empty((n, crop, crop, 3), np.uint8), "frame1": np.empty((n, crop, crop, 3), np.uint8),
              "gt": np.empty((n, crop, crop, 3), np.uint8), "t": np.empty(n, np.float32),
              "flows": np.empty((n, 4, crop, crop), np.float16), "gap": np.zeros(n, np.uint8),
              "stats": np.empty((n, 2), np.float32)}
    index, total = 0, pairs + synthetic
    for pair in range(pairs):
        source, gap, first = _draw_pair(usable, gaps, rng)
        frame0, frame1 = source.read(first), source.read(first + 2 * gap)
        flows = _pair_flows(estimator, max_side, frame0, frame1, device)
        positions, weights, stats = crop_scores(flows[:, :2], flows[:, 2:], crop, scoring)
        chosen = rng.choice(len(positions), size=min(crops_per_pair, len(positions)), replace=False,
                            p=weights / weights.sum())
        for c in range(crops_per_pair):
            k = int(chosen[c % len(chosen)])
            y, x = positions[k]
            j = int(rng.integers(1, 2 * gap))
            box = (slice(y, y + crop), slice(x, x + crop))
            arrays["frame0"][index] = frame0[box]
            arrays["frame1"][index] = frame1[box]
            arrays["gt"][index] = source.read(first + j)[box]
            arrays["t"][index] = j / (2 * gap)
            arrays["flows"][index] = flows[0, :, box[0], box[1]].numpy().astype(np.float16)
            arrays["gap"][index] = gap
            arrays["stats"][index] = stats[k]
            index += 1
        if progress is not None:
            progress(pair + 1, total)
    for s, item in enumerate(_synthetic_items(synthetic, crop, seed, estimator, max_side, device)):
        for key, value in item.items():
            arrays[key][index] = value
        index += 1
        if progress is not None:
            progress(pairs + s + 1, total)
    info = {"kind": PACK_KIND, "items": n, "crop": crop, "pairs": pairs, "crops_per_pair": crops_per_pair,
            "synthetic": synthetic, "gaps": list(gaps), "max_side": max_side, "seed": seed,
            "estimator": repr(estimator), "scoring": scoring.__dict__,
            "sources": sorted({s.name for s in usable}),
            "mean_motion_px": float(arrays["stats"][:, 0].mean()),
            "mean_occluded": float(arrays["stats"][:, 1].mean())}
    _save_pack(out_path, info, arrays, limit_bytes)
    return info


def _checked_item_count(out_path: Path, crop: int, pairs: int, crops_per_pair: int, synthetic: int,
                        gaps: tuple[int, ...], limit_bytes: int) -> int:
    """The pack's item count, after checking the request (one-line :class:`InputError` otherwise)."""
    if out_path.suffix != ".npz":
        raise InputError(f"the pack must be a .npz file, got {out_path}")
    if crop < 16 or crop % 8:
        raise InputError(f"crop must be a multiple of 8 and at least 16, got {crop}")
    if pairs < 0 or crops_per_pair < 1 or synthetic < 0 or pairs + synthetic < 1:
        raise InputError("pack_motion_crops: pairs, synthetic >= 0 (not both 0), crops_per_pair >= 1")
    if not gaps or min(gaps) < 1:
        raise InputError(f"gaps must be positive integers, got {gaps}")
    n = pairs * crops_per_pair + synthetic
    raw = n * crop * crop * (3 * 3 + 4 * 2)
    if raw > 2 * limit_bytes:
        raise InputError(f"{n} items of {crop}x{crop} take {raw / 2**20:.0f} MiB raw, over the "
                         f"{limit_bytes / 2**20:.0f} MiB limit: pack fewer or smaller crops")
    return n


def _draw_pair(usable: list[FrameSource], gaps: tuple[int, ...], rng: np.random.Generator
               ) -> tuple[FrameSource, int, int]:
    """A source, a gap that fits one of its runs, and the pair's first frame index, from ``rng``."""
    while True:
        source = usable[int(rng.integers(0, len(usable)))]
        gap = int(gaps[int(rng.integers(0, len(gaps)))])
        runs = [(a, b) for a, b in source.runs if b - a > 2 * gap]
        if runs:
            break
    a, b = runs[int(rng.integers(0, len(runs)))]
    return source, gap, int(rng.integers(a, b - 2 * gap))


def _synthetic_items(count: int, crop: int, seed: int, estimator, max_side: int,
                     device: torch.device | None) -> Iterator[dict[str, np.ndarray | float]]:
    """``count`` synthetic scenes of ``crop`` px as pack items (``gap`` stays 0), motion estimated
    as for real pairs."""
    if not count:
        return
    from .synthetic import SyntheticTripletDataset

    scenes = SyntheticTripletDataset(crop, length=count, seed=seed + 7919)
    for s in range(count):
        item = scenes[s]
        images = [(item[key].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                  for key in ("frame0", "frame1", "gt")]
        flows = _pair_flows(estimator, max_side, images[0], images[1], device)
        _, _, stats = crop_scores(flows[:, :2], flows[:, 2:], crop, CropScoring(stride=crop))
        yield {"frame0": images[0], "frame1": images[1], "gt": images[2], "t": float(item["t"]),
               "flows": flows[0].numpy().astype(np.float16), "stats": stats[0]}


def _save_pack(out_path: Path, info: dict, arrays: dict[str, np.ndarray], limit_bytes: int) -> None:
    """Write the pack beside ``out_path`` and rename it into place; refuse a file over ``limit_bytes``."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_suffix(f".{os.getpid()}.partial.npz")
    np.savez_compressed(partial, info=np.array(json.dumps(info)), **arrays)
    size = partial.stat().st_size
    if size > limit_bytes:
        partial.unlink()
        raise InputError(f"the pack would take {size / 2**20:.1f} MiB, over the {limit_bytes / 2**20:.0f} MiB "
                         "limit: pack fewer or smaller crops")
    os.replace(partial, out_path)


def is_motion_pack(path: str | Path) -> bool:
    """Whether ``path`` is a pack written by :func:`pack_motion_crops`."""
    try:
        with np.load(path) as pack:
            return "info" in pack and json.loads(str(pack["info"])).get("kind") == PACK_KIND
    except (OSError, ValueError):
        return False


class MotionCropDataset(_SeededDataset):
    """Items of a :func:`pack_motion_crops` pack (loaded into memory), augmented (module docstring).

    Args:
        path: the ``.npz`` pack. crop: an optional smaller random crop (int); ``None``: as packed.
        length: items per epoch (default: the pack's); item ``i`` uses packed item ``i % n``.
    """

    def __init__(self, path: str | Path, crop: int | None = None, length: int | None = None, seed: int = 0,
                 flip: bool = True, reverse: bool = True):
        path = Path(path)
        if not path.is_file():
            raise InputError(f"pack not found: {path}")
        if not is_motion_pack(path):
            raise InputError(f"{path} is not a motion-crop pack (written by pack_motion_crops)")
        with np.load(path) as pack:
            self.info = json.loads(str(pack["info"]))
            self.arrays = {k: pack[k] for k in ("frame0", "frame1", "gt", "t", "flows")}
        size = self.arrays["frame0"].shape[1]
        self.crop = size if crop is None else int(crop)
        if not 16 <= self.crop <= size:
            raise InputError(f"crop {self.crop} must be between 16 and the packed {size}")
        super().__init__(len(self.arrays["t"]) if length is None else length, seed)
        self.flip, self.reverse = flip, reverse

    def __getitem__(self, index: int) -> dict:
        rng = self._rng(index)
        k = index % len(self.arrays["t"])
        size, c = self.arrays["frame0"].shape[1], self.crop
        y, x = int(rng.integers(0, size - c + 1)), int(rng.integers(0, size - c + 1))
        box = (slice(y, y + c), slice(x, x + c))
        images = [torch.from_numpy(np.ascontiguousarray(self.arrays[key][k][box])).permute(2, 0, 1).float() / 255.0
                  for key in ("frame0", "frame1", "gt")]
        flows = torch.from_numpy(self.arrays["flows"][k][:, box[0], box[1]].astype(np.float32))
        t = float(self.arrays["t"][k])
        if self.flip and rng.random() < 0.5:  # horizontal: x reversed, u negated
            images = [im.flip(-1) for im in images]
            flows = flows.flip(-1) * torch.tensor([-1.0, 1.0, -1.0, 1.0]).view(4, 1, 1)
        if self.flip and rng.random() < 0.5:  # vertical: y reversed, v negated
            images = [im.flip(-2) for im in images]
            flows = flows.flip(-2) * torch.tensor([1.0, -1.0, 1.0, -1.0]).view(4, 1, 1)
        if self.reverse and rng.random() < 0.5:  # time reversed: the frames and their flows swap
            images = [images[1], images[0], images[2]]
            flows, t = torch.cat((flows[2:], flows[:2])), 1.0 - t
        f0, f1, gt = images
        return {"frames": torch.stack((f0, f0, f1, f1)), "gt": gt, "t": torch.tensor(t, dtype=torch.float32),
                "four_frame": torch.tensor(False), "flows": flows}
