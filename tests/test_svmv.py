"""SVMV: shapes, arbitrary t, ensemble size, two/four-frame input, losses on hand-computed cases, weights round trip."""
import json

import pytest
import torch

from vfi_core import registry
from vfi_core.errors import InputError, ParameterError, WeightsError
from vfi_core.models.svmv import SVMV, SVMVConfig, SVMVNet, load_network, stack_frames
from vfi_core.models.svmv.loss import (SVMVLoss, SVMVLossWeights, ensemble_mean_and_variance, spatial_variance_loss,
                                      temporal_variance_loss)

TINY = {"encoder_widths": [4, 6, 8], "decoder_widths": [6, 8, 8], "decoder_depths": [2, 2, 2], "ensemble_max": 4,
        "hidden": 4}


def _net(seed=0, **changes) -> SVMVNet:
    torch.manual_seed(seed)
    net = SVMVNet({**TINY, **changes})
    with torch.no_grad():  # zero-initialised heads would hide the features: make it "trained"
        for head in net.heads:
            head.weight.normal_(0, 0.02)
    return net.eval()


def _frames(b=1, h=37, w=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(b, 3, h, w + 4, generator=g)
    return [base[..., i:i + w].contiguous() for i in range(4)]


def test_registered_with_declared_params():
    desc = registry.get_descriptor("svmv")
    assert desc.gives_confidence and desc.arbitrary_t and desc.weight_file == "svmv.safetensors"
    assert (desc.param("ensemble").min, desc.param("ensemble").max) == (1, 8)
    assert registry.default_model_name() == "svmv"


def test_load_without_weights_is_a_weights_error(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)  # an install without the shipped file
    with pytest.raises(WeightsError, match="needs svmv.safetensors"):
        registry.load("svmv", device="cpu")


def test_odd_sizes_batch_and_per_item_t():
    model = SVMV.from_network(_net(), ensemble=3)
    _, f0, f1, _ = _frames(b=2)
    t = torch.tensor([0.3, 0.8])
    out = model.interpolate_with_confidence(f0, f1, t)
    assert out.frame.shape == (2, 3, 37, 50) and out.confidence.shape == (2, 1, 37, 50)
    assert 0 <= out.confidence.min() and out.confidence.max() <= 1
    for i in range(2):  # each item interpolated alone at its own t gives the same frame
        alone = model.interpolate(f0[i:i + 1], f1[i:i + 1], float(t[i]))
        torch.testing.assert_close(alone, out.frame[i:i + 1], atol=1e-5, rtol=0)
    assert not torch.allclose(model.interpolate(f0, f1, 0.25), model.interpolate(f0, f1, 0.75))


def test_untrained_blend_follows_t():
    """Zero-initialised heads: weights are the time prior, so t=0 gives (nearly) frame 0's samples."""
    torch.manual_seed(0)
    model = SVMV.from_network(SVMVNet({**TINY, "ensemble_max": 1}), ensemble=1)
    f0, f1 = torch.full((1, 3, 32, 32), 0.2), torch.full((1, 3, 32, 32), 0.8)
    assert model.interpolate(f0, f1, 0.0).mean().item() == pytest.approx(0.2, abs=1e-3)
    assert model.interpolate(f0, f1, 0.5).mean().item() == pytest.approx(0.5, abs=1e-3)


def test_ensemble_parameter_range():
    model = SVMV.from_network(_net(), ensemble=1)
    _, f0, f1, _ = _frames(h=32, w=32)
    one = model.interpolate(f0, f1, 0.5)
    model.set_params(ensemble=4)
    assert not torch.equal(one, model.interpolate(f0, f1, 0.5))
    with pytest.raises(ParameterError):
        model.set_params(ensemble=9)
    with pytest.raises(InputError):  # beyond this network's ensemble_max (4)
        model.set_params(ensemble=6)
        model.interpolate(f0, f1, 0.5)


def test_two_and_four_frame_input():
    model = SVMV.from_network(_net())
    prev, f0, f1, nxt = _frames()
    two = model.interpolate_with_confidence(f0, f1, 0.5)
    ends = model.interpolate_four(None, f0, f1, None, 0.5)
    torch.testing.assert_close(ends.frame, two.frame, atol=0, rtol=0)
    four = model.interpolate_four(prev, f0, f1, nxt, 0.5)
    assert four.frame.shape == (1, 3, 37, 50) and four.confidence.shape == (1, 1, 37, 50)
    assert not torch.equal(four.frame, two.frame)
    with pytest.raises(InputError):
        model.interpolate_four(prev[..., :20], f0, f1, nxt, 0.5)


def test_network_output_layout_and_input_checks():
    net = _net()
    frames = torch.stack(_frames(b=2, h=32, w=48), 1)
    out = net(frames, torch.tensor([0.1, 0.9]), ensemble=3)
    assert out.offsets.shape == (2, 2, 3, 2, 32, 48) and out.samples.shape == (2, 2, 3, 3, 32, 48)
    torch.testing.assert_close(out.weights.sum((1, 2)), torch.ones(2, 1, 32, 48))
    with pytest.raises(InputError):
        net(frames[..., :40], torch.tensor([0.1, 0.9]))
    with pytest.raises(InputError):
        SVMVConfig.from_dict({"widths": [1, 2, 3]})


def test_spatial_variance_loss_hand_computed():
    b, m, h, w = 1, 2, 3, 4
    offsets = torch.zeros(b, 2, m, 2, h, w)
    ramp = torch.arange(w, dtype=torch.float32).expand(h, w)
    offsets[:, :, :, 0] = ramp             # mean x offset = column index
    offsets[:, :, 0, 0] += 1.0             # members at +-1 px: ensemble variance 1
    offsets[:, :, 1, 0] -= 1.0
    weights = torch.full((b, 2, m, 1, h, w), 0.25)
    mean, var = ensemble_mean_and_variance(offsets, weights)
    torch.testing.assert_close(mean[:, :, 0], ramp.expand(1, 2, h, w))
    torch.testing.assert_close(var, torch.ones(1, 2, 1, h, w))
    # 3x3 variance of the column index with replicated edges: 2/9, 2/3, 2/3, 2/9 -> mean 4/9
    assert spatial_variance_loss(offsets, weights, eps=0.01).item() == pytest.approx((4 / 9) / 1.01, rel=1e-5)
    flat = offsets.clone()
    flat[:, :, :, 0] -= ramp  # a constant mean field: no spatial variance
    assert spatial_variance_loss(flat, weights).item() == pytest.approx(0.0, abs=1e-6)


def test_temporal_variance_loss_hand_computed():
    samples = torch.empty(1, 2, 3, 3, 2, 2)
    samples[:, 0], samples[:, 1] = 0.2, 0.6
    target = torch.full((1, 3, 2, 2), 0.3)
    # frame 0: min(|0.2-0.6|, |0.2-0.3|) = 0.1; frame 1: min(0.4, 0.3) = 0.3; mean 0.2
    assert temporal_variance_loss(samples, target).item() == pytest.approx(0.2)
    with pytest.raises(InputError):
        temporal_variance_loss(samples, target[..., :1])


def test_loss_switches():
    net = _net()
    frames = torch.stack(_frames(b=1, h=32, w=32), 1)
    out = net(frames, torch.tensor([0.5]), ensemble=2)
    batch = {"gt": frames[:, 1], "flow_t0": torch.zeros(1, 2, 32, 32), "flow_t1": torch.zeros(1, 2, 32, 32),
             "visible_t0": torch.ones(1, 1, 32, 32), "visible_t1": torch.ones(1, 1, 32, 32)}
    total, terms = SVMVLoss()(out, batch)
    assert set(terms) == {"reconstruction", "census", "spatial_variance", "temporal_variance", "flow"}
    only = SVMVLoss(SVMVLossWeights(census=0, spatial_variance=0, temporal_variance=0, flow=0))
    total, terms = only(out, batch)
    assert set(terms) == {"reconstruction"} and total.item() == pytest.approx(terms["reconstruction"])
    with pytest.raises(InputError):
        SVMVLossWeights.from_dict({"reconstruction": 0, "census": 0, "spatial_variance": 0, "temporal_variance": 0,
                                   "flow": 0, "perceptual": 1})
    sharp = SVMVLoss(SVMVLossWeights(census=0, spatial_variance=0, temporal_variance=0, flow=0, sharpness=2.0))
    total, terms = sharp(out, batch)
    assert set(terms) == {"reconstruction", "sharpness"}  # off by default, in training
    assert total.item() == pytest.approx(terms["reconstruction"] + 2.0 * terms["sharpness"], rel=1e-5)


def test_two_frame_input_encodes_each_frame_once_with_the_same_result(monkeypatch):
    from vfi_core.models.svmv import model as svmv_module

    net = _net().eval()
    _, f0, f1, _ = _frames(b=2, h=32, w=48)
    frames = stack_frames(f0, f1)
    assert svmv_module.repeats_outer_frames(frames)
    assert not svmv_module.repeats_outer_frames(torch.stack(_frames(b=2, h=32, w=48), 1))
    t = torch.tensor([0.3, 0.6])
    with torch.no_grad():
        fast = net(frames, t, ensemble=3)
        monkeypatch.setattr(svmv_module, "repeats_outer_frames", lambda frames: False)
        full = net(frames, t, ensemble=3)
    for a, b in zip(fast, full):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_spatial_variance_eps_is_a_setting_not_a_term():
    net = _net()
    frames = torch.stack(_frames(b=1, h=32, w=32), 1)
    out = net(frames, torch.tensor([0.5]), ensemble=2)
    out = out._replace(offsets=out.offsets.detach(), weights=out.weights.detach())
    batch = {"gt": frames[:, 1]}
    for eps in (0.01, 0.25):
        weights = SVMVLossWeights.from_dict({"census": 0, "temporal_variance": 0, "spatial_variance_eps": eps})
        _, terms = SVMVLoss(weights)(out, batch)
        assert set(terms) == {"reconstruction", "spatial_variance"}
        assert terms["spatial_variance"] == pytest.approx(float(spatial_variance_loss(out.offsets, out.weights, eps=eps)))
    with pytest.raises(InputError, match="spatial_variance_eps"):
        SVMVLossWeights.from_dict({"spatial_variance_eps": 0})


def test_weights_round_trip(tmp_path):
    from safetensors.torch import save_file

    net = _net()
    save_file({k: v.half() for k, v in net.state_dict().items()}, str(tmp_path / "svmv.safetensors"))
    (tmp_path / "svmv.json").write_text(json.dumps({"architecture": {"class": "SVMVNet",
                                                                      "config": net.config.to_dict()}}))
    loaded = registry.load("svmv", device="cpu", weight_dirs=(tmp_path,), ensemble=4)
    rounded = SVMVNet(net.config)
    rounded.load_state_dict({k: v.half().float() for k, v in net.state_dict().items()})
    _, f0, f1, _ = _frames()
    torch.testing.assert_close(loaded.interpolate(f0, f1, 0.4), SVMV.from_network(rounded).interpolate(f0, f1, 0.4),
                               atol=0, rtol=0)
    (tmp_path / "svmv.json").write_text("{}")
    with pytest.raises(WeightsError):
        load_network(tmp_path / "svmv.safetensors", torch.device("cpu"), torch.float32)


@pytest.mark.parametrize("base_motion", ["linear", "splat-linear"])
def test_untrained_network_starts_from_the_flow_prior(base_motion):
    """Zero heads: the ensemble warps along the DIS prior's motion hypotheses, so an untrained network
    already puts a moving square where it is at t (training only has to improve on the prior)."""
    from conftest import moving_square

    h, w, x0, x1, y, size, t = 96, 128, 40, 52, 30, 24, 0.5
    torch.manual_seed(0)
    net = SVMVNet({**TINY, "base_motion": base_motion})
    model = SVMV.from_network(net, device="cpu")
    out = model.interpolate(moving_square(h, w, x0, y, size), moving_square(h, w, x1, y, size), t)
    errors = {x: (out - moving_square(h, w, x, y, size)).abs().mean().item() for x in range(x0 - 2, x1 + 3)}
    assert min(errors, key=errors.get) == round(x0 + t * (x1 - x0))
    assert errors[round(x0 + t * (x1 - x0))] < 0.01


def test_splat_linear_members_alternate_between_the_two_hypotheses():
    torch.manual_seed(0)
    net = SVMVNet({**TINY, "member_spread": 0.0}).eval()
    frames = torch.stack(_frames(h=32, w=48), 1)
    t = torch.tensor([0.5])
    with torch.no_grad():
        out = net(frames, t, ensemble=4)
        hypotheses = net.motion_hypotheses(frames[:, 1], frames[:, 2], net.prior(frames[:, 1], frames[:, 2]), t)
    assert hypotheses.shape[1] == 2
    # zero heads and no spread: members 0 and 2 sit on the splatted motion, 1 and 3 on the linear one
    assert torch.allclose(out.offsets[:, :, 0], out.offsets[:, :, 2]) and torch.allclose(out.offsets[:, :, 1], out.offsets[:, :, 3])
    torch.testing.assert_close(out.offsets[:, 0, 1], hypotheses[:, 1, :2], atol=1e-4, rtol=0)


def test_a_second_flow_estimate_gives_the_members_more_hypotheses():
    torch.manual_seed(0)
    net = SVMVNet({**TINY, "member_spread": 0.0}).eval()
    frames = torch.stack(_frames(h=32, w=48), 1)
    t = torch.tensor([0.5])
    first = net.prior(frames[:, 1], frames[:, 2])
    second = first + torch.tensor([3.0, -1.0, -3.0, 1.0]).view(1, 4, 1, 1)  # another estimate
    with torch.no_grad():
        one = net(frames, t, ensemble=4, prior=first)
        two = net(frames, t, ensemble=4, prior=torch.cat((first, second), 1))
        hypotheses = net.motion_hypotheses(frames[:, 1], frames[:, 2], second, t)
    # zero heads: members 0 and 1 stay on the first estimate's two hypotheses, 2 and 3 move to the second's
    torch.testing.assert_close(two.offsets[:, :, :2], one.offsets[:, :, :2])
    torch.testing.assert_close(two.offsets[:, 0, 2], hypotheses[:, 0, :2], atol=1e-4, rtol=0)
    torch.testing.assert_close(two.offsets[:, 1, 3], hypotheses[:, 1, 2:], atol=1e-4, rtol=0)
    assert not torch.allclose(two.offsets[:, :, 2:], one.offsets[:, :, 2:])


def test_select_members_weights_the_members_whose_samples_agree():
    from vfi_core.models.svmv.model import member_disagreement, sample_difference, select_members

    h, w, m = 10, 10, 2
    picture = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    samples = torch.empty(1, 2, 3, m, h, w)
    samples[:, :, :, 0] = picture[:, None]           # member 0 samples the same picture in both frames
    samples[:, 0, :, 1] = picture + 0.1               # member 1's samples lie 0.2 apart
    samples[:, 1, :, 1] = picture - 0.1
    weights = torch.full((1, 2, 1, m, h, w), 0.25)
    disagree = member_disagreement(weights, sample_difference(samples))
    torch.testing.assert_close(disagree[:, :, 1], torch.full((1, 1, h, w), 0.2))
    assert select_members(weights, disagree, 0.0) is weights
    chosen = select_members(weights, disagree, 1.0)
    torch.testing.assert_close(chosen.sum((1, 3)), torch.ones(1, 1, h, w))
    assert chosen[:, :, :, 0].sum(1).min() > 0.99
    # where one frame carries (almost) all the weight, the disagreement says nothing
    one_sided = weights.clone()
    one_sided[:, 1] = 0.0
    one_sided[:, 0] = 0.5
    one_sided_disagree = member_disagreement(one_sided, sample_difference(samples))
    assert one_sided_disagree.abs().max() == 0
    torch.testing.assert_close(select_members(one_sided, one_sided_disagree, 1.0), one_sided)


@pytest.mark.parametrize("name,default", [("selection", 0.5), ("sharpness", 0.5)])
def test_blend_parameters_are_declared_and_keep_frames_in_range(name, default):
    param = registry.get_descriptor("svmv").param(name)
    assert (param.min, param.max, param.default) == (0, 1, default)
    for bad in (1.5, float("nan")):
        with pytest.raises(ParameterError):
            param.validate(bad)
    torch.manual_seed(0)
    net = _net()
    frames = torch.stack(_frames(h=32, w=48), 1)
    t = torch.tensor([0.5])
    with torch.no_grad():
        plain = net(frames, t, prior=None)
        outs = {value: net(frames, t, prior=None, **{name: value}) for value in (0.0, 0.5, 1.0)}
    assert torch.equal(plain.frame, outs[0.0].frame)
    for out in outs.values():
        torch.testing.assert_close(out.weights.sum((1, 2)), torch.ones_like(out.weights.sum((1, 2))))
        assert out.frame.min() >= -1e-6 and out.frame.max() <= 1 + 1e-6
        if name == "sharpness":  # only the blended frame changes, not the member weights
            torch.testing.assert_close(out.weights, plain.weights)
    assert not torch.equal(outs[1.0].frame, plain.frame)
