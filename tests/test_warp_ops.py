"""Warping and splatting ops of vfi_core.ops.warp against naive Python loops on tiny inputs."""
import math

import pytest
import torch

from vfi_core.ops.warp import average_splat, backward_warp, forward_splat, softmax_splat

H, W = 5, 6


def _inputs(seed=0, channels=2, dtype=torch.float64, flow_scale=2.5):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, channels, H, W, generator=g, dtype=dtype)
    flow = (torch.rand(1, 2, H, W, generator=g, dtype=dtype) * 2 - 1) * flow_scale
    return x, flow


def _naive_backward_warp(x, flow):
    """Bilinear sampling at p + flow(p), coordinates clamped to the frame (border replication)."""
    _, c, h, w = x.shape
    out = torch.zeros_like(x)
    for y in range(h):
        for xx in range(w):
            sx = min(max(xx + flow[0, 0, y, xx].item(), 0.0), w - 1.0)
            sy = min(max(y + flow[0, 1, y, xx].item(), 0.0), h - 1.0)
            x0, y0 = math.floor(sx), math.floor(sy)
            x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
            ax, ay = sx - x0, sy - y0
            out[0, :, y, xx] = ((1 - ax) * (1 - ay) * x[0, :, y0, x0] + ax * (1 - ay) * x[0, :, y0, x1]
                                + (1 - ax) * ay * x[0, :, y1, x0] + ax * ay * x[0, :, y1, x1])
    return out


def _naive_forward_splat(x, flow):
    """Add x(p) with bilinear weights to the 4 pixels around p + flow(p) that lie in the frame."""
    _, c, h, w = x.shape
    out = torch.zeros_like(x)
    for y in range(h):
        for xx in range(w):
            tx, ty = xx + flow[0, 0, y, xx].item(), y + flow[0, 1, y, xx].item()
            x0, y0 = math.floor(tx), math.floor(ty)
            for cx in (x0, x0 + 1):
                for cy in (y0, y0 + 1):
                    if 0 <= cx < w and 0 <= cy < h:
                        weight = (1 - abs(tx - cx)) * (1 - abs(ty - cy))
                        out[0, :, cy, cx] += weight * x[0, :, y, xx]
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_backward_warp_matches_naive_bilinear_with_border(seed):
    x, flow = _inputs(seed)  # flows up to 2.5 px: many samples fall outside and get clamped
    assert torch.allclose(backward_warp(x, flow), _naive_backward_warp(x, flow), atol=1e-10)


def test_backward_warp_integer_shift_and_zero_flow():
    x, _ = _inputs()
    assert torch.allclose(backward_warp(x, torch.zeros(1, 2, H, W, dtype=x.dtype)), x, atol=1e-12)
    shift = torch.zeros(1, 2, H, W, dtype=x.dtype)
    shift[:, 0] = 1.0
    assert torch.allclose(backward_warp(x, shift)[..., :-1], x[..., 1:], atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_forward_splat_matches_naive_loop(seed):
    x, flow = _inputs(seed)
    assert torch.allclose(forward_splat(x, flow), _naive_forward_splat(x, flow), atol=1e-10)


def test_average_splat_normalises_collisions_and_marks_holes():
    x, _ = _inputs(channels=1)
    flow = torch.zeros(1, 2, H, W, dtype=x.dtype)
    flow[0, 0, 2, 3] = 1.0  # pixel (3,2) lands on (4,2) together with (4,2) itself; (3,2) is a hole
    out, coverage = average_splat(x, flow)
    assert coverage[0, 0, 2, 4].item() == pytest.approx(2.0)
    assert coverage[0, 0, 2, 3].item() == pytest.approx(0.0)
    assert out[0, 0, 2, 4].item() == pytest.approx((x[0, 0, 2, 3] + x[0, 0, 2, 4]).item() / 2)
    untouched = torch.ones(H, W, dtype=torch.bool)
    untouched[2, 3:5] = False
    assert torch.allclose(out[0, 0][untouched], x[0, 0][untouched], atol=1e-6)
    assert torch.allclose(coverage[0, 0][untouched], torch.ones_like(x[0, 0][untouched]))


def test_average_splat_matches_naive_normalisation():
    x, flow = _inputs(seed=3)
    sums = _naive_forward_splat(x, flow)
    weights = _naive_forward_splat(torch.ones_like(x[:, :1]), flow)
    out, coverage = average_splat(x, flow)
    assert torch.allclose(coverage, weights, atol=1e-10)
    assert torch.allclose(out, sums / (weights + 1e-7), atol=1e-10)


def test_softmax_splat_matches_naive_and_lets_the_higher_metric_win():
    x, flow = _inputs(seed=4)
    metric = torch.rand(1, 1, H, W, generator=torch.Generator().manual_seed(5), dtype=x.dtype) * 4
    weight = torch.exp(metric - metric.max())
    num = _naive_forward_splat(x * weight, flow)
    den = _naive_forward_splat(weight, flow)
    out, coverage = softmax_splat(x, flow, metric)
    assert torch.allclose(out, num / (den + 1e-7), atol=1e-10)
    assert torch.allclose(coverage, _naive_forward_splat(torch.ones_like(metric), flow), atol=1e-10)

    # collision at (4,2): the source with the much higher metric takes the pixel
    y, _ = _inputs(channels=1)
    collide = torch.zeros(1, 2, H, W, dtype=y.dtype)
    collide[0, 0, 2, 3] = 1.0
    strong = torch.zeros(1, 1, H, W, dtype=y.dtype)
    strong[0, 0, 2, 3] = 30.0
    out, _ = softmax_splat(y, collide, strong)
    assert out[0, 0, 2, 4].item() == pytest.approx(y[0, 0, 2, 3].item(), abs=1e-6)  # eps=1e-7 in the denominator


def _fractional_flow(seed):
    """Flow whose targets lie inside the frame and away from integer positions (where bilinear
    weights have kinks), so finite differences are valid."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(-1, 2, (1, 2, H, W), generator=g).double()
    frac = 0.2 + 0.6 * torch.rand(1, 2, H, W, generator=g, dtype=torch.float64)
    flow = base + frac
    grid_x = torch.arange(W, dtype=torch.float64).view(1, W)
    grid_y = torch.arange(H, dtype=torch.float64).view(H, 1)
    # keep p + flow in (0, size - 1): move targets that leave the frame back by one pixel
    flow[0, 0] = torch.where(grid_x + flow[0, 0] > W - 1, flow[0, 0] - 2, flow[0, 0])
    flow[0, 0] = torch.where(grid_x + flow[0, 0] < 0, flow[0, 0] + 2, flow[0, 0])
    flow[0, 1] = torch.where(grid_y + flow[0, 1] > H - 1, flow[0, 1] - 2, flow[0, 1])
    flow[0, 1] = torch.where(grid_y + flow[0, 1] < 0, flow[0, 1] + 2, flow[0, 1])
    return flow


@pytest.mark.parametrize("op", [backward_warp, forward_splat])
def test_gradcheck_wrt_input_and_flow(op):
    x, _ = _inputs(seed=6)
    flow = _fractional_flow(seed=7)
    grid_x = torch.arange(W, dtype=torch.float64)
    assert ((grid_x + flow[0, 0]) > 0).all() and ((grid_x + flow[0, 0]) < W - 1).all()
    x.requires_grad_()
    flow.requires_grad_()
    assert torch.autograd.gradcheck(op, (x, flow), eps=1e-6, atol=1e-6)
