"""Losses: hand-computed small cases, invariances, shape checks, gradients."""
import math

import pytest
import torch
import torch.nn.functional as F

from vfi_core import losses
from vfi_core.errors import InputError


def _random(shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def test_charbonnier_constant_offset_and_identity():
    a = _random((2, 3, 8, 9))
    eps = 1e-3
    assert losses.charbonnier(a, a, eps).item() == pytest.approx(eps)
    d = 0.25
    assert losses.charbonnier(a + d, a, eps).item() == pytest.approx(math.sqrt(d * d + eps * eps), rel=1e-6)
    assert losses.CharbonnierLoss(eps=0.1)(a + d, a).item() == pytest.approx(math.sqrt(d * d + 0.01), rel=1e-6)


def test_laplacian_l1_identity_offset_and_single_level():
    a, b = _random((1, 3, 16, 16)), _random((1, 3, 16, 16), seed=1)
    assert losses.laplacian_l1(a, a).item() == 0.0
    # a constant offset lives only in the low-pass residual: all band-pass levels are 0
    assert losses.laplacian_l1(a + 0.2, a, levels=5).item() == pytest.approx(0.2, abs=1e-6)
    assert losses.laplacian_l1(a, b, levels=1).item() == pytest.approx((a - b).abs().mean().item(), rel=1e-6)


def test_laplacian_pyramid_reconstructs():
    import torch.nn.functional as F
    x = _random((1, 3, 20, 17))
    pyramid = losses.laplacian_pyramid(x, 4)
    recon = pyramid[-1]
    for level in reversed(pyramid[:-1]):
        recon = level + F.interpolate(recon, size=level.shape[-2:], mode="bilinear", align_corners=False)
    assert torch.allclose(recon, x, atol=1e-6)


def test_census_identity_brightness_invariance_and_sensitivity():
    a = _random((2, 3, 16, 16)) * 0.6
    assert losses.census_loss(a, a).item() == 0.0
    assert losses.census_loss(a + 0.3, a).item() == pytest.approx(0.0, abs=1e-6)
    shifted = torch.roll(a, 3, dims=-1)
    assert losses.CensusLoss(patch=5)(shifted, a).item() > 0.1


def test_ssim_loss_matches_scikit_image_and_identity():
    from skimage.metrics import structural_similarity

    a, b = _random((1, 3, 24, 20)), _random((1, 3, 24, 20), seed=2)
    assert losses.ssim_loss(a, a).item() == pytest.approx(0.0, abs=1e-6)
    a8 = (a[0].permute(1, 2, 0) * 255).round().byte().numpy()
    b8 = (b[0].permute(1, 2, 0) * 255).round().byte().numpy()
    expected = 1.0 - structural_similarity(a8, b8, gaussian_weights=True, use_sample_covariance=False,
                                           data_range=255, channel_axis=-1)
    got = losses.SSIMLoss()(torch.from_numpy(a8).permute(2, 0, 1)[None].double() / 255,
                            torch.from_numpy(b8).permute(2, 0, 1)[None].double() / 255)
    assert got.item() == pytest.approx(expected, abs=1e-9)


def test_gradient_loss_on_a_ramp():
    slope = 0.05
    ramp = (torch.arange(10.0) * slope).view(1, 1, 1, 10).expand(2, 3, 7, 10)
    flat = torch.zeros_like(ramp)
    assert losses.gradient_loss(ramp, flat).item() == pytest.approx(slope, rel=1e-6)
    assert losses.GradientLoss()(ramp + 0.3, ramp).item() == pytest.approx(0.0, abs=1e-7)
    # a vertical ramp counts the same through the y differences
    assert losses.gradient_loss(ramp.transpose(-1, -2), flat.transpose(-1, -2)).item() == pytest.approx(slope, rel=1e-6)


def test_sharpness_deficit_prices_blur_not_misalignment():
    slope = 0.05
    ramp = (torch.arange(10.0) * slope).view(1, 1, 1, 10).expand(2, 3, 7, 10)
    flat = torch.zeros_like(ramp)
    assert losses.sharpness_deficit(flat, ramp).item() == pytest.approx(slope, rel=1e-5)  # partial windows too
    assert losses.SharpnessDeficitLoss(window=4)(ramp, flat).item() == 0.0  # more detail than the target: free
    texture = _random((1, 3, 32, 32))
    shifted = torch.roll(texture, 1, -1)
    assert losses.gradient_loss(shifted, texture).item() > 0.1
    assert losses.sharpness_deficit(shifted, texture, window=32).item() == pytest.approx(0.0, abs=0.01)
    blurred = F.avg_pool2d(texture, 3, 1, 1, count_include_pad=False)
    assert losses.sharpness_deficit(blurred, texture).item() > 0.1
    with pytest.raises(InputError, match="window"):
        losses.sharpness_deficit(texture, texture, window=0)


@pytest.mark.parametrize("fn", [losses.charbonnier, losses.laplacian_l1, losses.census_loss,
                                losses.ssim_loss, losses.gradient_loss, losses.sharpness_deficit])
def test_losses_are_differentiable(fn):
    pred = _random((1, 3, 16, 16)).requires_grad_()
    target = _random((1, 3, 16, 16), seed=3)
    fn(pred, target).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_shape_checks_give_clear_errors():
    a = torch.zeros(1, 3, 16, 16)
    with pytest.raises(InputError, match="differ in shape"):
        losses.charbonnier(a, torch.zeros(1, 3, 16, 15))
    with pytest.raises(InputError, match=r"\(B,C,H,W\)"):
        losses.gradient_loss(a[0], a[0])
    with pytest.raises(InputError, match="float"):
        losses.census_loss(a.byte(), a.byte())
    with pytest.raises(InputError, match="at least 11"):
        losses.ssim_loss(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(InputError, match="at least 16"):
        losses.laplacian_l1(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), levels=5)
    with pytest.raises(InputError, match="odd"):
        losses.census_loss(a, a, patch=4)
