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
