"""Per-clip adaptation: low-rank adapters, clip windows, adapter files, svmv's adaptation."""
import pytest
import torch
from torch import nn

from vfi_core.adapt import Adapter, adapt, apply_adapter, collect_windows
from vfi_core.adapt.lora import add_lora, load_lora_state, lora_parameters, lora_state
from vfi_core.errors import InputError, WeightsError
from vfi_core.models.svmv import SVMV, SVMVConfig, SVMVNet

TINY = SVMVConfig(encoder_widths=(4, 4, 4), decoder_widths=(4, 4, 4), decoder_depths=(2, 2, 2), ensemble_max=2,
                  hidden=2, dis_preset="ultrafast")


def test_fresh_lora_changes_nothing_and_only_adapters_train():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 3, 1))
    x = torch.rand(1, 3, 8, 8)
    before = net(x)
    names = add_lora(net, ("0",), rank=2)
    assert names == ["0"]
    assert torch.allclose(net(x), before)
    trainable = [p for p in net.parameters() if p.requires_grad]
    assert {id(p) for p in trainable} == {id(p) for p in lora_parameters(net)}
    with pytest.raises(InputError):
        add_lora(nn.Sequential(nn.Conv2d(3, 3, 1)), ("missing",), rank=1)


def test_lora_state_round_trip():
    a, b = nn.Sequential(nn.Linear(4, 4)), nn.Sequential(nn.Linear(4, 4))
    b.load_state_dict(a.state_dict())
    add_lora(a, ("0",), 2)
    add_lora(b, ("0",), 2)
    with torch.no_grad():
        lora_parameters(a)[1].fill_(0.5)
    load_lora_state(b, lora_state(a))
    x = torch.rand(2, 4)
    assert torch.allclose(a(x), b(x))
    with pytest.raises(InputError):
        load_lora_state(b, {"x.down": torch.zeros(1)})


def _clip(n=12, h=40, w=48):
    base = torch.rand(3, h, w + n)
    return [base[:, :, i:i + w][None] for i in range(n)]  # a pan


def test_windows_are_bounded_and_skip_cuts():
    frames = _clip(12)
    w = collect_windows(iter(frames), span=7, capacity=3, crop=32)
    assert w.frames.shape == (3, 7, 3, 32, 32) and w.frames.dtype == torch.uint8 and w.seen == 6
    cut = frames[:6] + [torch.ones_like(f) - f * 0 for f in frames[6:]]
    with pytest.raises(InputError, match="scene cut"):
        collect_windows(iter(cut), span=7)


def test_svmv_adapts_saves_and_reapplies(tmp_path):
    torch.manual_seed(0)
    model = SVMV.from_network(SVMVNet(TINY), device="cpu", ensemble=2, motion="dis")
    windows = collect_windows(iter(_clip(10, 32, 32)), span=7, capacity=2, crop=32)
    steps = []
    with torch.inference_mode():  # as in ComfyUI: adaptation still trains
        result = adapt(model, windows, 3, rate=1e-2, rank=2, batch_size=2, progress=lambda s, n: steps.append(s))
    assert steps == [0, 1, 2, 3] and result.adapter.steps == 3
    x0, x1 = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    adapted = result.model.interpolate(x0, x1, 0.5)
    assert not torch.allclose(adapted, model.interpolate(x0, x1, 0.5))  # the shared model is unchanged
    path = result.adapter.save(tmp_path / "clip.safetensors")
    again = apply_adapter(model, Adapter.load(path))
    assert torch.allclose(again.interpolate(x0, x1, 0.5), adapted, atol=1e-6)
    other = SVMV.from_network(SVMVNet(TINY), device="cpu", ensemble=2, motion="dis")
    with pytest.raises(WeightsError, match="other svmv weights"):
        apply_adapter(other, Adapter.load(path))


def test_svmv_learns_from_windows_at_half_size():
    # a window's known frames lie twice as far apart as the frames interpolated: halving the clip
    # gives the motion it learns from the size of the motion it meets
    model = SVMV.from_network(SVMVNet(TINY), device="cpu", ensemble=2, motion="dis")
    frame = torch.rand(1, 3, 64, 48)
    half = model.adaptation().resize(frame)
    assert half.shape == (1, 3, 32, 24)
    assert torch.allclose(half.mean(), frame.mean(), atol=0.02)


def test_svmv_adaptation_prices_blur_at_its_declared_weight():
    # the reconstruction terms alone reward a blurred frame where motion is uncertain; the
    # adapt_sharpness parameter weighs the detail the frame lacks against the clip's own frame
    import numpy as np

    from vfi_core.losses import sharpness_deficit

    declared = {p.name: p for p in SVMV.descriptor.params}["adapt_sharpness"]
    assert declared.group == "adapt" and declared.default > 0
    net = SVMVNet(TINY)
    runs = torch.rand(2, 7, 3, 32, 32)
    losses = {}
    for weight in (0.0, 30.0):
        spec = SVMV.from_network(net, device="cpu", ensemble=2, motion="dis", adapt_sharpness=weight).adaptation()
        prior = spec.prepare(runs)
        rng = np.random.default_rng(1)  # four-frame input for both (the same draw)
        losses[weight] = float(spec.loss(net, runs, prior, rng, 0.0).detach())
    with torch.no_grad():
        out = net(runs[:, [0, 2, 4, 6]], torch.full((2,), 0.5), ensemble=2, prior=prior)
    deficit = float(sharpness_deficit(out.frame, runs[:, 3]))
    assert deficit > 0  # an untrained ensemble's blend of noise is smoother than noise
    assert losses[30.0] == pytest.approx(losses[0.0] + 30.0 * deficit, rel=1e-4)
