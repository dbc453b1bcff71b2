import pytest
import torch

import vfi_core
from conftest import moving_square


@pytest.mark.parametrize("t", [0.25, 0.5, 0.75])
def test_middle_frame_lands_where_the_pattern_is_at_t(t):
    h, w, x_start, x_end, y, size = 160, 224, 60, 72, 50, 32
    frame0 = moving_square(h, w, x_start, y, size)
    frame1 = moving_square(h, w, x_end, y, size)
    out = vfi_core.load("flow-asb").interpolate(frame0, frame1, t)
    # the square position that best explains the output is the true position at t
    errors = {x: (out - moving_square(h, w, x, y, size)).abs().mean().item() for x in range(x_start - 4, x_end + 5)}
    x_true = round(x_start + t * (x_end - x_start))
    assert min(errors, key=errors.get) == x_true
    assert errors[x_true] < 0.003
    # a plain cross-fade (what a failed motion estimate degenerates to) is far worse
    blend = (1 - t) * frame0 + t * frame1
    assert (blend - moving_square(h, w, x_true, y, size)).abs().mean().item() > 2.5 * errors[x_true]


def test_t_zero_and_one_give_the_inputs():
    frame0 = moving_square(48, 64, 10, 10)
    frame1 = moving_square(48, 64, 20, 14)
    model = vfi_core.load("flow-asb")
    out = model.interpolate(torch.cat((frame0, frame0)), torch.cat((frame1, frame1)), torch.tensor([0.0, 1.0]))
    assert (out[0] - frame0[0]).abs().mean() < 0.005
    assert (out[1] - frame1[0]).abs().mean() < 0.005


def test_confidence_is_lower_at_the_moving_object_than_in_static_background():
    frame0 = moving_square(64, 96, 20, 24, size=16)
    frame1 = moving_square(64, 96, 28, 24, size=16)
    res = vfi_core.load("flow-asb").interpolate_with_confidence(frame0, frame1, 0.5)
    assert res.confidence.shape == (1, 1, 64, 96)
    assert res.confidence[..., :8, :].mean() > 0.9  # top rows: static background


def test_outside_frame_marks_samples_beyond_the_border():
    from vfi_core.ops.warp import outside_frame

    flow = torch.zeros(1, 2, 6, 10)
    flow[:, 0] = -3.0  # every pixel samples 3 px to its left
    flow[:, 1, 5] = 2.0  # the bottom row also samples 2 px below itself
    out = outside_frame(flow)
    assert out.shape == (1, 1, 6, 10)
    expected = torch.zeros(6, 10)
    expected[:, :3] = 1  # x - 3 < -0.5 for x = 0, 1, 2
    expected[5] = 1
    assert torch.equal(out[0, 0], expected)


def test_agreement_weights_hand_computed():
    from vfi_core.ops.motion import agreement_weights

    disagree = torch.zeros(2, 1, 1, 9, 9)
    disagree[1] = 0.05  # the second hypothesis' warps differ by 0.05 everywhere
    assert torch.equal(agreement_weights(disagree, 0.0), torch.ones_like(disagree))
    full = agreement_weights(disagree, 1.0)  # sigma 0.01
    assert torch.allclose(full[0], torch.ones(1, 1, 9, 9))
    torch.testing.assert_close(full[1], torch.full((1, 1, 9, 9), torch.exp(torch.tensor(-5.0)).item()))
    half = agreement_weights(disagree, 0.5)  # sigma 0.1
    torch.testing.assert_close(half[1], torch.full((1, 1, 9, 9), torch.exp(torch.tensor(-0.5)).item()))
    # the disagreement is averaged over a 5x5 window: one differing pixel weighs a 25th
    spike = torch.zeros(2, 1, 1, 9, 9)
    spike[1, ..., 4, 4] = 0.25
    torch.testing.assert_close(agreement_weights(spike, 1.0)[1, 0, 0, 4, 4], torch.exp(torch.tensor(-1.0)))


def test_sharp_samples_hand_computed():
    from vfi_core.ops.motion import sharp_samples

    soft = torch.full((1, 3, 9, 9), 0.5)
    sharp = torch.full((1, 3, 9, 9), 0.7)
    sharp[..., 0, 0] = 1.3  # bicubic overshoot: clamped to the range
    agree = torch.zeros(1, 1, 9, 9)
    assert sharp_samples(soft, sharp, agree, 0.0) is soft
    at_one = sharp_samples(soft, sharp, agree + 0.5, 1.0)  # 1: bicubic everywhere
    assert at_one[..., 0, 0].eq(1.0).all() and at_one[..., 4, 4].eq(0.7).all()
    # where the warps agree the bicubic samples are taken whatever the sharpness
    torch.testing.assert_close(sharp_samples(soft, sharp, agree, 0.2)[..., 4, 4], torch.full((1, 3), 0.7))
    # 0.5: sigma 0.02, so a disagreement of 0.02 leaves exp(-1) of the bicubic step
    mixed = sharp_samples(soft, sharp, agree + 0.02, 0.5)[0, 0, 4, 4]
    torch.testing.assert_close(mixed, 0.5 + 0.2 * torch.exp(torch.tensor(-1.0)))
    # a lower sharpness keeps less of it at the same disagreement
    assert sharp_samples(soft, sharp, agree + 0.02, 0.25)[0, 0, 4, 4] < mixed


@pytest.mark.parametrize("name,maps", [("flow-asb", 4), ("svmv", 8)])
def test_sharpness_counts_in_the_time_estimate(name, maps):
    from vfi_core.ops.motion import SHARP_SAMPLES_SECONDS_PER_MEGAPIXEL

    model = vfi_core.load(name, device="cpu", sharpness=0.0)
    off = model.seconds_per_megapixel()
    model.set_params(sharpness=0.5)
    assert model.seconds_per_megapixel() == pytest.approx(off + maps * SHARP_SAMPLES_SECONDS_PER_MEGAPIXEL["cpu"])


def test_bicubic_warp_keeps_detail_that_bilinear_smooths():
    from vfi_core.ops.warp import backward_warp

    picture = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    half = torch.zeros(1, 2, 32, 32)
    half[:, 0] = 0.5
    errors = {}
    for mode in ("bilinear", "bicubic"):
        there = backward_warp(picture, half, mode=mode)
        back = backward_warp(there, -half, mode=mode)  # half a pixel and back
        errors[mode] = (back - picture)[..., 4:-4, 4:-4].abs().mean().item()
    assert errors["bicubic"] < 0.8 * errors["bilinear"]
    whole = torch.zeros(1, 2, 32, 32)
    whole[:, 0] = 1.0  # whole pixels: both modes copy
    torch.testing.assert_close(backward_warp(picture, whole, mode="bicubic")[..., :-1],
                               backward_warp(picture, whole)[..., :-1])


def test_sharpness_restores_detail_a_half_pixel_shift_smooths():
    import math

    h, w = 48, 64

    def scene(shift):  # fine sinusoidal detail, rendered exactly at any sub-pixel shift
        y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32) - shift,
                              indexing="ij")
        value = 0.5 + 0.2 * torch.sin(1.1 * x + 0.3 * y) + 0.2 * torch.cos(0.8 * y - 0.7 * x)
        return value.expand(1, 3, h, w).contiguous()

    truth = scene(0.5)[..., 8:-8, 8:-8]
    errors = {}
    for sharpness in (0.0, 1.0):
        model = vfi_core.load("flow-asb", motion="dis", sharpness=sharpness)
        out = model.interpolate(scene(0.0), scene(1.0), 0.5)
        errors[sharpness] = (out[..., 8:-8, 8:-8] - truth).abs().mean().item()
    assert math.isfinite(errors[0.0]) and errors[1.0] < 0.5 * errors[0.0]


def test_selection_takes_the_hypothesis_whose_warps_agree():
    from vfi_core.models.flow_asb import hypothesis_shares

    h, w = 12, 12
    right = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    # hypothesis 0 warps both frames onto the same picture; hypothesis 1 lands them 0.2 apart
    warped0 = torch.cat((right, right + 0.1))
    warped1 = torch.cat((right, right - 0.1))
    none = torch.zeros(2, 1, h, w)
    assert hypothesis_shares(warped0, warped1, none, none, 0.0) is None  # the plain mean
    share = hypothesis_shares(warped0, warped1, none, none, 1.0)
    assert share.shape == (2, 1, 1, h, w)
    torch.testing.assert_close(share.sum(0), torch.ones(1, 1, h, w))
    assert share[0].min() > 0.99
    # where a frame is occluded, differing warps are expected: no hypothesis is preferred
    occluded = none.clone()
    occluded[:, :, :, 6:] = 1
    share = hypothesis_shares(warped0, warped1, occluded, none, 1.0)
    torch.testing.assert_close(share[:, ..., 8:], torch.full_like(share[:, ..., 8:], 0.5))


@pytest.mark.parametrize("selection,sharpness", [(0.5, 0.0), (1.0, 0.0), (0.5, 0.5), (0.5, 1.0)])
def test_selection_keeps_the_square_where_it_is_at_t(selection, sharpness):
    h, w, x0, x1, y, size = 96, 128, 40, 52, 30, 24
    model = vfi_core.load("flow-asb", selection=selection, sharpness=sharpness)
    out = model.interpolate(moving_square(h, w, x0, y, size), moving_square(h, w, x1, y, size), 0.5)
    errors = {x: (out - moving_square(h, w, x, y, size)).abs().mean().item() for x in range(x0 - 2, x1 + 3)}
    assert min(errors, key=errors.get) == 46 and errors[46] < 0.005
