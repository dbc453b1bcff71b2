"""Warping operators on ``(B,C,H,W)`` tensors, differentiable, pure PyTorch (no torchvision).

Flows are ``(B,2,H,W)`` in pixels, channel 0 horizontal (x), channel 1 vertical (y).

- :func:`backward_warp`: ``out(p) = x(p + flow(p))`` by bilinear sampling (``grid_sample``).
- :func:`forward_splat`: bilinear forward splatting ``out(p + flow(p)) += w(p) * x(p)``; the
  basis of average and softmax splatting (Niklaus and Liu, CVPR 2020), returning the accumulated
  weight too, which is how occlusions are detected (a target pixel nobody lands on is a hole).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _check(x: torch.Tensor, flow: torch.Tensor) -> None:
    if x.ndim != 4 or flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"expected x (B,C,H,W) and flow (B,2,H,W), got {tuple(x.shape)} and {tuple(flow.shape)}")
    if x.shape[0] != flow.shape[0] or x.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"x {tuple(x.shape)} and flow {tuple(flow.shape)} differ in batch or size")


def pixel_grid(h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """``(1,2,H,W)`` pixel coordinates (x, y)."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=dtype),
                            torch.arange(w, device=device, dtype=dtype), indexing="ij")
    return torch.stack((xs, ys)).unsqueeze(0)


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize a ``(B,2k,h,w)`` stack of flows to ``size``, rescaling x and y magnitudes."""
    h, w = flow.shape[-2:]
    if (h, w) == tuple(size):
        return flow
    out = F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
    scale = torch.tensor([size[1] / w, size[0] / h], dtype=flow.dtype, device=flow.device)
    return out * scale.repeat(flow.shape[1] // 2).view(1, -1, 1, 1)


def outside_frame(flow: torch.Tensor, margin: float = 0.5) -> torch.Tensor:
    """``(B,1,H,W)`` 1 where ``p + flow`` lies more than ``margin`` pixels outside the frame, else 0."""
    h, w = flow.shape[-2:]
    grid = pixel_grid(h, w, flow.device, flow.dtype)
    x, y = grid[:, :1] + flow[:, :1], grid[:, 1:] + flow[:, 1:]
    return ((x < -margin) | (x > w - 1 + margin) | (y < -margin) | (y > h - 1 + margin)).to(flow.dtype)


def backward_warp(x: torch.Tensor, flow: torch.Tensor, padding_mode: str = "border") -> torch.Tensor:
    """Sample ``x`` at ``p + flow(p)`` with bilinear interpolation.

    Args:
        x: ``(B,C,H,W)`` any float dtype.
        flow: ``(B,2,H,W)`` displacement in pixels from the output pixel to its source in ``x``.
        padding_mode: ``grid_sample``'s, for samples outside the frame ("border" replicates edges).
    """
    _check(x, flow)
    b, _, h, w = x.shape
    coords = pixel_grid(h, w, x.device, flow.dtype) + flow
    # normalise to [-1, 1] with align_corners=True: pixel centres at -1 and 1
    gx = coords[:, 0] * (2.0 / max(w - 1, 1)) - 1.0
    gy = coords[:, 1] * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack((gx, gy), dim=-1).to(x.dtype)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)


def forward_splat(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Bilinear forward splatting: add ``x(p)`` at ``p + flow(p)`` spread over the 4 nearest pixels.

    Contributions landing outside the frame are dropped. Returns the ``(B,C,H,W)`` sums (not
    normalised): splat a ones channel alongside to get the weight for normalising.
    """
    _check(x, flow)
    b, c, h, w = x.shape
    n = h * w
    coords = pixel_grid(h, w, x.device, flow.dtype) + flow
    fx, fy = coords[:, 0].reshape(b, n), coords[:, 1].reshape(b, n)
    x0, y0 = torch.floor(fx), torch.floor(fy)
    ax, ay = fx - x0, fy - y0
    # per axis, the weights of the lower and the upper neighbour, 0 where that neighbour is outside
    wx = torch.stack(((1 - ax) * ((x0 >= 0) & (x0 <= w - 1)), ax * ((x0 >= -1) & (x0 <= w - 2))), 1)
    wy = torch.stack(((1 - ay) * ((y0 >= 0) & (y0 <= h - 1)), ay * ((y0 >= -1) & (y0 <= h - 2))), 1)
    weight = (wy[:, :, None] * wx[:, None]).reshape(b, 4, n).to(x.dtype)
    # flat target index of each of the 4 neighbours (B,2,2,n); int32 arithmetic where it fits
    itype = torch.int32 if b * n < 2**31 else torch.int64
    ix = torch.stack((x0, x0 + 1), 1).clamp_(0, w - 1).to(itype)
    iy = torch.stack((y0, y0 + 1), 1).clamp_(0, h - 1).to(itype)
    index = iy[:, :, None] * w + ix[:, None]
    if b > 1:
        index = index + (torch.arange(b, device=x.device, dtype=itype) * n).view(b, 1, 1, 1)
    # channels first, (C, B*4*n): every channel's additions are one contiguous run (a (B*4*n, C)
    # layout and its transposes took twice as long at 1280x720)
    src = (x.reshape(b, c, n).transpose(0, 1)[:, :, None] * weight).reshape(c, -1)
    out = x.new_zeros(c, b * n).index_add(1, index.reshape(-1).long(), src)
    return out.view(c, b, h, w).transpose(0, 1).contiguous()


def average_splat(x: torch.Tensor, flow: torch.Tensor, eps: float = 1e-7) -> tuple[torch.Tensor, torch.Tensor]:
    """Average splatting. Returns ``(splatted x, coverage)``; coverage ``(B,1,H,W)`` is the summed
    bilinear weight landing on each pixel (about 1 where content arrives, 0 in holes)."""
    ones = torch.ones_like(x[:, :1])
    acc = forward_splat(torch.cat((x, ones), 1), flow)
    coverage = acc[:, -1:]
    return acc[:, :-1] / (coverage + eps), coverage


def softmax_splat(x: torch.Tensor, flow: torch.Tensor, metric: torch.Tensor,
                  eps: float = 1e-7) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax splatting: where several sources land on one pixel, weight them by ``exp(metric)``
    (higher metric wins: e.g. the negated photometric error, so occluding content beats occluded).

    Args:
        metric: ``(B,1,H,W)`` importance of each source pixel.
    Returns:
        ``(splatted x, coverage)`` with coverage as in :func:`average_splat` (from the plain weights).
    """
    # exp(metric - max) keeps the weights finite; the shift cancels in the normalisation
    z = metric - metric.amax(dim=(1, 2, 3), keepdim=True).detach()
    weight = torch.exp(z)
    ones = torch.ones_like(weight)
    acc = forward_splat(torch.cat((x * weight, weight, ones), 1), flow)
    return acc[:, :-2] / (acc[:, -2:-1] + eps), acc[:, -1:]


def fill_holes(x: torch.Tensor, valid: torch.Tensor, levels: int = 12) -> torch.Tensor:
    """Fill pixels where ``valid`` (``(B,1,H,W)`` in [0,1]) is 0 by push-pull interpolation.

    Coarser levels average the valid pixels; each hole takes the value of the finest level that has
    data around it. Valid pixels are kept unchanged.
    """
    weighted, weights = [x * valid], [valid]
    for _ in range(levels):
        if min(weighted[-1].shape[-2:]) <= 1:
            break
        weighted.append(F.avg_pool2d(weighted[-1], 2, ceil_mode=True))
        weights.append(F.avg_pool2d(weights[-1], 2, ceil_mode=True))
    filled = weighted[-1] / weights[-1].clamp_min(1e-8)
    for wx, ww in zip(reversed(weighted[:-1]), reversed(weights[:-1])):
        up = F.interpolate(filled, size=wx.shape[-2:], mode="bilinear", align_corners=False)
        ww_c = ww.clamp(0.0, 1.0)
        filled = torch.where(ww > 1e-8, wx / ww.clamp_min(1e-8), up) * ww_c + up * (1 - ww_c)
    return filled
