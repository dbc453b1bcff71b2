"""Classical flow helpers of vfi_core.ops.flow."""
import torch

from vfi_core.ops.flow import capped_dis, capped_size, global_shift


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


def _texture(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Noise with detail at several scales, as photographs have (coarse matching needs the coarse)."""
    g = torch.Generator().manual_seed(seed)
    scales = [torch.nn.functional.avg_pool2d(torch.rand(1, 3, h, w, generator=g), k, 1, k // 2, count_include_pad=False)
              for k in (3, 9, 27)]
    return sum(scales) / len(scales)


def test_global_shift_finds_a_pan_to_the_pixel():
    texture = _texture(300, 400)[0].mean(0)
    frame0, frame1 = texture[40:232, 60:316], texture[22:214, 104:360]  # content moves 44 px left, 18 down
    assert global_shift(frame0, frame1) == (-44, 18)
    assert global_shift(frame0, frame0) == (0, 0)


def test_dis_started_from_the_global_shift_follows_a_pan_plain_dis_loses():
    texture = _texture(200, 400, seed=1)
    frame0, frame1 = texture[..., 20:148, 20:276], texture[..., 20:148, 82:338]  # moves 62 px left
    plain = capped_dis(frame0, frame1, "medium", max_side=256)
    started = capped_dis(frame0, frame1, "medium", max_side=256, global_motion=True)
    inner = lambda f: f[..., 16:-16, 16:-16]  # noqa: E731
    assert (inner(started)[:, 0] - -62).abs().median() < 0.5  # F01 x
    assert (inner(started)[:, 2] - 62).abs().median() < 0.5  # F10 x
    assert (inner(plain)[:, 0] - -62).abs().median() > 10


def test_global_motion_is_plain_dis_without_a_pan_whatever_ran_before():
    # OpenCV's DIS object keeps state from a started call: a later plain call must not see it
    texture = _texture(200, 400, seed=2)
    still0 = texture[..., 20:148, 20:276]
    still1 = still0.clone()
    still1[..., 40:80, 60:120] = texture[..., 63:103, 77:137]  # an object moves, the background stays
    panned0, panned1 = texture[..., 20:148, 20:276], texture[..., 20:148, 82:338]
    plain = capped_dis(still0, still1, "medium", max_side=256)
    assert global_shift(still0.mean(1)[0], still1.mean(1)[0]) == (0, 0)
    capped_dis(panned0, panned1, "medium", max_side=256, global_motion=True)  # a started call first
    assert torch.equal(capped_dis(still0, still1, "medium", max_side=256, global_motion=True), plain)
