"""User mistakes get the documented outcome: a one-line error (exit status 2 in the CLI) and nothing
left in the output location; SIGTERM exits 143 without partial output."""
from __future__ import annotations

import math
import os
import shutil
import signal

import cv2
import numpy as np
import pytest
import torch

from vfi_core import registry
from vfi_core.cli import main
from vfi_core.device import resolve_device
from vfi_core.errors import InputError, ParameterError, WeightsError
from vfi_core.registry import Param

ASYMMETRY = Param("asymmetry", float, 0.0, "", min=0.0, max=1.0)
FAST = ["--model", "flow-asb", "-p", "motion=dis"]  # no weights, no RAFT: quick on any machine


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """``vfi ARGV``'s exit status and its stderr, whether the parser or the command refused it."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def only_input_left(tmp_path) -> bool:
    return [p.name for p in tmp_path.iterdir()] == ["in"]


# 1. parameters: NaN and infinities
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "nan", "inf", "-Infinity"])
def test_param_refuses_non_finite(value):
    with pytest.raises(ParameterError) as info:
        ASYMMETRY.validate(value)
    assert str(info.value) == f"parameter 'asymmetry' must be a finite number in [0.0, 1.0], got {value!r}"
    dilation = Param("dilation", int, 0, "", min=0, max=32)
    with pytest.raises(ParameterError, match=r"^parameter 'dilation' must be a finite number in \[0, 32\]"):
        dilation.validate(value)


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_cli_param_non_finite_is_one_line(frames_dir, tmp_path, capsys, value):
    code, err = run_cli(["interpolate", str(frames_dir), str(tmp_path / "o.mp4"), "-m", "2", *FAST,
                         "-p", f"asymmetry={value}"], capsys)
    assert code == 2
    assert err == f"vfi: error: parameter 'asymmetry' must be a finite number in [0.0, 1.0], got '{value}'\n"
    assert only_input_left(tmp_path)


# 2. weights holding NaN or infinities
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_weights_are_refused(tmp_path, frames_dir, capsys, bad):
    from safetensors.torch import load_file, save_file

    from vfi_core.weights import load_state_dict

    shipped = registry.get_descriptor("svmv").weights_path()
    if shipped is None:
        pytest.skip("the svmv weights are not installed")
    state = load_file(str(shipped))
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name].clone().view(-1).index_fill(0, torch.tensor([0]), bad).view_as(state[name])
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    shutil.copy(shipped.with_suffix(".json"), path.with_suffix(".json"))
    message = (f"weight file bad.safetensors holds NaN or infinite values (1 of its {len(state)} tensors), so every "
               "output would be garbage; re-export the weights from a training run that did not diverge, or use "
               "the shipped ones")
    with pytest.raises(WeightsError) as info:
        load_state_dict(path)
    assert str(info.value) == message
    out = tmp_path / "out"
    out.mkdir()
    code, err = run_cli(["interpolate", str(frames_dir), str(out / "o.mp4"), "-m", "2", "--model", "svmv",
                         "--weights", str(path)], capsys)
    assert (code, err) == (2, f"vfi: error: {message}\n")
    assert list(out.iterdir()) == []


def test_weights_that_do_not_fit_their_card_say_what_differs(tmp_path, frames_dir, capsys):
    from safetensors.torch import load_file, save_file

    shipped = registry.get_descriptor("svmv").weights_path()
    if shipped is None:
        pytest.skip("the svmv weights are not installed")
    state = load_file(str(shipped))
    dropped = sorted(state)[0]
    del state[dropped]
    wrong = sorted(state)[-1]
    state[wrong] = torch.zeros(7, dtype=state[wrong].dtype)
    state["extra.weight"] = torch.zeros(2, dtype=torch.float16)
    path = tmp_path / "cut.safetensors"
    save_file(state, str(path))
    shutil.copy(shipped.with_suffix(".json"), path.with_suffix(".json"))
    out = tmp_path / "out"
    out.mkdir()
    code, err = run_cli(["interpolate", str(frames_dir), str(out / "o.mp4"), "-m", "2", "--model", "svmv",
                         "--weights", str(path)], capsys)
    assert code == 2 and err.count("\n") == 1 and list(out.iterdir()) == []
    assert err.startswith("vfi: error: cut.safetensors does not match the SVMVNet its model card describes: "
                          f"1 tensor(s) missing ({dropped}), 1 unexpected (extra.weight), 1 of another shape "
                          f"({wrong} (7,) instead of ")
    assert err.rstrip().endswith("re-export the weights with `vfi export`, or restore the card written with them")


# 3. frames with NaN/inf or outside [0, 1]
@pytest.mark.parametrize("fill, message", [
    (math.nan, "frame1 contains NaN or infinite values; frames must be finite float RGB in [0, 1]"),
    (math.inf, "frame1 contains NaN or infinite values; frames must be finite float RGB in [0, 1]"),
    (-math.inf, "frame1 contains NaN or infinite values; frames must be finite float RGB in [0, 1]"),
    (255.0, "frame1 holds values from 0 to 255; frames must be float RGB in [0, 1]; divide 0-255 values by 255 "
            "(or clamp them to [0, 1])"),
    (-0.5, "frame1 holds values from -0.5 to 1; frames must be float RGB in [0, 1] (or clamp them to [0, 1])"),
])
def test_frames_must_be_finite_and_in_range(fill, message):
    from vfi_core.frames import check_frame_pair

    frame0 = torch.zeros(1, 3, 8, 8)
    frame0[..., 0, 0] = 1.0
    frame1 = frame0.clone()
    frame1[0, 1, 4, 4] = fill
    with pytest.raises(InputError) as info:
        check_frame_pair(frame0, frame1)
    assert str(info.value) == message
    model = registry.load("flow-asb", device="cpu", motion="dis")
    with pytest.raises(InputError, match=r"^frame1 "):
        model.interpolate(frame0, frame1, 0.5)
    check_frame_pair(frame0, frame0 + 1e-4)  # float rounding past 1 by a hair is accepted


# 4. --crf outside the encoder's range
@pytest.mark.parametrize("crf, output, message", [
    ("-1", "o.mp4", "argument --crf: expected an integer quality, 0-51 for H.264 (.mp4, .mov, .mkv) or 0-63 for VP9 "
                    "(.webm), got '-1' (see `vfi interpolate --help`)"),
    ("64", "o.webm", "argument --crf: expected an integer quality, 0-51 for H.264 (.mp4, .mov, .mkv) or 0-63 for VP9 "
                     "(.webm), got '64' (see `vfi interpolate --help`)"),
    ("52", "o.mp4", "--crf 52 is out of range: H.264 (.mp4) takes 0-51 (lower is better quality)"),
    ("52", "o.mkv", "--crf 52 is out of range: H.264 (.mkv) takes 0-51 (lower is better quality)"),
])
def test_crf_out_of_range(frames_dir, tmp_path, capsys, crf, output, message):
    code, err = run_cli(["interpolate", str(frames_dir), str(tmp_path / output), "-m", "2", *FAST, "--crf", crf],
                        capsys)
    assert (code, err) == (2, f"vfi: error: {message}\n")
    assert only_input_left(tmp_path)


# 5. --weights for a model that takes none
def test_weights_for_a_model_without_weights(frames_dir, tmp_path, capsys):
    weights = tmp_path / "in" / "w.safetensors"
    weights.write_bytes(b"")
    message = ("model 'flow-asb' takes no weights, but a weight file was given (w.safetensors); leave it out, "
               "or pick a model that loads weights")
    with pytest.raises(InputError) as info:
        registry.load("flow-asb", device="cpu", weights=weights, motion="dis")
    assert str(info.value) == message
    code, err = run_cli(["interpolate", str(frames_dir), str(tmp_path / "o.mp4"), "-m", "2", *FAST,
                         "--weights", str(weights)], capsys)
    assert (code, err) == (2, f"vfi: error: {message}\n")
    assert only_input_left(tmp_path)


# 6. SIGTERM during a run
@pytest.mark.parametrize("output", ["o.mp4", "frames"])
def test_sigterm_exits_143_and_leaves_nothing(frames_dir, tmp_path, capsys, monkeypatch, output):
    from vfi_core.pipeline import InterpolatedStream

    def terminate(self, done):
        if done >= 2:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(InterpolatedStream, "_report", terminate)
    before = signal.getsignal(signal.SIGTERM)
    code, err = run_cli(["interpolate", str(frames_dir), str(tmp_path / output), "-m", "2", *FAST], capsys)
    assert (code, err.splitlines()[-1]) == (143, "vfi: terminated")
    assert only_input_left(tmp_path)
    assert signal.getsignal(signal.SIGTERM) is before  # the command's handler is gone again


# 6b. Ctrl-C during start-up: the command's import (torch's, most of start-up) happens inside main
def test_the_vfi_entry_point_imports_no_torch_before_main():
    import subprocess
    import sys

    code = "import sys, vfi_core.cli, vfi_core; print(sorted(m for m in ('torch', 'cv2', 'av') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_ctrl_c_while_the_commands_load_is_one_line(monkeypatch, capsys):
    import importlib

    def interrupted(name, *args):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib, "import_module", interrupted)
    code, err = run_cli(["models"], capsys)
    assert (code, err) == (130, "vfi: interrupted\n")


# 7. devices that cannot run a model
@pytest.mark.parametrize("device", ["meta", "xla", torch.device("meta")])
def test_non_compute_device(frames_dir, tmp_path, capsys, device):
    with pytest.raises(InputError) as info:
        resolve_device(device)
    assert str(info.value) == f"device '{device}' cannot run a model: use auto, cpu, cuda, cuda:N or mps"
    if isinstance(device, str):
        code, err = run_cli(["interpolate", str(frames_dir), str(tmp_path / "o.mp4"), "-m", "2", *FAST,
                             "--device", device], capsys)
        assert (code, err) == (2, f"vfi: error: device '{device}' cannot run a model: use auto, cpu, cuda, cuda:N "
                                  "or mps\n")
        assert only_input_left(tmp_path)


# 8. mivid's seed beyond what torch takes
@pytest.mark.parametrize("seed", [2**63, 2**64 + 5, "99999999999999999999"])
def test_mivid_seed_too_large(seed):
    param = registry.get_descriptor("mivid").param("seed")
    with pytest.raises(ParameterError) as info:
        param.validate(seed)
    assert str(info.value) == f"parameter 'seed' must lie in [0, {2**63 - 1}], got {int(seed)}"
    assert param.validate(2**63 - 1) == 2**63 - 1
    torch.Generator().manual_seed(2**63 - 1)  # the largest accepted seed is one torch takes


@pytest.mark.parametrize("seed", [str(2**63), str(2**64 + 5), "-1", "1.5"])
def test_cli_seed_out_of_range(frames_dir, tmp_path, capsys, seed):
    """--seed also seeds models without a seed parameter (torch's global generator): same limit."""
    code, err = run_cli(["interpolate", str(frames_dir), str(tmp_path / "o.mp4"), "-m", "2", *FAST,
                         "--seed", seed], capsys)
    assert (code, err) == (2, f"vfi: error: argument --seed: expected a whole number from 0 to {2**63 - 1} "
                              f"(2**63-1), got '{seed}' (see `vfi interpolate --help`)\n")
    assert only_input_left(tmp_path)


# 9. an output location that cannot be written
@pytest.mark.parametrize("case", ["parent-is-a-file", "under-a-file", "read-only-folder", "read-only-png-folder"])
def test_unwritable_output(frames_dir, tmp_path, capsys, case):
    blocker = (tmp_path / "in" / "0.png").resolve()  # an existing file
    if case == "parent-is-a-file":
        output = blocker / "o.mp4"
        message = f"cannot create the output folder {blocker}: a file is in the way of that folder; choose an output " \
                  "in a folder you can write to"
    elif case == "under-a-file":
        output = blocker / "sub" / "o.mp4"
        message = f"cannot create the output folder {blocker / 'sub'}: a file is in the way of that folder; " \
                  "choose an output in a folder you can write to"
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        if os.access(locked, os.W_OK):
            locked.chmod(0o700)
            pytest.skip("this user writes to read-only folders (root)")
        output = locked / ("o.mp4" if case == "read-only-folder" else "frames")
        message = f"cannot write {output}: the folder {locked} is not writable; choose an output in a folder you " \
                  "can write to"
    try:
        code, err = run_cli(["interpolate", str(frames_dir), str(output), "-m", "2", *FAST], capsys)
        assert (code, err) == (2, f"vfi: error: {message}\n")
        assert sorted(p.name for p in tmp_path.iterdir()) in (["in"], ["in", "locked"])
        assert sorted(p.name for p in frames_dir.iterdir()) == ["0.png", "1.png", "2.png", "3.png"]
        if case.startswith("read-only"):
            assert list(output.parent.iterdir()) == []
    finally:
        if case.startswith("read-only"):
            (tmp_path / "locked").chmod(0o700)


# 10. the model API: empty batches, text times, meta tensors
@pytest.mark.parametrize("case, message", [
    ("empty-batch", "the frames hold a batch of 0 frames; pass at least one frame pair, shape (B,3,H,W) with B >= 1"),
    ("t-as-text", "t must be a number or a (B,) tensor of times in [0, 1], got the string '0.5'"),
    ("meta-frames", "frame0 is a meta tensor, which holds no pixel values; pass frames on the CPU or a GPU"),
    ("meta-t", "t is a meta tensor, which holds no values; pass a number or a (B,) tensor of times"),
])
def test_model_api_mistakes(case, message):
    model = registry.load("flow-asb", device="cpu", motion="dis")
    frame0, frame1, t = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), 0.5
    if case == "empty-batch":
        frame0, frame1 = frame0[:0], frame1[:0]
    elif case == "t-as-text":
        t = "0.5"
    elif case == "meta-frames":
        frame0, frame1 = frame0.to("meta"), frame1.to("meta")
    else:
        t = torch.tensor([0.5], device="meta")
    with pytest.raises(InputError) as info:
        model.interpolate(frame0, frame1, t)
    assert str(info.value) == message


@pytest.mark.parametrize("name, params", [("flow-asb", {"motion": "dis"}), ("flow-asb", {"motion": "raft-dis"}),
                                          ("svmv", {"motion": "dis"}), ("pervfi", {"motion": "dis"}),
                                          ("mivid", {"steps": 1, "motion": "dis"})])
def test_frames_under_the_flow_minimum_are_padded_for_every_model(name, params, tmp_path, capsys):
    """OpenCV's DIS refuses frames with a side under 12 px; the flow pads them and crops back."""
    if params.get("motion") == "raft-dis":
        from vfi_core.flow import raft_weights
        if raft_weights.find("large") is None:
            pytest.skip("the RAFT weights are not installed")
    model = registry.load(name, device="cpu", **params)
    g = torch.Generator().manual_seed(0)
    for size in ((8, 8), (16, 3), (3, 40), (11, 11)):
        f0, f1 = torch.rand(1, 3, *size, generator=g), torch.rand(1, 3, *size, generator=g)
        out = model.interpolate(f0, f1, 0.5)
        assert out.shape == f0.shape and torch.isfinite(out).all()
    folder = tmp_path / "tiny"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((10, 9, 3), 40 * i, np.uint8))
    argv = ["interpolate", str(folder), str(tmp_path / "o.mp4"), "--model", name, "-m", "2"]
    for key, value in params.items():
        argv += ["-p", f"{key}={value}"]
    code, err = run_cli(argv, capsys)
    assert code == 0 and "Traceback" not in err and (tmp_path / "o.mp4").is_file()
