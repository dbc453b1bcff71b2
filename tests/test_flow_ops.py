"""Classical flow helpers of vfi_core.ops.flow."""
import torch

from vfi_core.ops.flow import capped_dis, capped_size


def test_capped_size_caps_the_longer_side_and_never_upscales():
    assert capped_size(720, 1280, 640) == (360, 640)
    assert capped_size(1280, 720, 640) == (640, 360)
    assert capped_size(256, 448, 640) == (256, 448)


def test_capped_dis_finds_a_known_shift_on_the_capped_grid():
    g = torch.Generator().manual_seed(0)
    texture = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 140, 240, generator=g), 3, 1, 1)
    frame0, frame1 = texture[..., 6:134, 8:232], texture[..., 6:134, 4:228]  # content moves 4 px right
    flows = capped_dis(frame0, frame1, "medium", max_side=112)  # half size: a 2 px shift there
    assert flows.shape == (1, 4, 64, 112) and flows.dtype == torch.float32
    inner = flows[..., 8:-8, 8:-8]
    assert torch.allclose(inner[:, 0].median(), torch.tensor(2.0), atol=0.25)  # F01 x
    assert torch.allclose(inner[:, 2].median(), torch.tensor(-2.0), atol=0.25)  # F10 x
    assert inner[:, 1].abs().median() < 0.25 and inner[:, 3].abs().median() < 0.25
