"""Trainer: a tiny SVMV on 32x32 synthetic crops trains, resumes to the identical loss, exports and loads back."""
import csv
import json

import pytest
import torch

from vfi_core import registry
from vfi_core.cli import main
from vfi_core.errors import InputError
from vfi_core.models.svmv import SVMV, SVMVNet
from vfi_core.registry import WEIGHTS_DIR
from vfi_core.train import Trainer, export_run, load_config
from vfi_core.train.export import lineage

CONFIG = {
    "name": "tiny", "seed": 3,
    "architecture": {"encoder_widths": [4, 6, 8], "decoder_widths": [6, 8, 8], "decoder_depths": [2, 2, 2],
                     "ensemble_max": 3, "hidden": 4},
    "data": {"crop": 32, "batch_size": 2},
    "optim": {"steps": 12, "lr": 0.003, "warmup": 2},
    "ema": {"decay": 0.9},
    "eval": {"every": 6, "dev": "synthetic", "items": 2, "size": 32},
    "log": {"every": 1, "checkpoint_every": 6, "tensorboard": False},
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _losses(run_dir):
    with open(run_dir / "log.csv", newline="") as f:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f)}


def test_resume_repeats_the_uninterrupted_run_and_export_loads_back(tmp_path):
    straight = Trainer("svmv", CONFIG, ["synthetic"], run_dir=tmp_path / "a", show_progress=False)
    straight.train()
    first = Trainer("svmv", CONFIG, ["synthetic"], run_dir=tmp_path / "b", show_progress=False)
    first.train(stop_after=6)
    assert first.step == 6 and max(_losses(tmp_path / "b")) == 6
    resumed = Trainer("svmv", CONFIG, ["synthetic"], run_dir=tmp_path / "b", resume=True, show_progress=False)
    assert resumed.step == 6
    resumed.train()
    a, b = _losses(tmp_path / "a"), _losses(tmp_path / "b")
    assert sorted(a) == sorted(b) == list(range(1, 13))
    assert a[7] == b[7] and a == b  # the step after the checkpoint, and every other step, bit for bit
    for p, q in zip(straight.ema.state_dict().values(), resumed.ema.state_dict().values()):
        assert torch.equal(p, q)
    with open(tmp_path / "b" / "dev.csv", newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [6, 12]
    assert (tmp_path / "b" / "plot.png").stat().st_size > 0

    weights, card_path = export_run(tmp_path / "b", tmp_path / "w")
    card = json.loads(card_path.read_text())
    assert card["training"]["steps"] == 12 and card["dev"]["step"] == 12 and card["dtype"] == "float16"
    assert card["architecture"]["config"]["ensemble_max"] == 3 and weights.stat().st_size < 25 * 2**20
    loaded = registry.load("svmv", device="cpu", weights=weights, ensemble=2)
    rounded = SVMVNet(resumed.ema.config)
    rounded.load_state_dict({k: v.half().float() for k, v in resumed.ema.state_dict().items()})
    f0, f1 = torch.rand(1, 3, 40, 24), torch.rand(1, 3, 40, 24)
    expected = SVMV.from_network(rounded, ensemble=2).interpolate_with_confidence(f0, f1, 0.3)
    got = loaded.interpolate_with_confidence(f0, f1, 0.3)
    assert torch.equal(got.frame, expected.frame) and torch.equal(got.confidence, expected.confidence)

    init = Trainer("svmv", {**CONFIG, "optim": {"steps": 1}}, ["synthetic"], run_dir=tmp_path / "c",
                   init_from=weights, show_progress=False)
    for p, q in zip(init.net.state_dict().values(), rounded.state_dict().values()):
        assert torch.equal(p, q)
    # a run continued from exported weights keeps their history in its own card
    init.train()
    # ... captured when the run started: the file's card changing later (a continued run exported over
    # it) does not rewrite where this run came from
    original = card_path.read_text()
    card_path.write_text(json.dumps({**json.loads(original), "training": {"steps": 999}}))
    _, continued = export_run(tmp_path / "c", tmp_path / "w2", note="continued from the tiny run")
    card = json.loads(continued.read_text())
    assert card["note"] == "continued from the tiny run"
    assert card["training"]["init_from"]["file"] == str(weights)
    assert card["training"]["init_from"]["training"]["steps"] == 12
    card_path.write_text(original)
    # a fine-tune may change what shapes no tensor; a change of shapes is a one-line error
    retuned = {**CONFIG, "optim": {"steps": 1}, "architecture": {**CONFIG["architecture"], "confidence_scale": 0.2}}
    init = Trainer("svmv", retuned, ["synthetic"], run_dir=tmp_path / "d", init_from=weights, show_progress=False)
    assert init.net.config.confidence_scale == 0.2
    assert all(torch.equal(p, q) for p, q in zip(init.net.state_dict().values(), rounded.state_dict().values()))
    wider = {**CONFIG, "architecture": {**CONFIG["architecture"], "encoder_widths": [4, 6, 10]}}
    with pytest.raises(InputError, match="does not fit the config"):
        Trainer("svmv", wider, ["synthetic"], run_dir=tmp_path / "e", init_from=weights, show_progress=False)


def test_user_mistakes_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        Trainer("svmv", CONFIG, ["synthetic"], run_dir=tmp_path / "missing", resume=True, show_progress=False)
    with pytest.raises(InputError, match="unknown key"):
        load_config({**CONFIG, "optimiser": {}})
    with pytest.raises(InputError, match="optim"):
        load_config({**CONFIG, "optim": {"stepz": 3}})
    with pytest.raises(InputError, match="not found"):
        Trainer("svmv", CONFIG, [str(tmp_path / "nothing.npz")], run_dir=tmp_path / "r", show_progress=False)
    with pytest.raises(InputError, match="cannot be trained"):
        Trainer("flow-asb", CONFIG, ["synthetic"], run_dir=tmp_path / "r", show_progress=False)


def test_cli_train_refuses_to_overwrite_then_resumes_and_exports(tmp_path, capsys):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**CONFIG, "optim": {"steps": 2, "warmup": 1}, "eval": {"every": 2, "items": 1, "size": 32}}))
    run = str(tmp_path / "run")
    args = ["train", "svmv", "--config", str(config), "--data", "synthetic", "--run-dir", run, "--quiet", "--device", "cpu"]
    assert main(args) == 0
    assert main(args) == 2 and "--resume" in capsys.readouterr().err
    assert main(args + ["--resume", "--steps", "3"]) == 0
    assert main(["export", run, "--out", str(tmp_path / "w")]) == 0
    assert json.loads((tmp_path / "w" / "svmv.json").read_text())["training"]["steps"] == 3


def test_worker_processes_make_the_same_batches(tmp_path):
    """``data.workers`` only moves batch making (and the DIS prior) to other processes: same losses."""
    config = {**CONFIG, "optim": {**CONFIG["optim"], "steps": 4}, "eval": {**CONFIG["eval"], "every": 4}}
    inline = Trainer("svmv", config, ["synthetic"], run_dir=tmp_path / "a", show_progress=False)
    inline.train()
    workers = {**config, "data": {**config["data"], "workers": 2}}
    pooled = Trainer("svmv", workers, ["synthetic"], run_dir=tmp_path / "b", show_progress=False)
    pooled.train()
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")


def test_lineage_names_a_shipped_starting_point_by_its_package_path(tmp_path):
    shipped = lineage(str(WEIGHTS_DIR / "svmv.safetensors"))
    assert shipped["file"] == "vfi_core/weights/svmv.safetensors"
    assert shipped["training"]["steps"] > 0  # the shipped card's own record
    elsewhere = tmp_path / "w.safetensors"
    assert lineage(str(elsewhere)) == {"file": str(elsewhere), "training": None}


def test_an_override_config_starts_from_its_base(tmp_path):
    (tmp_path / "base.json").write_text(json.dumps({**CONFIG, "loss": {"census": 0.2}}))
    (tmp_path / "leg.json").write_text(json.dumps({"base": "base.json", "name": "leg", "optim": {"lr": 0.001},
                                                   "loss": {"flow": 0.5}}))
    config = load_config(tmp_path / "leg.json")
    assert config["name"] == "leg" and config["optim"] == {**load_config(CONFIG)["optim"], "lr": 0.001}
    assert config["loss"] == {"census": 0.2, "flow": 0.5} and config["data"]["crop"] == 32
    (tmp_path / "a.json").write_text(json.dumps({"base": "b.json"}))
    (tmp_path / "b.json").write_text(json.dumps({"base": "a.json"}))
    with pytest.raises(InputError, match="base chain comes back"):
        load_config(tmp_path / "a.json")
    with pytest.raises(InputError, match="does not exist"):
        load_config({"base": str(tmp_path / "missing.json")})


def test_resume_accepts_a_config_that_spells_out_its_defaults(tmp_path):
    first = Trainer("svmv", {**CONFIG, "optim": {**CONFIG["optim"], "steps": 2}}, ["synthetic"],
                    run_dir=tmp_path / "r", show_progress=False)
    first.train()
    spelled = {**CONFIG, "optim": {**CONFIG["optim"], "steps": 3},
               "architecture": SVMVNet(CONFIG["architecture"]).config.to_dict()}
    resumed = Trainer("svmv", spelled, ["synthetic"], run_dir=tmp_path / "r", resume=True, show_progress=False)
    assert resumed.step == 2
    with pytest.raises(InputError, match="differ from the run"):
        Trainer("svmv", {**spelled, "architecture": {**spelled["architecture"], "hidden": 5}}, ["synthetic"],
                run_dir=tmp_path / "r", resume=True, show_progress=False)


@pytest.mark.parametrize("model", ["svmv", "pervfi", "mivid"])
def test_code_defaults_and_the_base_config_are_the_shipped_architecture(model):
    from pathlib import Path

    from vfi_core.train.recipes import get_recipe

    card = json.loads((WEIGHTS_DIR / f"{model}.json").read_text())
    recipe = get_recipe(model)
    shipped = recipe.build(card["architecture"]["config"]).config.to_dict()  # fields newer than the card filled in
    assert recipe.build({}).config.to_dict() == shipped
    base = load_config(Path(__file__).parents[1] / "configs" / f"{model}.json")
    assert recipe.canonical(base)["architecture"] == shipped
