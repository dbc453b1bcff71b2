"""Detail-restoration stage: identity when untrained or off, bounded selection, the models' inputs to it,
a save-load round trip, the refine parameter in flow-asb and svmv, and its training recipe end to end."""
import json

import pytest
import torch

from vfi_core import registry
from vfi_core.errors import InputError, WeightsError
from vfi_core.models.refine import model as refine_module
from vfi_core.models.flow_asb import synthesize
from vfi_core.models.refine import DetailRestorer, RefineConfig, RefineNet, RestorationInputs
from vfi_core.models.svmv import SVMV, SVMVNet, restoration_inputs, stack_frames
from vfi_core.train import Trainer, export_run
from vfi_core.weights import load_network

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"stem": 4, "widths": [4, 6, 8], "selection": True}


def _inputs(b=2, h=24, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    warped0, warped1 = torch.rand(b, 3, h, w, generator=g), torch.rand(b, 3, h, w, generator=g)
    weight1 = torch.rand(b, 1, h, w, generator=g)
    blended = warped0 * (1 - weight1) + warped1 * weight1
    return RestorationInputs(warped0, warped1, blended, weight1, torch.rand(b, 1, h, w, generator=g))


def _perturbed(config=TINY, seed=1) -> RefineNet:
    net = RefineNet(config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return net.eval()


def test_untrained_stage_and_zero_strength_return_the_blend():
    inputs, t = _inputs(), torch.tensor([0.3, 0.7])
    assert torch.equal(RefineNet(TINY)(inputs, t), inputs.blended)
    assert torch.equal(_perturbed()(inputs, t, strength=0.0), inputs.blended)
    assert not torch.allclose(_perturbed()(inputs, t), inputs.blended)


def test_selection_moves_the_blend_weight_within_zero_and_one():
    net = RefineNet(TINY)
    inputs, t = _inputs(), torch.tensor([0.5, 0.5])
    for sign, target in ((1.0, inputs.warped1), (-1.0, inputs.warped0)):
        with torch.no_grad():
            net.head.bias[3] = sign * 50.0  # tanh saturates: the whole way to one frame, no further
        assert torch.allclose(net(inputs, t), target, atol=1e-5)


def test_input_checks_are_one_line_errors():
    net, inputs = RefineNet(TINY), _inputs(h=20)
    with pytest.raises(InputError, match="divide by 8"):
        net(inputs, torch.tensor([0.5, 0.5]))
    with pytest.raises(InputError, match="t must have shape"):
        net(_inputs(), torch.tensor([0.5]))
    with pytest.raises(InputError, match="weight1 must be"):
        net(_inputs()._replace(weight1=torch.rand(2, 3, 24, 32)), torch.tensor([0.5, 0.5]))
    with pytest.raises(InputError, match="refine config"):
        RefineNet({"widths": [4, 6]})


def test_weights_round_trip(tmp_path):
    from safetensors.torch import save_file

    net = _perturbed()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "r.safetensors"))
    (tmp_path / "r.json").write_text(json.dumps({"architecture": {"class": "RefineNet",
                                                                  "config": net.config.to_dict()}}))
    loaded = load_network(tmp_path / "r.safetensors", RefineNet, RefineConfig, torch.device("cpu"), torch.float32)
    inputs, t = _inputs(), torch.tensor([0.2, 0.9])
    assert loaded.config == RefineConfig.from_dict(TINY)
    assert torch.equal(loaded(inputs, t), net(inputs, t))


def test_svmv_inputs_reproduce_its_frame_and_flow_asb_matches_its_interpolator():
    g = torch.Generator().manual_seed(4)
    f0, f1 = torch.rand(1, 3, 32, 48, generator=g), torch.rand(1, 3, 32, 48, generator=g)
    t = torch.tensor([0.4])
    with torch.no_grad():
        out = SVMVNet({"encoder_widths": [4, 6, 8], "decoder_widths": [6, 8, 8], "hidden": 4})(
            stack_frames(f0, f1), t, ensemble=3)
    inputs = restoration_inputs(out)
    again = inputs.warped0 * (1 - inputs.weight1) + inputs.warped1 * inputs.weight1
    assert torch.allclose(again, out.frame, atol=1e-5) and float(inputs.weight1.min()) >= 0

    model = registry.load("flow-asb", device="cpu", motion="dis")
    f01, f10 = model.flows(f0, f1)
    result, inputs = synthesize(f0, f1, f01, f10, t, selection=model.params["selection"],
                                sharpness=model.params["sharpness"])
    assert torch.allclose(model.interpolate(f0, f1, t), result.frame.clamp(0, 1))
    assert inputs.blended is result.frame and inputs.weight1.shape == (1, 1, 32, 48)


def test_training_inputs_are_those_of_the_default_model():
    from vfi_core.models.refine.recipe import RefineRecipe

    g = torch.Generator().manual_seed(6)
    frames = torch.rand(1, 4, 3, 32, 48, generator=g)
    flows = torch.randn(1, 4, 32, 48, generator=g)
    t = torch.tensor([0.5])
    inputs = RefineRecipe().base_inputs({"frames": frames, "t": t, "flows": flows}, use_flow_asb=True)
    model = registry.load("flow-asb", device="cpu")
    _, default = synthesize(frames[:, 1], frames[:, 2], flows[:, :2], flows[:, 2:], t,
                            selection=model.params["selection"], sharpness=model.params["sharpness"])
    _, plain = synthesize(frames[:, 1], frames[:, 2], flows[:, :2], flows[:, 2:], t)
    assert torch.equal(inputs.blended, default.blended) and not torch.equal(inputs.blended, plain.blended)


@pytest.mark.parametrize("name", ["flow-asb", "svmv"])
def test_refine_parameter_off_is_todays_frame_and_on_uses_the_stage(name, monkeypatch, tmp_path):
    g = torch.Generator().manual_seed(5)
    f0, f1 = torch.rand(1, 3, 30, 44, generator=g), torch.rand(1, 3, 30, 44, generator=g)
    assert registry.get_descriptor(name).param("refine").default == 0.0
    plain = registry.load(name, device="cpu", motion="dis").interpolate(f0, f1, 0.5)
    monkeypatch.setattr(refine_module, "WEIGHTS_DIR", tmp_path)  # no shipped stage: refine > 0 must say so
    with pytest.raises(WeightsError, match="refine=0"):
        registry.load(name, device="cpu", motion="dis", refine=1.0).interpolate(f0, f1, 0.5)
    model = registry.load(name, device="cpu", motion="dis", refine=0.5)
    model._restorer = DetailRestorer(model.device, _perturbed())
    refined = model.interpolate(f0, f1, 0.5)
    assert refined.shape == plain.shape and not torch.allclose(refined, plain)
    model.set_params(refine=0.0)
    assert torch.equal(model.interpolate(f0, f1, 0.5), plain)


def test_training_recipe_trains_exports_and_loads(tmp_path):
    config = {"name": "tiny-refine", "seed": 1, "architecture": TINY, "loss": {"perceptual": 0},
              "data": {"crop": 32, "batch_size": 2}, "optim": {"steps": 4, "lr": 0.003, "warmup": 1},
              "eval": {"every": 4, "dev": "synthetic", "items": 2, "size": 32},
              "log": {"every": 1, "checkpoint_every": 4, "tensorboard": False}}
    trainer = Trainer("refine", config, ["synthetic"], run_dir=tmp_path / "run", show_progress=False)
    row = trainer.train()
    assert row["step"] == 4 and row["charbonnier"] > 0 and "perceptual" not in row
    assert any(float(p.abs().sum()) > 0 for p in trainer.net.head.parameters())  # the head left zero
    weights, card_path = export_run(tmp_path / "run", tmp_path / "w")
    card = json.loads(card_path.read_text())
    assert weights.name == "refine.safetensors" and card["model"] == "refine"
    assert card["architecture"]["class"] == "RefineNet" and card["training"]["steps"] == 4
    model = registry.load("svmv", device="cpu", motion="dis", refine=1.0, weight_dirs=(tmp_path / "w",))
    frame = model.interpolate(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), 0.5)
    assert frame.shape == (1, 3, 32, 32) and isinstance(model, SVMV)
    assert model._restorer.network.config == RefineConfig.from_dict(TINY)  # found in the weight folder given


def test_loss_weights_are_checked_with_one_line_errors():
    from vfi_core.models.refine.loss import RefineLoss, RefineLossWeights

    assert RefineLossWeights.terms() == ("charbonnier", "perceptual", "gram", "sharpness")
    for bad, message in [({"l1": 1}, "unknown"), ({"charbonnier": "a lot"}, "numbers"),
                         ({"charbonnier": -1}, ">= 0"), ({"charbonnier": 0, "perceptual": 0, "gram": 0}, "every term")]:
        with pytest.raises(InputError, match=message) as info:
            RefineLossWeights.from_dict(bad)
        assert "\n" not in str(info.value) and str(info.value).startswith("refine loss")
    loss = RefineLoss(RefineLossWeights.from_dict({"perceptual": 0}))
    a, b = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    total, terms = loss(a, b)
    assert set(terms) == {"charbonnier"} and total.item() > 0 and loss(a, a)[0].item() < total.item()


def test_sharpness_term_prices_blur_and_not_shifted_detail():
    from vfi_core.models.refine.loss import RefineLoss, RefineLossWeights
    from vfi_core.ops.filters import gaussian_blur

    torch.manual_seed(0)
    texture = torch.rand(1, 3, 32, 32)
    loss = RefineLoss(RefineLossWeights.from_dict({"charbonnier": 0, "perceptual": 0, "sharpness": 1}))
    assert loss.features is None  # no VGG needed
    blurred = loss(gaussian_blur(texture, 1.5), texture)[1]["sharpness"]
    shifted = loss(texture.roll(1, dims=-1), texture)[1]["sharpness"]
    assert set(loss(texture, texture)[1]) == {"sharpness"} and loss(texture, texture)[0].item() == 0
    assert blurred > 10 * max(shifted, 1e-4)


def test_gram_distance_scores_lost_texture_and_tolerates_where_it_sits():
    from vfi_core.losses import gram_distance
    from vfi_core.ops.filters import gaussian_blur

    torch.manual_seed(0)
    texture = torch.rand(2, 3, 32, 32)
    moved = texture.roll(3, dims=-1)          # the same texture, 3 pixels along (circularly)
    softened = gaussian_blur(texture, 1.5)    # what warping and averaging do to detail
    same = gram_distance([texture], [texture.clone()])
    assert same.item() == 0
    assert gram_distance([moved], [texture]).item() < 1e-6 < (moved - texture).abs().mean().item()
    assert gram_distance([softened], [texture]).item() > 1e-3
    # several layers are averaged; gradients reach the prediction
    prediction = softened.clone().requires_grad_(True)
    gram_distance([prediction, prediction[:, :2]], [texture, texture[:, :2]]).backward()
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0
