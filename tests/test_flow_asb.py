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


@pytest.mark.parametrize("size", [(1, 1), (3, 7), (4, 4), (6, 9), (37, 53)])
def test_window_mean_is_the_mean_of_the_window_cut_at_the_edges(size):
    from vfi_core.ops.motion import _window_mean

    x = torch.rand(2, 3, *size, dtype=torch.float64)
    corner = x[0, 0, :3, :3].mean()  # the top-left pixel's 5x5 window holds 3x3 pixels of the frame
    torch.testing.assert_close(_window_mean(x)[0, 0, 0, 0], corner)
    expected = torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
    torch.testing.assert_close(_window_mean(x), expected)


def test_sampling_blur_hand_computed():
    from vfi_core.ops.motion import sampling_blur

    offsets = torch.tensor([0.0, 0.5, 0.25, -0.25, 3.0, -2.5]).view(1, 2, 1, 3)
    expected = torch.tensor([0.0, 0.25, 0.1875, 0.1875, 0.0, 0.25]).view(1, 2, 1, 3)
    torch.testing.assert_close(sampling_blur(offsets), expected)


def test_restore_sampling_detail_undoes_the_blur_of_bilinear_sampling():
    from vfi_core.ops import motion
    from vfi_core.ops.motion import restore_sampling_detail, sampling_blur
    from vfi_core.ops.warp import backward_warp

    # a parabola: bilinear sampling at fraction f adds exactly f(1-f)/2 times its second derivative
    h, w = 8, 24
    x = torch.arange(w, dtype=torch.float64)
    picture = (0.1 + 0.8 * (x / (w - 1)) ** 2).expand(1, 3, h, w).contiguous()
    offsets = torch.zeros(1, 2, h, w, dtype=torch.float64)
    offsets[:, 0] = 0.3
    sampled = backward_warp(picture, offsets)
    exact = (0.1 + 0.8 * ((x + 0.3) / (w - 1)) ** 2).expand(1, 3, h, w)
    inner = (..., slice(1, w - 2))
    before = (sampled - exact)[inner].abs().max().item()
    assert before > 1e-4
    sure = torch.zeros(1, 1, h, w, dtype=torch.float64)
    blur = sampling_blur(offsets)
    assert restore_sampling_detail(sampled, blur, sure, 0.0) is sampled
    restored = restore_sampling_detail(sampled, blur, sure, 0.5)
    after = (restored - exact)[inner].abs().max().item()
    assert after == pytest.approx(abs(1.0 - motion.SHARPNESS_GAIN) * before, abs=1e-9)
    # where the two warped frames disagree the motion is unsure: the correction fades out
    unsure = restore_sampling_detail(sampled, blur, sure + 0.2, 0.5)  # sigma 0.02: exp(-10) of it
    torch.testing.assert_close((unsure - sampled)[inner], (restored - sampled)[inner] * torch.exp(torch.tensor(-10.0)).item())
    # 1 corrects everywhere, and the result stays in [0,1]
    torch.testing.assert_close(restore_sampling_detail(sampled, blur, sure + 0.2, 1.0), restored)
    spike = torch.tensor([0.2, 0.9, 0.2]).view(1, 1, 1, 3).expand(1, 3, 1, 3)
    edge = restore_sampling_detail(spike, torch.full((1, 2, 1, 3), 0.25), torch.zeros(1, 1, 1, 3), 1.0)
    assert edge.min() >= 0 and edge.max() <= 1 and not torch.equal(edge, spike)


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


def test_a_second_flow_estimate_recovers_motion_the_first_got_wrong():
    from vfi_core.models.flow_asb import synthesize

    h, w, x0, x1, y, size = 96, 128, 40, 52, 30, 24
    f0, f1 = moving_square(h, w, x0, y, size), moving_square(h, w, x1, y, size)
    truth = moving_square(h, w, 46, y, size)
    wrong = torch.zeros(1, 2, h, w)  # no motion at all
    right01, right10 = torch.zeros(1, 2, h, w), torch.zeros(1, 2, h, w)
    right01[:, 0], right10[:, 0] = 12.0, -12.0
    t = torch.tensor([0.5])
    alone, _ = synthesize(f0, f1, wrong, wrong, t, selection=1.0)
    both, inputs = synthesize(f0, f1, wrong, wrong, t, selection=1.0, more=(right01, right10))
    error = {name: (out.frame - truth).abs().mean().item() for name, out in (("alone", alone), ("both", both))}
    assert error["both"] < 0.4 * error["alone"] and error["both"] < 0.01
    assert both.frame.shape == inputs.warped0.shape == (1, 3, h, w)
