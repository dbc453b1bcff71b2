import numpy as np
import pytest
import torch

from vfi_core.errors import InputError
from vfi_core.frames import (as_time_tensor, check_frame_pair, crop_to, from_numpy, pad_to_multiple,
                             split_alpha, to_numpy_uint8)


def test_pad_and_crop_round_trip_odd_size():
    x = torch.rand(1, 3, 481, 853)
    padded, size = pad_to_multiple(x, 32)
    assert padded.shape == (1, 3, 512, 864)
    assert torch.equal(padded[..., 480, :853], x[..., 480, :])  # bottom edge replicated
    assert torch.equal(crop_to(padded, size), x)


def test_pad_is_a_no_op_on_multiples():
    x = torch.rand(1, 3, 64, 32)
    padded, _ = pad_to_multiple(x, 32)
    assert padded is x


@pytest.mark.parametrize("a, b, message", [
    (torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9), "differ in shape"),
    (torch.rand(1, 4, 8, 8), torch.rand(1, 4, 8, 8), r"\(B,3,H,W\)"),
    (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "float"),
    (np.zeros((8, 8, 3)), torch.rand(1, 3, 8, 8), "torch.Tensor"),
])
def test_frame_pair_checks(a, b, message):
    with pytest.raises(InputError, match=message):
        check_frame_pair(a, b)


def test_time_tensor_broadcast_and_range():
    assert as_time_tensor(0.5, 3, torch.device("cpu")).tolist() == [0.5, 0.5, 0.5]
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        as_time_tensor(torch.tensor([1.5]), 1, torch.device("cpu"))
    with pytest.raises(InputError, match="shape"):
        as_time_tensor(torch.tensor([0.5, 0.5]), 3, torch.device("cpu"))


def test_numpy_conversions_handle_gray_16bit_and_round_trip():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(to_numpy_uint8(from_numpy(rgb))[0], rgb)
    gray16 = np.full((5, 7), 65535, dtype=np.uint16)
    x = from_numpy(gray16)
    assert x.shape == (1, 3, 5, 7) and torch.all(x == 1.0)
    with pytest.raises(InputError, match="RGB"):
        from_numpy(np.zeros((5, 7, 4), dtype=np.uint8))


def test_split_alpha():
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 3] = 200
    color, alpha = split_alpha(rgba)
    assert color.shape == (4, 4, 3) and alpha.shape == (4, 4) and alpha[0, 0] == 200
    assert split_alpha(rgba[..., :3])[1] is None
