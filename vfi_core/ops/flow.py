"""Classical optical flow (OpenCV DIS) on ``(B,3,H,W)`` frames in [0,1]."""
from __future__ import annotations

import threading

import numpy as np
import torch
import torch.nn.functional as F

DIS_PRESETS = ("ultrafast", "fast", "medium")


def _gray_uint8(frames: torch.Tensor) -> np.ndarray:
    # ITU-R BT.601 luma, as cv2.COLOR_RGB2GRAY
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32, device=frames.device).view(1, 3, 1, 1)
    gray = (frames.float() * weights).sum(1).mul(255.0).round().clamp(0, 255).to(torch.uint8)
    return gray.cpu().numpy()


class DISFlow:
    """Bidirectional DIS optical flow (Kroeger et al., ECCV 2016) through OpenCV.

    Args:
        preset: "ultrafast", "fast" or "medium" (OpenCV's presets).
        finest_scale: the finest pyramid level DIS refines (0 = full resolution); ``None`` keeps the preset's.
    """

    def __init__(self, preset: str = "medium", finest_scale: int | None = None):
        import cv2  # imported here: importing vfi_core must stay cheap

        if preset not in DIS_PRESETS:
            raise ValueError(f"DIS preset must be one of {DIS_PRESETS}, got {preset!r}")
        code = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[preset]
        self._dis = cv2.DISOpticalFlow_create(code)
        if finest_scale is not None:
            self._dis.setFinestScale(int(finest_scale))

    def __call__(self, frame0: torch.Tensor, frame1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flows ``(F01, F10)``, each ``(B,2,H,W)`` float32 in pixels on ``frame0``'s device."""
        g0, g1 = _gray_uint8(frame0), _gray_uint8(frame1)
        f01 = np.stack([self._dis.calc(a, b, None) for a, b in zip(g0, g1)])
        f10 = np.stack([self._dis.calc(b, a, None) for a, b in zip(g0, g1)])
        to_t = lambda f: torch.from_numpy(f).permute(0, 3, 1, 2).to(frame0.device)  # noqa: E731
        return to_t(f01), to_t(f10)


_estimators = threading.local()  # one OpenCV object per thread and setting: they are not thread-safe


def dis_estimator(preset: str = "medium", finest_scale: int | None = None) -> DISFlow:
    """A :class:`DISFlow` for ``(preset, finest_scale)``, made once per thread (and per process: data
    workers make their own) and reused: models never hold the OpenCV object, which cannot be
    deep-copied or pickled."""
    cache = _estimators.__dict__.setdefault("cache", {})
    key = (preset, finest_scale)
    if key not in cache:
        cache[key] = DISFlow(preset, finest_scale)
    return cache[key]


def capped_size(h: int, w: int, max_side: int) -> tuple[int, int]:
    """``(h, w)`` scaled so that the longer side is at most ``max_side`` (never upscaled)."""
    scale = min(1.0, max_side / max(h, w))
    return max(2, round(h * scale)), max(2, round(w * scale))


def capped_dis(frame0: torch.Tensor, frame1: torch.Tensor, preset: str = "medium",
               max_side: int = 640) -> torch.Tensor:
    """``(B,4,h,w)`` DIS flows ``F01, F10`` (float32, no gradient) on the frames area-downscaled to
    :func:`capped_size`, refined down to that grid's full resolution (``finest_scale`` 0), in pixels
    of that grid.

    Capping the size instead of scaling by a fixed factor keeps small frames (Vimeo's 448x256) at
    full detail while bounding the cost at 720p and above.
    """
    b, _, h, w = frame0.shape
    size = capped_size(h, w, max_side)
    pair = torch.cat((frame0, frame1)).detach().float()
    if size != (h, w):
        pair = F.interpolate(pair, size=size, mode="area")
    f01, f10 = dis_estimator(preset, finest_scale=0)(pair[:b], pair[b:])
    return torch.cat((f01, f10), 1)
