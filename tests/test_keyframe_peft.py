"""keyframe-peft: the frozen base stays frozen and out of the weight file, the trainable module starts
as the identity, keyframe attention reads only the keyframes, training, export, loading on the base
the card names, and adaptation."""
import json

import numpy as np
import pytest
import torch

from vfi_core import registry
from vfi_core.errors import InputError, WeightsError
from vfi_core.files import save_safetensors
from vfi_core.models.keyframe_peft import KeyframeAttention, KeyframePEFTConfig, KeyframePEFTNet
from vfi_core.models.mivid import MiVIDNet

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_BASE = {"widths": [8, 16, 16], "embed": 16, "heads": 2, "work_side": 64, "base": "linear"}


def _base(seed=0) -> MiVIDNet:
    torch.manual_seed(seed)
    net = MiVIDNet(TINY_BASE)
    with torch.no_grad():  # zero-initialised output layers would hide everything: make it "trained"
        for module in net.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)) and not module.weight.abs().sum():
                module.weight.normal_(0, 0.05)
    return net.eval()


def _base_file(folder, seed=0):
    net = _base(seed)
    path = folder / "tiny_mivid.safetensors"
    save_safetensors({k: v.contiguous() for k, v in net.state_dict().items()}, path)
    path.with_suffix(".json").write_text(json.dumps({"architecture": {"class": "MiVIDNet", "config": net.config.to_dict()}}))
    return path


def _inputs(b=2, t=5, h=16, w=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    z, visible, base = (torch.rand(b, 3, t, h, w, generator=g) * 2 - 1 for _ in range(3))
    mask = torch.zeros(b, 1, t, 1, 1)
    mask[:, :, 1:-1] = 1
    visible = visible * (1 - mask)
    tau = torch.linspace(0, 1, t).expand(b, t).contiguous()
    return z, visible, base, mask, tau, torch.tensor([3, 700][:b])


def _perturb(module, seed=2):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.05)


def test_an_untrained_module_computes_exactly_the_base():
    base = _base()
    net = KeyframePEFTNet({"heads": 2, "spatial_levels": [1, 2], "temporal_levels": [0, 1, 2]}, base=base)
    with torch.no_grad():
        assert torch.equal(net(*_inputs()), base(*_inputs()))


def test_the_base_is_frozen_and_outside_the_weights_and_the_parameters():
    base = _base()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    net = KeyframePEFTNet({"heads": 2}, base=base)
    assert not any(k.startswith(("_frozen", "base.")) for k in net.state_dict())
    assert {id(p) for p in net.parameters()}.isdisjoint({id(p) for p in base.parameters()})
    _perturb(net)
    net.train()
    net(*_inputs()).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    assert all(p.grad is None for p in base.parameters()) and not base.training
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())
    net.to(torch.float64)   # the base moves with the module
    assert net.base.inp.weight.dtype == torch.float64


@pytest.mark.parametrize("mode", ["spatial", "temporal"])
def test_keyframe_attention_reads_only_the_first_and_last_frames(mode):
    torch.manual_seed(0)
    attention = KeyframeAttention(8, 2, 16, mode, pool=2)
    _perturb(attention)
    b, t = 1, 4
    x = torch.randn(b * t, 8, 6, 6)
    position = torch.randn(b, t, 16)
    y = attention(x, position)
    other = x.clone()
    other[2] = torch.randn(8, 6, 6)            # another frame between the keyframes
    y2 = attention(other, position)
    assert torch.allclose(y2[1], y[1], atol=1e-6) and not torch.allclose(y2[2], y[2])
    moved = x.clone()
    moved[0] = torch.randn(8, 6, 6)            # another first frame
    assert not torch.allclose(attention(moved, position)[1], y[1])


def test_config_refuses_unknown_levels_and_a_mismatched_base(tmp_path):
    with pytest.raises(InputError, match="spatial_levels"):
        KeyframePEFTConfig(spatial_levels=(3,))
    with pytest.raises(InputError, match="heads"):
        KeyframePEFTNet({"heads": 3}, base=_base())
    path = _base_file(tmp_path)
    with pytest.raises(WeightsError, match="trained on another tiny_mivid.safetensors"):
        KeyframePEFTNet({"base_weights": str(path), "base_sha256": "0" * 64, "heads": 2})
    with pytest.raises(InputError, match="two keyframes"):
        KeyframePEFTNet({"heads": 2}, base=_base())(*_inputs(t=2))


def test_trains_exports_and_loads_on_the_base_its_card_names(tmp_path):
    from vfi_core.train import Trainer, export_run

    base_path = _base_file(tmp_path)
    config = {"name": "tiny", "seed": 1, "architecture": {"base_weights": str(base_path), "heads": 2},
              "loss": {"perceptual": 0}, "data": {"crop": 16, "batch_size": 2},
              "optim": {"steps": 3, "lr": 0.003, "warmup": 1},
              "eval": {"every": 3, "dev": "synthetic", "items": 1, "size": 16},
              "log": {"every": 1, "checkpoint_every": 3, "tensorboard": False}}
    run = Trainer("keyframe-peft", config, ["synthetic"], run_dir=tmp_path / "run", device="cpu", show_progress=False)
    row = run.train()
    assert row["step"] == 3 and np.isfinite(row["loss"]) and "diffusion" in row
    weights, card = export_run(tmp_path / "run", tmp_path / "w")
    arch = json.loads(card.read_text())["architecture"]
    assert arch["class"] == "KeyframePEFTNet"
    import hashlib
    assert arch["config"]["base_sha256"] == hashlib.sha256(base_path.read_bytes()).hexdigest()
    assert arch["config"]["base_config"]["widths"] == TINY_BASE["widths"]
    from safetensors.torch import load_file
    assert not any(k.startswith("base") for k in load_file(str(weights)))   # the base is not copied
    model = registry.load("keyframe-peft", device="cpu", weights=weights, steps=2)
    frames = torch.rand(1, 3, 20, 24), torch.rand(1, 3, 20, 24)
    assert model.interpolate(*frames, 0.5).shape == (1, 3, 20, 24)
    assert model.interpolate_window(*frames, 3).shape == (1, 3, 3, 20, 24)
    # another base file under the same name: refused in one line
    _base_file(tmp_path, seed=5)
    with pytest.raises(WeightsError, match="trained on another"):
        registry.load("keyframe-peft", device="cpu", weights=weights)


def test_adapts_to_a_clip_and_the_adapter_reapplies(tmp_path):
    from vfi_core.adapt import adapt_to_frames, apply_adapter
    from vfi_core.models.keyframe_peft import KeyframePEFT

    net = KeyframePEFTNet({"heads": 2}, base=_base())
    _perturb(net)
    model = KeyframePEFT.from_network(net, device="cpu", steps=2)
    g = torch.Generator().manual_seed(0)
    frames = [torch.rand(1, 3, 40, 48, generator=g) for _ in range(9)]
    result = adapt_to_frames(model, iter(frames), 2, rank=2)
    assert result.adapter.model == "keyframe-peft" and result.adapter.steps == 2
    assert result.adapter.targets == ("keyframe", "control.zero")
    assert all(name.startswith(("keyframe.", "control.zero.")) for name in result.adapter.state)
    again = apply_adapter(model, result.adapter)
    a, b = frames[0], frames[1]
    adapted = result.model.interpolate(a, b, 0.5)
    assert torch.allclose(again.interpolate(a, b, 0.5), adapted, atol=1e-5)
    assert not torch.equal(adapted, model.interpolate(a, b, 0.5))
