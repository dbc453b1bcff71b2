"""Motion estimation shared by every interpolator: one declared choice, ``motion``.

- ``dis``: OpenCV DIS (:class:`~vfi_core.ops.flow.DISFlow`), started from the frames' dominant
  translation where the model asks for it. Photometrically precise on small motion; its
  coarse-to-fine search loses large displacements.
- ``raft``: RAFT (:mod:`vfi_core.flow.raft`, the official weights) on the frames downscaled to
  ``raft_max_side``, upsampled. Follows large motion; smooth, so less precise on small motion.
- ``raft-dis``: DIS started from RAFT's flow instead of zero: RAFT finds the large displacements,
  DIS refines them to its photometric precision.
- ``auto`` (the default): ``raft-dis`` where the RAFT weights are installed, else ``dis``, with a
  warning naming the install command.

RAFT runs on the frames' device and dtype, once per pair: callers keep the flows of a pair for all
its t.
"""
from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass

import torch

from ..cancellation import check_cancelled
from ..ops.flow import capped, dis_estimator
from ..ops.warp import resize_flow
from ..registry import Param
from . import raft_weights

MOTIONS = ("auto", "dis", "raft", "raft-dis")
# RAFT's working size, and its iterations alone and as DIS's start, chosen on training-allowed frames
# (docs/results.md): 427 px gained 0.04 dB over 320 for 1.4x the time per frame; as a start, 12 iterations
# gained nothing over 6
RAFT_MAX_SIDE = 320
RAFT_ITERATIONS = 12
RAFT_START_ITERATIONS = 6


def motion_param(default: str = "auto") -> Param:
    """The ``motion`` parameter, declared once for every model that estimates motion."""
    return Param("motion", str, default,
                 "Motion estimator: dis (classical, fast, precise on small motion), raft (learned, follows "
                 "large motion), raft-dis (RAFT's flow refined by DIS), auto (raft-dis when the RAFT "
                 "weights are installed, else dis).", choices=MOTIONS)


def raft_hypotheses_param(default: bool = False) -> Param:
    """The ``raft_hypotheses`` parameter, declared once for every model that blends motion hypotheses."""
    return Param("raft_hypotheses", bool, default,
                 "With RAFT's flow refined by DIS (motion auto with the RAFT weights, or raft-dis), RAFT's own "
                 "flow gives motion hypotheses beside the refined flow's, weighed per pixel by how well "
                 "their warped frames agree: follows motion that DIS's refinement gets wrong (repeated "
                 "texture, fast non-rigid motion) for higher PSNR, but softer frames.")


_warned = False


def resolve_motion(motion: str) -> str:
    """The estimator ``motion`` stands for: ``auto`` becomes ``raft-dis`` or ``dis`` (warning once).
    Raises the one-line :class:`~vfi_core.flow.raft_weights.RAFTWeightsMissing` for an explicit RAFT
    choice without the weights."""
    global _warned
    if motion not in MOTIONS:
        from ..errors import ParameterError

        raise ParameterError(f"motion must be one of {', '.join(MOTIONS)}, got {motion!r}")
    if motion == "auto":
        if raft_weights.available("large"):
            return "raft-dis"
        if not _warned:
            _warned = True
            warnings.warn(f"motion=auto uses DIS alone: the RAFT weights are not installed "
                          f"(`{raft_weights.INSTALL_COMMAND}` adds them)", stacklevel=2)
        return "dis"
    if motion != "dis":
        raft_weights.verified_path("large")
    return motion


_models: dict[tuple, torch.nn.Module] = {}
_models_lock = threading.Lock()


def raft_model(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
               variant: str = "large") -> torch.nn.Module:
    """The official RAFT ``variant`` on ``device``/``dtype``, in eval mode, loaded once per process."""
    from .raft import RAFT, VARIANTS

    key = (variant, str(torch.device(device)), dtype)
    with _models_lock:
        if key not in _models:
            net = RAFT(VARIANTS[variant])
            net.load_state_dict(raft_weights.load_state_dict(variant), strict=True)
            _models[key] = net.eval().requires_grad_(False).to(device=device, dtype=dtype)
        return _models[key]


def raft_flows(frame0: torch.Tensor, frame1: torch.Tensor, size: tuple[int, int], *,
               max_side: int = RAFT_MAX_SIDE, iterations: int = RAFT_ITERATIONS,
               variant: str = "large") -> tuple[torch.Tensor, torch.Tensor]:
    """RAFT's ``(F01, F10)`` for ``(B,3,H,W)`` frames, computed on them area-downscaled to
    ``max_side`` and returned bilinearly resized to ``size`` ``(h, w)``, in pixels of that size
    (float32, frames' device)."""
    net = raft_model(frame0.device, frame0.dtype, variant)

    def estimate(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode():
            return net.bidirectional(a, b, iterations)

    flows = resize_flow(capped(frame0, frame1, estimate, max_side).float(), tuple(size))
    return flows[:, :2].clone(), flows[:, 2:].clone()


@dataclass(frozen=True)
class MotionEstimator:
    """Bidirectional flow ``(F01, F10)`` at the frames' size, for one resolved ``motion`` choice.

    Args:
        motion: one of :data:`MOTIONS` (``auto`` is resolved here).
        dis_preset, dis_finest_scale, global_motion: DIS's settings (:class:`~vfi_core.ops.flow.DISFlow`);
            ``global_motion`` applies to ``dis`` alone (RAFT's start replaces it in ``raft-dis``).
        raft_max_side, raft_iterations: RAFT's working size and update iterations (``None``:
            :data:`RAFT_ITERATIONS` for ``raft``, :data:`RAFT_START_ITERATIONS` for ``raft-dis``).
    """

    motion: str = "auto"
    dis_preset: str = "medium"
    dis_finest_scale: int | None = None
    global_motion: bool = True
    raft_max_side: int = RAFT_MAX_SIDE
    raft_iterations: int | None = None

    def __call__(self, frame0: torch.Tensor, frame1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(F01, F10)``, each ``(B,2,H,W)`` float32 in pixels on ``frame0``'s device."""
        f01, f10, _ = self.with_start(frame0, frame1)
        return f01, f10

    def with_start(self, frame0: torch.Tensor, frame1: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """``(F01, F10, start)``: the flows as :meth:`__call__` gives them, and for ``raft-dis`` the
        RAFT flows ``(R01, R10)`` that DIS started from (``None`` for ``dis`` and ``raft``). Where DIS's
        refinement goes wrong (periodic texture, fast non-rigid motion) RAFT's own flow is often
        right: a model may keep both as motion hypotheses."""
        kind = resolve_motion(self.motion)
        check_cancelled()
        if kind == "dis":
            return *dis_estimator(self.dis_preset, self.dis_finest_scale, self.global_motion)(frame0, frame1), None
        iterations = self.raft_iterations or (RAFT_ITERATIONS if kind == "raft" else RAFT_START_ITERATIONS)
        start = raft_flows(frame0, frame1, tuple(frame0.shape[-2:]), max_side=self.raft_max_side,
                           iterations=iterations)
        if kind == "raft":
            return *start, None
        check_cancelled()
        return *dis_estimator(self.dis_preset, self.dis_finest_scale, False)(frame0, frame1, start=start), start


FULL_RESOLUTION_FLOW_BELOW = 640  # long side in pixels (flow-asb's module docstring has the figures)


def frame_estimator(height: int, width: int, motion: str = "auto", dis_preset: str = "medium",
                    global_motion: bool = True) -> MotionEstimator:
    """The estimator the flow-based interpolators use for frames of ``height`` x ``width``: DIS
    refined down to full resolution for frames up to :data:`FULL_RESOLUTION_FLOW_BELOW` pixels on
    their long side, the preset's own finest level above."""
    full = max(height, width) <= FULL_RESOLUTION_FLOW_BELOW
    return MotionEstimator(motion, dis_preset, 0 if full else None, global_motion)


class PairFlows:
    """The flows of the last frame pair, kept for every t of that pair (a sequence asks for several
    t of one pair in a row). The pair is copied: callers may reuse their tensors for the next one."""

    def __init__(self):
        self._last: tuple | None = None

    def get(self, frame0: torch.Tensor, frame1: torch.Tensor, compute, key=None):
        """``compute()``'s result for this pair and ``key`` (the settings it depends on), computed once."""
        last = self._last
        if last is not None and last[2] == key and last[0].shape == frame0.shape \
                and torch.equal(last[0], frame0) and torch.equal(last[1], frame1):
            return last[3]
        value = compute()
        self._last = (frame0.clone(), frame1.clone(), key, value)
        return value


def capped_flows(frame0: torch.Tensor, frame1: torch.Tensor, estimator: MotionEstimator,
                 max_side: int = 640, with_start: bool = False) -> torch.Tensor:
    """``(B,4,h,w)`` flows ``F01, F10`` (float32) of ``estimator`` on the frames area-downscaled to
    :func:`~vfi_core.ops.flow.capped_size` ``max_side``, in pixels of that grid
    (:func:`~vfi_core.ops.flow.capped`). ``with_start``: ``(B,8,h,w)``, RAFT's start ``R01, R10``
    after them, where the estimator has one (:meth:`MotionEstimator.with_start`)."""
    if not with_start:
        return capped(frame0, frame1, estimator, max_side)

    def estimate(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f01, f10, start = estimator.with_start(a, b)
        return (f01, f10) if start is None else (f01, f10, *start)

    return capped(frame0, frame1, estimate, max_side)
