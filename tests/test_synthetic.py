"""Synthetic motion: frames agree with the true flows, occlusions are marked, sampling is seeded."""
from pathlib import Path

import av
import pytest
import torch

from vfi_core.data.synthetic import SyntheticMotion, SyntheticTripletDataset, SyntheticWindowDataset
from vfi_core.errors import InputError
from vfi_core.ops.warp import backward_warp
import vfi_core

SAMPLE_CLIP = Path(vfi_core.__file__).parent / "samples" / "bikes_60.mp4"

# Mean absolute error (RGB in [0,1]) of backward_warp(key frame, true flow) against the frame at t
# over pixels visible in both, no blur and no brightness change. Measured 0.0031-0.0050 for the
# cases below at 96x96 with procedural textures and 0.0020-0.0058 over seeds 0-3 at 128x128 (what is
# left is bilinear resampling of detailed textures), 0.0006-0.0014 with a real-image texture, 0.0057
# with motion blur (exposure 0.2).
WARP_TOLERANCE = 0.02


def _warp_error(sample, index, key):
    frames = sample["frames"]
    key_frame = frames[0 if key == 0 else -1][None]
    warped = backward_warp(key_frame, sample[f"flow_to_{key}"][index][None])[0]
    visible = sample[f"visible_in_{key}"][index][0] > 0
    return (warped - frames[index]).abs().mean(0)[visible].mean().item()


@pytest.fixture(scope="module")
def real_texture():
    with av.open(SAMPLE_CLIP) as container:
        frame = next(container.decode(video=0))
    return frame.to_ndarray(format="rgb24")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frames_at_t_agree_with_the_true_flow(seed):
    sample = SyntheticMotion(96, n_layers=3, seed=seed, brightness=0.0).sample((0.0, 0.37, 1.0))
    for key in (0, 1):
        assert _warp_error(sample, 1, key) < WARP_TOLERANCE
        assert sample["visible_in_%d" % key][1].mean() > 0.5  # most of the frame is checked
    # flows of the key frames: identity to themselves, flow_01 takes frame 0 to frame 1
    assert sample["flow_to_0"][0].abs().max() < 1e-3 and sample["flow_to_1"][-1].abs().max() < 1e-3
    assert torch.equal(sample["flow_01"], sample["flow_to_1"][0])
    assert torch.equal(sample["flow_10"], sample["flow_to_0"][-1])
    # the motion is not trivial: the key frames differ a lot where they are compared unwarped
    assert (sample["frames"][0] - sample["frames"][-1]).abs().mean() > 5 * WARP_TOLERANCE


def test_frames_agree_with_flow_on_real_image_textures(real_texture):
    sample = SyntheticMotion(96, n_layers=2, seed=5, images=[real_texture], brightness=0.0).sample((0.0, 0.5, 1.0))
    assert _warp_error(sample, 1, 0) < WARP_TOLERANCE and _warp_error(sample, 1, 1) < WARP_TOLERANCE


def test_occlusions_are_marked_where_layers_overlap():
    generator = SyntheticMotion(96, n_layers=4, seed=3, brightness=0.0, max_displacement=0.25)
    sample = generator.sample((0.0, 0.5, 1.0))
    flow, visible = sample["flow_to_1"][1], sample["visible_in_1"][1][0]
    h, w = visible.shape
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    tx, ty = xs + flow[0], ys + flow[1]
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    occluded = inside & (visible == 0)  # lands inside the frame yet hidden: covered by another layer
    assert occluded.float().mean() > 0.005
    # without foreground layers nothing can be covered, only leave the frame
    camera_only = SyntheticMotion(96, n_layers=0, seed=3).sample((0.0, 0.5, 1.0))
    flow = camera_only["flow_to_1"][1]
    tx, ty = xs + flow[0], ys + flow[1]
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    assert (camera_only["visible_in_1"][1][0][inside] == 1).all()


def test_brightness_and_blur_options():
    plain = SyntheticMotion(64, n_layers=2, seed=4, brightness=0.0).sample((0.0, 0.5, 1.0))
    bright = SyntheticMotion(64, n_layers=2, seed=4, brightness=0.3).sample((0.0, 0.5, 1.0))
    assert torch.allclose(bright["gain"], 1 + (bright["gain"][2] - 1) * bright["times"])
    assert not torch.allclose(bright["frames"][2], plain["frames"][2])
    blurred = SyntheticMotion(64, n_layers=2, seed=4, brightness=0.0, blur_exposure=0.2).sample((0.0, 0.5, 1.0))
    assert torch.equal(blurred["flow_to_0"], plain["flow_to_0"])  # blur changes pixels, not flows
    assert not torch.allclose(blurred["frames"][1], plain["frames"][1])
    assert _warp_error(blurred, 1, 0) < 2 * WARP_TOLERANCE


def test_sampling_is_seeded_and_shapes_are_documented():
    a = SyntheticMotion((48, 64), n_layers=2, seed=7).sample((0.0, 0.25, 0.5, 1.0))
    b = SyntheticMotion((48, 64), n_layers=2, seed=7).sample((0.0, 0.25, 0.5, 1.0))
    assert torch.equal(a["frames"], b["frames"])
    assert a["frames"].shape == (4, 3, 48, 64) and a["frames"].dtype == torch.float32
    assert a["flow_to_0"].shape == a["flow_to_1"].shape == (4, 2, 48, 64)
    assert a["visible_in_0"].shape == (4, 1, 48, 64)
    assert a["flow_01"].shape == (2, 48, 64) and a["visible_10"].shape == (1, 48, 64)
    assert 0 <= a["frames"].min() and a["frames"].max() <= 1


def test_datasets_are_deterministic_per_index():
    triplets = SyntheticTripletDataset(48, length=4, seed=1, n_layers=2)
    item = triplets[2]
    assert set(item) >= {"frame0", "frame1", "gt", "t", "flow_t0", "flow_t1", "visible_t0", "visible_t1"}
    assert item["frame0"].shape == (3, 48, 48) and item["t"].shape == () and 0.05 <= item["t"] <= 0.95
    assert torch.equal(item["gt"], triplets[2]["gt"]) and not torch.equal(item["gt"], triplets[1]["gt"])
    windows = SyntheticWindowDataset(32, window=5, length=2, seed=1, n_layers=1)
    window = windows[0]
    assert window["frames"].shape == (5, 3, 32, 32) and torch.allclose(window["times"], torch.linspace(0, 1, 5))
    with pytest.raises(IndexError):
        windows[2]


def test_bad_arguments_raise_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="at least 16x16"):
        SyntheticMotion(8)
    with pytest.raises(InputError, match="not found"):
        SyntheticMotion(32, images=[tmp_path / "missing.png"])
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        SyntheticMotion(32).sample((0.0, 1.5))
