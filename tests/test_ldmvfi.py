"""LDMVFI's autoencoder (VQ-FIGAN) and its loss: shapes, the untrained synthesis, quantisation,
MaxCA's block and grid partitions, the ablation switch, a save-load round trip, the loss terms and
the one-optimizer GAN step."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import moving_square
from vfi_core import registry
from vfi_core.errors import InputError, WeightsError
from vfi_core.files import file_sha256
from vfi_core.models.ldmvfi import VQFIGAN, PatchDiscriminator, VQFIGANConfig, VQFIGANLoss, VQFIGANLossWeights
from vfi_core.models.ldmvfi.pipeline import prior_frame
from vfi_core.models.ldmvfi.autoencoder import MOTION_PRIORS, MotionPrior, _blocks, _grid, _unblocks, _ungrid, motion_prior
from vfi_core.ops.warp import backward_warp
from vfi_core.weights import load_network

TINY = {"factor": 8, "width": 8, "multipliers": [1, 2, 2, 2], "latent_channels": 3, "codebook_size": 16,
        "heads": 2, "window": 2, "points": 3}


def _frames(size: int = 32):
    frame0, frame1 = moving_square(size, size, 4, 6), moving_square(size, size, 10, 6)
    return frame0, frame1, moving_square(size, size, 7, 6)


def test_shapes_latent_and_size_check():
    net = VQFIGAN(TINY)
    assert net.size_multiple == 16
    frame0, frame1, frame_t = _frames(32)
    out, quantized = net(frame_t, frame0, frame1)
    assert out.shape == frame_t.shape and quantized.latent.shape == (1, 3, 4, 4)
    assert quantized.indices.shape == (1, 4, 4) and quantized.indices.max() < 16
    sixteen = VQFIGAN({**TINY, "factor": 16, "multipliers": [1, 2, 2, 2, 2]})
    assert sixteen.encode(torch.rand(1, 3, 64, 32)).latent.shape == (1, 3, 4, 2)
    with pytest.raises(InputError, match="multiples of 16"):
        net.encode(torch.rand(1, 3, 40, 32))
    with pytest.raises(InputError, match="needs 5 positive multipliers"):
        VQFIGANConfig.from_dict({**TINY, "factor": 16})


def _zero_head(net: VQFIGAN) -> VQFIGAN:
    for p in net.decoder.head[-1].parameters():
        torch.nn.init.zeros_(p)
    return net


def test_a_decoder_whose_head_gives_zero_gives_the_motion_priors_blend():
    net = _zero_head(VQFIGAN(TINY))
    frame0, frame1, frame_t = _frames(32)
    flow0, flow1 = torch.full((1, 2, 32, 32), -1.5), torch.full((1, 2, 32, 32), 2.0)
    mask = torch.full((1, 1, 32, 32), 0.3)
    latent = net.encode(frame_t).latent
    out = net.decode(latent, frame0, frame1, MotionPrior(flow0, flow1, mask))
    expected = 0.3 * backward_warp(frame0, flow0) + 0.7 * backward_warp(frame1, flow1)
    assert torch.allclose(out, expected, atol=1e-6)  # the residual head starts at zero too
    assert torch.allclose(prior_frame(frame0, frame1, MotionPrior(flow0, flow1, mask)), expected, atol=1e-6)
    no_motion = _zero_head(VQFIGAN({**TINY, "motion_offsets": False}))
    out = no_motion.decode(no_motion.encode(frame_t).latent, frame0, frame1, MotionPrior(flow0, flow1, mask))
    assert torch.allclose(out, 0.5 * frame0 + 0.5 * frame1, atol=1e-6)


def test_motion_priors_follow_the_flows_and_the_splatted_one_meets_the_truth():
    frame0, frame1, frame_t = _frames(32)  # a 12 px square moving 6 px right on a still background
    flows = torch.zeros(1, 4, 32, 32)
    flows[:, 0, 6:18, 4:16] = 6.0  # F01 on the square in frame 0
    flows[:, 2, 6:18, 10:22] = -6.0  # F10 on the square in frame 1
    t = torch.tensor([0.5])
    linear = motion_prior("linear", frame0, frame1, flows, t)
    assert torch.equal(linear.flow_t0, 0.5 * flows[:, 2:]) and torch.equal(linear.flow_t1, 0.5 * flows[:, :2])
    assert torch.allclose(linear.mask, torch.tensor(0.5))
    splatted = motion_prior("splatted", frame0, frame1, flows, t)
    assert torch.allclose(splatted.flow_t0[0, 0, 8:16, 10:18], torch.tensor(-3.0), atol=0.02)  # on the square at t
    assert splatted.mask.min() >= 0 and splatted.mask.max() <= 1
    errors = {}
    for kind in MOTION_PRIORS:
        net = _zero_head(VQFIGAN({**TINY, "motion": kind}))
        out = net.decode(net.encode(frame_t).latent, frame0, frame1, net.prior(frame0, frame1, flows, t))
        errors[kind] = float((out - frame_t).abs().mean().detach())
    assert errors["splatted"] < 0.01 and errors["splatted"] < errors["linear"] / 2
    with pytest.raises(InputError, match="motion must be one of"):
        VQFIGANConfig.from_dict({**TINY, "motion": "raft"})


def test_quantizer_snaps_to_the_codebook_and_passes_gradients_straight_through():
    net = VQFIGAN(TINY)
    z = torch.randn(2, 3, 4, 4, requires_grad=True)
    q = net.quantizer(z)
    assert torch.allclose(q.latent, net.quantizer.lookup(q.indices), atol=1e-6)
    q.latent.sum().backward()
    assert torch.equal(z.grad, torch.ones_like(z))  # straight-through
    assert q.loss > 0


def test_block_and_grid_partitions_invert_and_group_the_right_pixels():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    assert torch.equal(_unblocks(_blocks(x, 4), x.shape, 4), x)
    assert torch.equal(_ungrid(_grid(x, 4), x.shape, 4), x)
    block = _blocks(x, 4)[0, :, 0]  # first block, channel 0: the top-left 4x4 pixels
    assert torch.equal(block, x[0, 0, :4, :4].flatten())
    grid = _grid(x, 4)[0, :, 0]  # first grid: every second pixel from (0, 0)
    assert torch.equal(grid, x[0, 0, ::2, ::2].flatten())


def test_cross_attention_uses_the_input_frames_and_the_ablation_does_not():
    torch.manual_seed(0)
    net = VQFIGAN(TINY)
    for p in net.decoder.head.parameters():  # a head that is not zero, so features reach the output
        torch.nn.init.normal_(p, std=0.1)
    frame0, frame1, frame_t = _frames(32)
    latent = net.encode(frame_t).latent
    warped = torch.cat((frame0, frame1), 1)
    base = net.decoder(latent, net.features(frame0), net.features(frame1), warped)
    other = net.decoder(latent, net.features(frame1), net.features(frame0), warped)
    assert not torch.allclose(base, other)
    plain = VQFIGAN({**TINY, "cross_attention": False})
    assert not any("attention" in name for name, _ in plain.named_parameters())
    assert plain.decode(plain.encode(frame_t).latent, frame0, frame1).shape == frame_t.shape


def test_weights_round_trip(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    net = VQFIGAN(TINY)
    for p in net.decoder.head.parameters():
        torch.nn.init.normal_(p, std=0.1)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "v.safetensors"))
    (tmp_path / "v.json").write_text(json.dumps({"architecture": {"class": "VQFIGAN", "config": net.config.to_dict()}}))
    loaded = load_network(tmp_path / "v.safetensors", VQFIGAN, VQFIGANConfig, torch.device("cpu"), torch.float32)
    frame0, frame1, frame_t = _frames(32)
    assert loaded.config == VQFIGANConfig.from_dict(TINY)
    assert torch.equal(loaded(frame_t, frame0, frame1)[0], net.eval()(frame_t, frame0, frame1)[0])


def test_loss_terms_and_one_optimizer_step_trains_both_players_apart():
    torch.manual_seed(2)
    net, critic = VQFIGAN(TINY), PatchDiscriminator(width=8, layers=2)
    loss = VQFIGANLoss(VQFIGANLossWeights.from_dict({"perceptual": 0, "adversarial": 0.5, "adversarial_start": 0.5}))
    frame0, frame1, frame_t = _frames(32)
    out, q = net(frame_t, frame0, frame1)
    early, terms = loss(out, frame_t, q.loss, critic, progress=0.1)
    assert set(terms) == {"l1", "quantizer"}  # before adversarial_start
    total, terms = loss(out, frame_t, q.loss, critic, progress=0.6)
    assert set(terms) == {"l1", "quantizer", "adversarial", "discriminator"}
    total.backward()
    # the generator's adversarial gradient reaches the autoencoder, not the critic; the critic's
    # hinge loss on a detached reconstruction reaches the critic only
    critic_grads = [p.grad.clone() for p in critic.parameters()]
    critic.zero_grad()
    real, fake = critic(frame_t), critic(out.detach())
    (torch.relu(1 - real).mean() + torch.relu(1 + fake).mean()).backward()
    assert all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(critic_grads, critic.parameters()))
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.decoder.parameters())
    with pytest.raises(InputError, match="adversarial_start"):
        VQFIGANLossWeights.from_dict({"adversarial_start": 2})


def test_the_sampling_points_of_a_frame_learn_apart_from_the_start():
    torch.manual_seed(3)
    net = VQFIGAN(TINY)
    frame0, frame1, frame_t = _frames(32)
    out, _ = net(frame_t, frame0, frame1)
    (out - frame_t).abs().mean().backward()
    grad = net.decoder.head[-1].weight.grad
    k = net.config.points
    offsets0 = grad[2 * k:4 * k].view(k, 2, -1)  # frame 0's K (dx, dy) offset rows
    assert all(not torch.allclose(offsets0[0], offsets0[i]) for i in range(1, k))
    assert grad[:k].abs().sum() > 0  # and their weights are not stuck at an even share


def test_training_trains_both_players_exports_the_autoencoder_and_scores_reconstructions(tmp_path):
    from vfi_core.train import Trainer, export_run
    from vfi_core.train.checkpoint import read_checkpoint

    config = {"name": "tiny-vq-figan", "seed": 1,
              "architecture": {**TINY, "discriminator_width": 8, "discriminator_layers": 2},
              "loss": {"perceptual": 0, "adversarial": 0.1, "adversarial_start": 0.5},
              "data": {"crop": 32, "batch_size": 2}, "optim": {"steps": 4, "lr": 0.003, "warmup": 1},
              "eval": {"every": 4, "dev": "synthetic", "items": 2, "size": 32},
              "log": {"every": 1, "checkpoint_every": 4, "tensorboard": False}}
    trainer = Trainer("ldmvfi-autoencoder", config, ["synthetic"], run_dir=tmp_path / "run", show_progress=False)
    critic_before = [p.detach().clone() for p in trainer.net.discriminator.parameters()]
    row = trainer.train()
    assert row["step"] == 4 and row["l1"] > 0 and row["discriminator"] > 0 and 0 < row["codebook_usage"] <= 1
    assert any(not torch.equal(a, b) for a, b in zip(critic_before, trainer.net.discriminator.parameters()))
    dev = (tmp_path / "run" / "dev.csv").read_text().splitlines()
    assert len(dev) == 2 and float(dev[1].split(",")[2]) > 10  # PSNR of the reconstructions
    weights, card_path = export_run(tmp_path / "run", tmp_path / "w")
    card = json.loads(card_path.read_text())
    assert weights.name == "vq_figan.safetensors" and card["architecture"] == {
        "class": "VQFIGAN", "config": VQFIGANConfig.from_dict(TINY).to_dict()}
    net = load_network(weights, VQFIGAN, VQFIGANConfig, torch.device("cpu"), torch.float32)
    assert card["parameters"] == sum(p.numel() for p in net.parameters())
    ema = {k[len("ema.autoencoder."):]: v for k, v in read_checkpoint(tmp_path / "run")[1].items()
           if k.startswith("ema.autoencoder.")}
    assert all(torch.equal(net.state_dict()[k], v.half().float()) for k, v in ema.items())


# -- the latent denoiser ------------------------------------------------------------------------

DENOISER = {"latent_channels": 3, "widths": [16, 32], "embed": 16, "heads": 2, "timesteps": 50}


def test_denoiser_shapes_conditioning_and_time():
    from vfi_core.models.ldmvfi.denoiser import LatentDenoiser

    torch.manual_seed(3)
    net = LatentDenoiser(DENOISER)
    for name, p in net.named_parameters():  # blocks start as the identity: give them weight
        if "conv2" in name:
            torch.nn.init.normal_(p, std=0.05)
    z, z0, z1 = torch.randn(2, 3, 6, 8), torch.randn(2, 3, 6, 8), torch.randn(2, 3, 6, 8)
    step, t = torch.tensor([10, 40]), torch.tensor([0.5, 0.25])
    out = net(z, step, z0, z1, t)
    assert out.shape == z.shape
    assert not torch.allclose(out, net(z, step, z1, z0, t))  # the input frames' latents condition it
    assert not torch.allclose(out, net(z, step, z0, z1, torch.tensor([0.9, 0.1])))  # and t does
    assert not torch.allclose(out, net(z, torch.tensor([0, 0]), z0, z1, t))  # and the step
    with pytest.raises(InputError, match="multiples of 2"):
        net(torch.randn(1, 3, 5, 8), step[:1], z0[:1, :, :5], z1[:1, :, :5], t[:1])


def test_denoiser_learns_the_noise_of_one_batch():
    from vfi_core.diffusion import NoiseSchedule
    from vfi_core.models.ldmvfi.denoiser import LatentDenoiser

    torch.manual_seed(4)
    net, schedule = LatentDenoiser(DENOISER), NoiseSchedule("cosine", 50, "eps")
    x0, z0, z1 = torch.randn(4, 3, 4, 4), torch.randn(4, 3, 4, 4), torch.randn(4, 3, 4, 4)
    step, t, noise = torch.randint(0, 50, (4,)), torch.rand(4), torch.randn(4, 3, 4, 4)
    z = schedule.q_sample(x0, step, noise, torch.ones(4, 1, 1, 1))
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = (net(z, step, z0, z1, t) - schedule.target(x0, noise, step)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.3 * losses[0]


def test_the_shared_sampler_generates_a_whole_latent_and_an_exact_denoiser_recovers_it():
    from vfi_core.diffusion import NoiseSchedule, sample

    schedule = NoiseSchedule("cosine", 100, "eps")
    x0 = torch.rand(2, 3, 4, 4) * 1.6 - 0.8
    mask = torch.ones(2, 1, 1, 1)

    def exact(z, step):  # the noise that takes x0 to z at this step
        a = schedule.abar(step, z)
        return (z - a.sqrt() * x0) / (1 - a).sqrt()

    for sampler in ("ddim", "ddpm"):
        out = sample(exact, schedule, torch.zeros_like(x0), mask, steps=10, sampler=sampler,
                     generator=torch.Generator().manual_seed(0))
        assert torch.allclose(out, x0, atol=1e-4), sampler
    again = sample(exact, schedule, torch.zeros_like(x0), mask, 10, "ddpm", torch.Generator().manual_seed(0))
    assert torch.equal(again, sample(exact, schedule, torch.zeros_like(x0), mask, 10, "ddpm",
                                     torch.Generator().manual_seed(0)))


def test_second_stage_trains_on_the_frozen_autoencoders_latents_and_the_pipeline_interpolates(tmp_path):
    from vfi_core.models.ldmvfi.denoiser import LatentDenoiser
    from vfi_core.models.ldmvfi.pipeline import LDMVFIPipeline
    from vfi_core.train import Trainer, export_run
    from vfi_core.train.recipes import get_recipe

    common = {"data": {"crop": 32, "batch_size": 2}, "optim": {"steps": 2, "lr": 0.003, "warmup": 1},
              "eval": {"every": 2, "dev": "synthetic", "items": 2, "size": 32},
              "log": {"every": 1, "checkpoint_every": 2, "tensorboard": False}}
    first = {"name": "tiny-ae", "seed": 1, "architecture": {**TINY, "discriminator_width": 8, "discriminator_layers": 2},
             "loss": {"perceptual": 0, "adversarial": 0}, **common}
    Trainer("ldmvfi-autoencoder", first, ["synthetic"], run_dir=tmp_path / "ae", show_progress=False).train()
    autoencoder, _ = export_run(tmp_path / "ae", tmp_path / "w")
    second = {"name": "tiny-ldmvfi", "seed": 1, "architecture": {**DENOISER, "widths": [16, 16]},
              "loss": {"autoencoder": str(autoencoder)}, **common}
    trainer = Trainer("ldmvfi", second, ["synthetic"], run_dir=tmp_path / "ldm", show_progress=False)
    before = float(trainer.net.latent_scale)
    row = trainer.train()
    assert before == 0 and float(trainer.net.latent_scale) > 0  # measured on the first batch
    assert row["step"] == 2 and row["diffusion"] > 0
    dev = (tmp_path / "ldm" / "dev.csv").read_text().splitlines()
    assert len(dev) == 2 and float(dev[1].split(",")[2]) > 5  # the whole pipeline ran on the dev scenes
    weights, card_path = export_run(tmp_path / "ldm", tmp_path / "w")
    assert weights.name == "ldmvfi.safetensors"
    card = json.loads(card_path.read_text())
    assert card["autoencoder"] == {"file": "vq_figan.safetensors", "sha256": file_sha256(autoencoder)}
    model = get_recipe("ldmvfi").load_exported(weights)   # the registered interpolator, as users load it
    assert model.name == "ldmvfi" and isinstance(model.pipeline, LDMVFIPipeline)
    assert isinstance(model.network, LatentDenoiser)
    assert float(model.network.latent_scale) == pytest.approx(float(trainer.ema.latent_scale), rel=1e-3)
    frame0, frame1, _ = _frames(40)
    out = model.interpolate(frame0, frame1, 0.5)
    assert out.shape == frame0.shape and 0 <= float(out.min()) and float(out.max()) <= 1
    assert torch.equal(out, model.interpolate(frame0, frame1, 0.5))  # seeded
    seen = []
    model.progress = lambda done, total: seen.append((done, total))
    model.set_params(strength=0.5, steps=4)
    refined = model.interpolate(frame0, frame1, 0.5)
    assert seen[-1][0] == seen[-1][1] == 2 and not torch.equal(refined, out)  # half the steps, from the prior
    # another autoencoder beside the denoiser: its latents would mean nothing to it
    shutil.copy(weights, tmp_path / "ldmvfi.safetensors")
    shutil.copy(card_path, tmp_path / "ldmvfi.json")
    other = {k: v + 1 for k, v in load_file(str(autoencoder)).items()}
    save_file(other, str(tmp_path / "vq_figan.safetensors"))
    shutil.copy(autoencoder.with_suffix(".json"), tmp_path / "vq_figan.json")
    with pytest.raises(WeightsError, match="not the autoencoder"):
        registry.load("ldmvfi", device="cpu", weights=tmp_path / "ldmvfi.safetensors")


def test_the_codebook_starts_on_the_encoders_vectors_of_the_first_training_batch():
    from vfi_core.models.ldmvfi.autoencoder import VectorQuantizer

    torch.manual_seed(0)
    quantizer = VectorQuantizer(8, 3, 0.25).train()
    z = 3 + torch.randn(2, 3, 4, 4)  # far from the tiny initial codes, one of which takes them all
    flat = z.permute(0, 2, 3, 1).reshape(-1, 3)
    first = quantizer._nearest(flat)[1].unique()   # the few codes the tiny initial values give
    out = quantizer(z)
    moved = [c for c in range(8) if c not in first.tolist()]
    assert moved   # every other code restarted onto one of the batch's vectors
    assert all(any(torch.allclose(quantizer.codebook.weight[c].detach(), v) for v in flat) for c in moved)
    assert len(out.indices.unique()) > len(first)


def test_unused_codes_restart_on_the_worst_quantised_vectors_in_training_only():
    from vfi_core.models.ldmvfi.autoencoder import VectorQuantizer

    quantizer = VectorQuantizer(8, 3, 0.25)
    quantizer.usage.fill_(1.0)   # as after the first batch
    z = torch.randn(2, 3, 4, 4) * 3  # far from the tiny initial codes: a few codes would take them all
    quantizer.eval()
    before = quantizer.codebook.weight.detach().clone()
    assert len(quantizer(z).indices.unique()) <= 8 and torch.equal(quantizer.codebook.weight, before)
    quantizer.train()
    with torch.no_grad():
        quantizer.codebook.weight[1:] = 100.0  # codes 1..7 far from every vector, unused for long
    quantizer.usage[1:] = 0
    used = quantizer(z).indices.unique()
    flat = z.permute(0, 2, 3, 1).reshape(-1, 3)
    moved = quantizer.codebook.weight[1:].detach()
    assert all(any(torch.allclose(code, v) for v in flat) for code in moved)  # each sits on a batch vector
    assert len(used) >= 7 and torch.all(quantizer.usage[1:] > 0.5)
