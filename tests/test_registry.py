import json

import pytest
import torch

import vfi_core
from vfi_core import registry
from vfi_core.errors import InputError, ModelNotFoundError, ParameterError, WeightsError
from vfi_core.interpolator import Interpolation, Interpolator
from vfi_core.registry import ModelDescriptor, Param


def test_flow_asb_is_registered_with_a_complete_descriptor():
    names = [d.name for d in vfi_core.list_models()]
    assert "flow-asb" in names
    desc = vfi_core.get_descriptor("flow-asb")
    assert desc.arbitrary_t and desc.size_multiple >= 1 and desc.summary
    info = desc.to_dict()
    assert {"name", "summary", "arbitrary_t", "size_multiple", "supports_half", "weight_file", "params"} <= set(info)
    for p in info["params"]:
        assert {"name", "type", "default", "help"} <= set(p)
        # every declared default must pass its own validation
        assert desc.param(p["name"]).validate(p["default"]) == p["default"]


def test_load_returns_an_interpolator_obeying_the_protocol():
    model = vfi_core.load("flow-asb", device="cpu")
    assert isinstance(model, Interpolator)
    x0, x1 = torch.rand(2, 3, 40, 56), torch.rand(2, 3, 40, 56)
    out = model.interpolate(x0, x1, torch.tensor([0.25, 0.75]))
    assert out.shape == (2, 3, 40, 56) and out.dtype == torch.float32
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    res = model.interpolate_with_confidence(x0, x1, 0.5)
    assert isinstance(res, Interpolation) and res.confidence.shape == (2, 1, 40, 56)


def test_unknown_model_names_the_available_ones():
    with pytest.raises(ModelNotFoundError, match="flow-asb"):
        vfi_core.load("no-such-model")


@pytest.mark.parametrize("params, message", [
    ({"asymmetry": 1.5}, r"asymmetry.*\[0.0, 1.0\]"),
    ({"dilation": "many"}, "dilation.*int"),
    ({"flow_preset": "slowest"}, "flow_preset.*one of"),
    ({"temperature": 0.3}, "no parameter 'temperature'"),
])
def test_parameters_are_checked_against_their_declaration(params, message):
    with pytest.raises(ParameterError, match=message):
        vfi_core.load("flow-asb", **params)


def test_set_params_validates_and_applies():
    model = vfi_core.load("flow-asb", asymmetry="0.25")
    assert model.params["asymmetry"] == 0.25
    model.set_params(dilation=2)
    assert model.params["dilation"] == 2
    with pytest.raises(ParameterError):
        model.set_params(dilation=-1)


def test_half_precision_is_refused_for_models_without_it_and_on_the_cpu():
    with pytest.raises(InputError, match="does not support half precision"):
        vfi_core.load("mivid", dtype="float16")
    with pytest.raises(InputError, match="half precision is for GPUs"):
        vfi_core.load("flow-asb", dtype="float16", device="cpu")


def test_unavailable_device_is_an_error_not_a_fallback():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(InputError, match="CUDA is not available"):
        vfi_core.load("flow-asb", device="cuda")


class _Scaled(Interpolator):
    """A tiny weighted model for registry tests: output = blend scaled by a learned gain."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        from vfi_core.weights import load_state_dict
        self.gain = load_state_dict(self.weights)["gain"]

    def _interpolate(self, x0, x1, t):
        tt = t.view(-1, 1, 1, 1)
        return Interpolation(((1 - tt) * x0 + tt * x1) * self.gain)


@pytest.fixture
def weighted_model(monkeypatch, tmp_path):
    desc = ModelDescriptor(name="scaled-test", summary="test model", arbitrary_t=True, size_multiple=8,
                           supports_half=True, weight_file="scaled-test.safetensors",
                           params=(Param("strength", float, 1.0, "unused", min=0, max=2),))
    monkeypatch.setitem(registry._REGISTRY, desc.name, registry.replace(desc, factory=_Scaled))
    return desc


def test_missing_weights_say_what_to_do(weighted_model):
    with pytest.raises(WeightsError, match="scaled-test.safetensors.*vfi train"):
        vfi_core.load("scaled-test")


def test_corrupt_weights_are_reported(weighted_model, tmp_path):
    bad = tmp_path / "scaled-test.safetensors"
    bad.write_bytes(b"this is not a safetensors file")
    with pytest.raises(WeightsError, match="corrupt or unreadable"):
        vfi_core.load("scaled-test", weight_dirs=(tmp_path,))


def test_weights_found_in_extra_dirs_and_size_multiple_is_handled(weighted_model, tmp_path):
    from safetensors.torch import save_file
    save_file({"gain": torch.tensor(0.5)}, str(tmp_path / "scaled-test.safetensors"))
    model = vfi_core.load("scaled-test", weight_dirs=(tmp_path,))
    x = torch.full((1, 3, 13, 21), 0.8)  # not a multiple of 8: padded and cropped by the core
    out = model.interpolate(x, x, 0.5)
    assert out.shape == x.shape
    assert torch.allclose(out, torch.full_like(x, 0.4))


SHIPPED = [d for d in vfi_core.list_models() if d.weight_file and (registry.WEIGHTS_DIR / d.weight_file).is_file()]


@pytest.mark.parametrize("desc", SHIPPED, ids=lambda d: d.name)
def test_shipped_weights_have_a_card_and_run(desc):
    weights = registry.WEIGHTS_DIR / desc.weight_file
    card = json.loads(weights.with_suffix(".json").read_text())
    assert weights.stat().st_size <= 25 * 10**6 and card["dtype"] == "float16" and card["model"] == desc.name
    assert card["training"]["commands"] and card["training"]["steps"] > 0
    assert card["bench"]["overall"]["n"] > 0 and 0 < card["bench"]["overall"]["ssim"] <= 1
    model = vfi_core.load(desc.name, device="cpu")
    x0, x1 = torch.rand(1, 3, 30, 44), torch.rand(1, 3, 30, 44)
    out = model.interpolate(x0, x1, 0.5)
    assert out.shape == x0.shape and torch.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
