"""Classical optical flow (OpenCV DIS) on ``(B,3,H,W)`` frames in [0,1]."""
from __future__ import annotations

import threading

import numpy as np
import torch
import torch.nn.functional as F

from ..cancellation import check_cancelled

DIS_PRESETS = ("ultrafast", "fast", "medium")
DIS_MIN_SIDE = 12  # OpenCV's DIS refuses narrower frames (some under it pass, not all): they are padded


def _shift_errors(a: torch.Tensor, b: torch.Tensor, rx: int, ry: int) -> torch.Tensor:
    """``(2ry+1, 2rx+1)`` mean ``|a(p) - b(p + d)|`` for every shift ``d`` up to ``(rx, ry)``, over the
    pixels where both are defined (``a``, ``b`` ``(H,W)``): ``b`` padded with NaN outside the frame
    and unfolded into one window per shift, for small frames (the memory is one frame per shift)."""
    h, w = a.shape
    padded = F.pad(b[None, None], (rx, rx, ry, ry), value=float("nan"))[0, 0]
    return (padded.unfold(0, h, 1).unfold(1, w, 1) - a).abs().nanmean((-2, -1))


def _shift_error(a: torch.Tensor, b: torch.Tensor, dx: int, dy: int) -> float:
    """One shift of :func:`_shift_errors`, by slicing: for the +-1 refinements at large sizes, where
    unfolding nine frames costs about three times as much."""
    h, w = a.shape
    y0, y1, x0, x1 = max(0, -dy), min(h, h - dy), max(0, -dx), min(w, w - dx)
    return float((a[y0:y1, x0:x1] - b[y0 + dy:y1 + dy, x0 + dx:x1 + dx]).abs().mean())


def global_shift(gray0: torch.Tensor, gray1: torch.Tensor, search_fraction: float = 0.3) -> tuple[int, int]:
    """The dominant translation ``(dx, dy)`` in pixels from ``gray0`` to ``gray1`` (both ``(H,W)``):
    ``gray0(p) ~ gray1(p + d)`` on most of the frame, e.g. a camera pan.

    Exhaustive search of the mean absolute difference on a pyramid: every shift up to
    ``search_fraction`` of the size at the coarsest level (about 1/16 of the frame, at least 16 px
    on its shorter side), then +-1 pixel at each finer level down to full size, so the result is
    exact to a pixel. Area averaging at the coarse levels also hides fine
    periodic texture (a wire fence) that makes local matching alias.
    """
    levels = [torch.stack((gray0, gray1)).float()[:, None]]
    while levels[-1].shape[-1] > gray0.shape[-1] / 16 and min(levels[-1].shape[-2:]) >= 32:
        levels.append(F.avg_pool2d(levels[-1], 2))
    top = levels[-1][:, 0]
    rx, ry = (max(1, int(search_fraction * n)) for n in (top.shape[-1], top.shape[-2]))
    index = int(_shift_errors(top[0], top[1], rx, ry).argmin())  # the first minimum in (dy, dx) order
    dx, dy = index % (2 * rx + 1) - rx, index // (2 * rx + 1) - ry
    level = len(levels) - 1
    while level > 0:
        level -= 1
        a, b = levels[level][:, 0]
        dx, dy = min(((2 * dx + i, 2 * dy + j) for j in (-1, 0, 1) for i in (-1, 0, 1)),
                     key=lambda d: _shift_error(a, b, *d))
    return dx * 2 ** level, dy * 2 ** level


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
        global_motion: start DIS from the frames' dominant translation (:func:`global_shift`)
            instead of zero.

    Why ``global_motion``: DIS's coarse-to-fine search only corrects a few pixels
    per level, so a fast camera pan over fine texture (a fence in front of a running dog, DAVIS
    libby) can leave the whole background at the wrong motion; started from the pan, DIS corrects
    the objects that move differently instead. Where the shift is zero, the flows are plain DIS's.
    """

    def __init__(self, preset: str = "medium", finest_scale: int | None = None, global_motion: bool = False):
        import cv2  # imported here: importing vfi_core must stay cheap

        if preset not in DIS_PRESETS:
            raise ValueError(f"DIS preset must be one of {DIS_PRESETS}, got {preset!r}")
        code = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[preset]
        # OpenCV starts from the flow it is given (and writes the result into it). A call without
        # one after a call with one differs from the same call on a fresh object, and a zero start
        # differs from none, so started calls get an object of their own
        self._code, self._finest_scale = code, None if finest_scale is None else int(finest_scale)
        self._dis = cv2.DISOpticalFlow_create(code)
        self._started = cv2.DISOpticalFlow_create(code) if global_motion else None
        self._global_motion = global_motion
        if finest_scale is not None:
            for dis in filter(None, (self._dis, self._started)):
                dis.setFinestScale(int(finest_scale))

    def __call__(self, frame0: torch.Tensor, frame1: torch.Tensor,
                 start: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Flows ``(F01, F10)``, each ``(B,2,H,W)`` float32 in pixels on ``frame0``'s device.

        ``start``: flows ``(F01, F10)`` of the same shape to start DIS from (e.g. a learned
        estimate), instead of zero or the dominant translation. DIS resamples them to its coarsest
        level and refines from there.
        """
        h, w = frame0.shape[-2:]
        if min(h, w) < DIS_MIN_SIDE:  # edges replicated; the flows are cropped back
            pad = lambda x: F.pad(x.float(), (0, max(0, DIS_MIN_SIDE - w), 0, max(0, DIS_MIN_SIDE - h)),  # noqa: E731
                                  mode="replicate")
            f01, f10 = self(pad(frame0), pad(frame1), None if start is None else (pad(start[0]), pad(start[1])))
            return f01[..., :h, :w].contiguous(), f10[..., :h, :w].contiguous()
        g0, g1 = _gray_uint8(frame0), _gray_uint8(frame1)
        if start is not None:
            s01, s10 = (s.detach().float().permute(0, 2, 3, 1).contiguous().cpu().numpy() for s in start)
        f01, f10 = [], []
        for i, (a, b) in enumerate(zip(g0, g1)):
            check_cancelled()
            if start is not None:
                dis = self._started_object()
                f01.append(dis.calc(a, b, s01[i].copy()))
                f10.append(dis.calc(b, a, s10[i].copy()))
                continue
            shift = (0, 0) if not self._global_motion else global_shift(torch.from_numpy(a), torch.from_numpy(b))
            if shift == (0, 0):
                f01.append(self._dis.calc(a, b, None))
                f10.append(self._dis.calc(b, a, None))
            else:
                start_flow = np.empty((*a.shape, 2), np.float32)
                start_flow[..., 0], start_flow[..., 1] = shift
                f01.append(self._started.calc(a, b, start_flow.copy()))
                f10.append(self._started.calc(b, a, -start_flow))
        f01, f10 = np.stack(f01), np.stack(f10)
        to_t = lambda f: torch.from_numpy(f).permute(0, 3, 1, 2).to(frame0.device)  # noqa: E731
        return to_t(f01), to_t(f10)

    def _started_object(self):
        if self._started is None:
            import cv2

            self._started = cv2.DISOpticalFlow_create(self._code)
            if self._finest_scale is not None:
                self._started.setFinestScale(self._finest_scale)
        return self._started


_estimators = threading.local()  # one OpenCV object per thread and setting: they are not thread-safe


def dis_estimator(preset: str = "medium", finest_scale: int | None = None, global_motion: bool = False) -> DISFlow:
    """A :class:`DISFlow` for these settings, made once per thread (and per process: data workers
    make their own) and reused: models never hold the OpenCV object, which cannot be deep-copied or
    pickled."""
    cache = _estimators.__dict__.setdefault("cache", {})
    key = (preset, finest_scale, global_motion)
    if key not in cache:
        cache[key] = DISFlow(preset, finest_scale, global_motion)
    return cache[key]


def capped_size(h: int, w: int, max_side: int) -> tuple[int, int]:
    """``(h, w)`` scaled so that the longer side is at most ``max_side`` (never upscaled)."""
    scale = min(1.0, max_side / max(h, w))
    return max(2, round(h * scale)), max(2, round(w * scale))


def capped(frame0: torch.Tensor, frame1: torch.Tensor, estimate, max_side: int) -> torch.Tensor:
    """``(B,4,h,w)`` flows ``F01, F10`` of ``estimate(frame0, frame1) -> (F01, F10)`` run on the frames
    area-downscaled to :func:`capped_size` (in the frames' dtype, no gradient), in pixels of that grid
    (an ``estimate`` giving more flows: all of them, concatenated in its order).

    Capping the size instead of scaling by a fixed factor keeps small frames (Vimeo's 448x256) at
    full detail while bounding the cost at 720p and above.
    """
    b, _, h, w = frame0.shape
    size = capped_size(h, w, max_side)
    pair = torch.cat((frame0, frame1)).detach()
    if size != (h, w):
        pair = F.interpolate(pair.float(), size=size, mode="area").to(frame0.dtype)
    return torch.cat(estimate(pair[:b], pair[b:]), 1)


def capped_dis(frame0: torch.Tensor, frame1: torch.Tensor, preset: str = "medium",
               max_side: int = 640, global_motion: bool = False) -> torch.Tensor:
    """:func:`capped` DIS flows (float32), refined down to the capped grid's full resolution
    (``finest_scale`` 0); ``global_motion``: started from the dominant translation (:class:`DISFlow`)."""
    return capped(frame0.float(), frame1.float(), dis_estimator(preset, 0, global_motion), max_side)


def full_dis(frame0: torch.Tensor, frame1: torch.Tensor) -> torch.Tensor:
    """``(B,4,H,W)`` flows ``F01, F10``: DIS medium at the frames' own size, started from the dominant
    translation (the motion the crop-trained recipes use)."""
    return capped_dis(frame0, frame1, "medium", max(frame0.shape[-2:]), True)
