"""`vfi batch`: planning, parts that join into the unsplit result, and whole jobs on a local Ray
runtime with two workers (folder with a corrupt file, manifest overrides, resume after Ctrl-C)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vfi_core.batch import ItemSettings, Part, folder_items, manifest_items, split_points
from vfi_core.errors import InputError, ParameterError
from vfi_core.io import open_reader
from vfi_core.io.images import list_images, read_image
from vfi_core.pipeline import InterpolatedStream, SequencePart, timing_options


def write_clip(path: Path, frames: int, size=(48, 32), fps: int = 25, gop: int = 250, seed: int = 0) -> Path:
    """A small H.264 clip: a square moving right over noise, a keyframe every ``gop`` frames."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    background = rng.integers(40, 120, (size[1], size[0], 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = {"crf": "18", "keyint_min": str(gop), "sc_threshold": "0"}
        for i in range(frames):
            image = background.copy()
            x = (3 * i) % (size[0] - 10)
            image[8:18, x:x + 10] = 230
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


class Mean:
    """A stand-in model: the pixel mean of the two frames weighted by t (fast, deterministic)."""

    device = "cpu"

    def interpolate(self, frame0, frame1, t):
        t = t.view(-1, 1, 1, 1)
        return frame0 * (1 - t) + frame1 * t


# -- planning -----------------------------------------------------------------------------------

def test_split_points_cover_every_pair_once_and_prefer_keyframes():
    parts = split_points(91, keyframes=[0, 28, 61, 88], part_frames=30)
    assert [p.start for p in parts] == [0, 28, 61] and parts[-1].stop == 91
    for a, b in zip(parts, parts[1:]):
        assert a.stop - 1 == b.start  # the boundary frame ends one part and starts the next
    assert sum(p.stop - p.start - 1 for p in parts) == 90  # every pair once
    assert split_points(91, keyframes=[0], part_frames=30) == [Part(0, 0, 31), Part(1, 30, 61), Part(2, 60, 91)]
    assert split_points(40, keyframes=[0], part_frames=30) == [Part(0, 0, 40)]


def test_a_video_read_from_a_frame_on_equals_the_same_frames_read_whole(tmp_path):
    reader = open_reader(write_clip(tmp_path / "c.mp4", 40, gop=10))
    assert reader.keyframes == [0, 10, 20, 30]
    whole = list(reader.frames())
    for start, stop in [(0, 7), (13, 27), (20, 40), (39, None)]:
        part = list(reader.frames(start, stop))
        assert len(part) == len(whole[start:stop])
        for a, b in zip(part, whole[start:stop]):
            assert torch.equal(a.rgb, b.rgb) and a.time == b.time and a.duration == b.duration
    with pytest.raises(InputError, match="not all in"):
        list(reader.frames(35, 41))


@pytest.mark.parametrize("timing", [{"multiplier": 3}, {"target_fps": "60"}, {"target_fps": "30000/1001"}])
def test_parts_of_a_sequence_join_into_the_whole_sequence(tmp_path, timing):
    reader = open_reader(write_clip(tmp_path / "c.mp4", 31, gop=10))
    options = timing_options(scene_threshold=None, **timing)
    whole = list(InterpolatedStream(reader.frames(), Mean(), options, reader.fps))
    joined = []
    parts = split_points(reader.count, reader.keyframes, 10)
    assert len(parts) == 3
    for part in parts:
        piece = SequencePart(part.start, reader.start, part.index == len(parts) - 1)
        joined += list(InterpolatedStream(reader.frames(part.start, part.stop), Mean(), options, reader.fps,
                                          part=piece))
    assert len(joined) == len(whole) == options.output_count(reader.count, reader.fps)
    assert all(torch.equal(a.rgb, b.rgb) for a, b in zip(joined, whole))
    with pytest.raises(ParameterError, match="whole source"):
        InterpolatedStream([], Mean(), timing_options(loop=True), reader.fps, part=piece)


def test_folder_items_mirror_the_tree_and_a_manifest_overrides_per_item(tmp_path):
    write_clip(tmp_path / "in" / "a.mp4", 4)
    write_clip(tmp_path / "in" / "deep" / "b.mov", 4)
    frames = tmp_path / "in" / "deep" / "shots"
    frames.mkdir()
    for i in range(2):
        (frames / f"{i}.png").write_bytes(b"")  # planning looks at names only
    settings = ItemSettings(model="flow-asb")
    items = folder_items(tmp_path / "in", tmp_path / "out", settings)
    assert [(i.input.relative_to(tmp_path), i.output.relative_to(tmp_path)) for i in items] == [
        (Path("in/a.mp4"), Path("out/a.mp4")), (Path("in/deep/b.mov"), Path("out/deep/b.mov")),
        (Path("in/deep/shots"), Path("out/deep/shots"))]
    as_mp4 = folder_items(tmp_path / "in", tmp_path / "out", ItemSettings(model="flow-asb", format="mp4"))
    assert [i.output.name for i in as_mp4] == ["a.mp4", "b.mp4", "shots.mp4"]
    write_clip(tmp_path / "in" / "a.mkv", 4)  # a.mkv and a.mp4 would both write out/a.mp4
    clash = folder_items(tmp_path / "in", tmp_path / "out", ItemSettings(model="flow-asb", format="mp4"))
    assert clash[0].input.name == "a.mkv" and clash[0].error is None
    assert "also the output of" in clash[1].error and clash[1].input.name == "a.mp4"
    (tmp_path / "in" / "a.mkv").unlink()
    with pytest.raises(InputError, match="inside the input folder"):
        folder_items(tmp_path / "in", tmp_path / "in" / "out", settings)

    manifest = tmp_path / "jobs.csv"
    manifest.write_text("input,output,multiplier,params,fps\n"
                        "in/a.mp4,x/a4.mp4,4,,\n"
                        "in/deep/b.mov,,,motion=dis,\n"
                        "in/a.mp4,a60.webm,,,60\n"
                        "in/a.mp4,bad.mp4,two,,\n")
    rows = manifest_items(manifest, tmp_path / "out", settings)
    assert rows[0].settings.multiplier == 4 and rows[0].output == tmp_path / "out" / "x" / "a4.mp4"
    assert rows[1].settings.params["motion"] == "dis" and rows[1].output == tmp_path / "out" / "b.mov"
    assert rows[2].settings.fps == "60" and rows[2].error is None
    assert rows[3].error.startswith("line 5: multiplier must be a whole number")
    manifest.write_text("input,speed\nin/a.mp4,2\n")
    with pytest.raises(InputError, match="unknown column"):
        manifest_items(manifest, tmp_path / "out", settings)


# -- jobs on a local Ray runtime ----------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_runtime():
    ray = pytest.importorskip("ray")
    import logging

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    yield ray
    ray.shutdown()


def _png_frames(folder: Path) -> list[np.ndarray]:
    return [read_image(p) for p in list_images(folder)]


def test_a_folder_with_a_corrupt_file_finishes_the_others_on_two_workers(ray_runtime, tmp_path):
    from vfi_core.batch import run_batch

    for i in range(5):
        write_clip(tmp_path / "in" / ("sub" if i % 2 else "") / f"clip{i}.mp4", 6 + i, seed=i)
    (tmp_path / "in" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    (tmp_path / "out").mkdir()
    leftover = tmp_path / "out" / ".clip0.k2j4.partial.mp4"  # as a killed worker leaves it
    leftover.write_bytes(b"")
    failures = []
    items = folder_items(tmp_path / "in", tmp_path / "out", ItemSettings(model="flow-asb", multiplier=2))
    summary = run_batch(items, tmp_path / "out", workers=2, on_failure=lambda item, why: failures.append((item, why)))
    assert (summary.done, summary.failed, summary.skipped, summary.workers) == (5, 1, 0, 2)
    assert failures[0][0].input.name == "broken.mp4" and "\n" not in failures[0][1]
    for i in range(5):
        out = open_reader(tmp_path / "out" / ("sub" if i % 2 else "") / f"clip{i}.mp4")
        assert out.count == 2 * (6 + i) - 1 and out.fps == 50
    assert summary.frames == sum(2 * (6 + i) - 1 for i in range(5))
    assert not list((tmp_path / "out").rglob("*.partial*")) and not leftover.exists()
    again = run_batch(items, tmp_path / "out", workers=2)
    assert (again.done, again.skipped, again.failed) == (0, 5, 1)


def test_a_long_clip_split_into_three_parts_equals_the_unsplit_result(ray_runtime, tmp_path):
    from vfi_core.batch import run_batch

    write_clip(tmp_path / "in" / "long.mp4", 61, gop=20)
    for timing in ({"multiplier": 2}, {"fps": "60"}):
        results = {}
        for name, part_seconds in (("whole", 0), ("split", 0.8)):  # 0.8 s = 20 frames: three parts
            settings = ItemSettings(model="flow-asb", format="png", **timing)
            outdir = tmp_path / f"{name}-{list(timing)[0]}"
            summary = run_batch(folder_items(tmp_path / "in", outdir, settings), outdir, workers=2,
                                part_seconds=part_seconds)
            assert summary.done == 1 and summary.source_frames == 61
            results[name] = _png_frames(outdir / "long")
        assert len(results["split"]) == len(results["whole"])
        assert all(np.array_equal(a, b) for a, b in zip(results["split"], results["whole"]))
        assert not any((tmp_path / f"split-{list(timing)[0]}" / ".vfi-batch" / "parts").iterdir())
    assert len(results["whole"]) == timing_options(target_fps="60").output_count(61, Fraction(25))


def test_a_split_video_keeps_its_audio_once_and_its_timing(ray_runtime, tmp_path):
    from test_io import audio_packets, make_clip

    from vfi_core.batch import run_batch

    (tmp_path / "in").mkdir()
    make_clip(tmp_path / "in" / "talk.mp4", frames=40, fps=Fraction(25))
    outputs = {}
    for name, part_seconds in (("whole", 0), ("split", 0.5)):
        outdir = tmp_path / name
        summary = run_batch(folder_items(tmp_path / "in", outdir, ItemSettings(model="flow-asb", fps="60")), outdir,
                            workers=2, part_seconds=part_seconds)
        assert summary.done == 1
        outputs[name] = outdir / "talk.mp4"
    split, whole = open_reader(outputs["split"]), open_reader(outputs["whole"])
    assert (split.count, split.fps, split.duration) == (whole.count, whole.fps, whole.duration) == (96, 60, Fraction(8, 5))
    assert audio_packets(outputs["split"]) == audio_packets(outputs["whole"]) == audio_packets(tmp_path / "in" / "talk.mp4")


def test_a_manifest_applies_its_overrides(ray_runtime, tmp_path):
    from vfi_core.batch import run_batch

    write_clip(tmp_path / "a.mp4", 5)
    write_clip(tmp_path / "b.mp4", 5)
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("\n".join(json.dumps(row) for row in [
        {"input": "a.mp4", "output": "a3.mp4", "multiplier": 3},
        {"input": "b.mp4", "output": "b60.mkv", "fps": "60", "params": {"motion": "dis"}},
        {"input": "b.mp4", "output": "bad.mp4", "model": "no-such-model"}]))
    summary = run_batch(manifest_items(manifest, tmp_path / "out", ItemSettings(model="flow-asb")), tmp_path / "out",
                        workers=2)
    assert (summary.done, summary.failed) == (2, 1)
    assert "no-such-model" in summary.failures[str(tmp_path / "b.mp4")]
    assert open_reader(tmp_path / "out" / "a3.mp4").count == 13
    b60 = open_reader(tmp_path / "out" / "b60.mkv")
    assert b60.fps == 60 and b60.count == 12


def test_ctrl_c_leaves_whole_outputs_and_the_rerun_finishes(tmp_path):
    pytest.importorskip("ray")
    for i in range(4):
        write_clip(tmp_path / "in" / f"c{i}.mp4", 30, seed=i)
    command = [sys.executable, "-m", "vfi_core", "batch", str(tmp_path / "in"), str(tmp_path / "out"),
               "--model", "flow-asb", "-m", "4", "--workers", "1", "--part-seconds", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    state = tmp_path / "out" / ".vfi-batch" / "state.jsonl"
    deadline = time.monotonic() + 240
    while not (state.is_file() and state.read_text().strip()) and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.2)
    assert job.poll() is None, job.communicate()
    job.send_signal(signal.SIGINT)
    out, err = job.communicate(timeout=120)
    assert job.returncode == 130, err
    assert not list((tmp_path / "out").rglob("*.partial*"))
    finished = [json.loads(line) for line in state.read_text().splitlines()]
    written = sorted(p.name for p in (tmp_path / "out").glob("*.mp4"))
    assert 1 <= len(finished) < 4 and written == sorted(Path(r["output"]).name for r in finished)
    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{4 - len(finished)} done, {len(finished)} skipped, 0 failed" in rerun.stdout
    assert all(open_reader(tmp_path / "out" / f"c{i}.mp4").count == 4 * 29 + 1 for i in range(4))


def test_a_users_mistakes_are_one_line_errors_before_anything_runs(tmp_path, capsys):
    from vfi_core.cli import main

    (tmp_path / "in").mkdir()
    write_clip(tmp_path / "in" / "a.mp4", 4)
    (tmp_path / "jobs.csv").write_text("input,speed\na.mp4,2\n")
    cases = [([str(tmp_path / "missing"), str(tmp_path / "out")], "does not exist"),
             ([str(tmp_path / "in"), str(tmp_path / "in" / "out")], "inside the input folder"),
             ([str(tmp_path / "jobs.csv"), str(tmp_path / "out")], "unknown column"),
             ([str(tmp_path / "in" / "a.mp4"), str(tmp_path / "out")], "a manifest is a .csv or .jsonl"),
             ([str(tmp_path / "in"), str(tmp_path / "out"), "-m", "0"], "multiplier"),
             ([str(tmp_path / "in"), str(tmp_path / "out"), "--model", "nope"], "nope")]
    for argv, message in cases:
        assert main(["batch", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_a_dry_run_lists_what_each_item_would_do_and_writes_nothing(tmp_path, capsys):
    from vfi_core.cli import main

    write_clip(tmp_path / "in" / "short.mp4", 6)
    write_clip(tmp_path / "in" / "long.mp4", 61, gop=20)
    (tmp_path / "in" / "broken.mp4").write_bytes(b"not a video" * 50)
    assert main(["batch", str(tmp_path / "in"), str(tmp_path / "out"), "--model", "flow-asb", "--part-seconds", "0.8",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    lines = {Path(line.split(" -> ")[0]).name: line.split(": ", 1)[1] for line in out[:-1]}
    assert lines["short.mp4"] == "run: 6 source frames"
    assert lines["long.mp4"] == "run: 61 source frames, split into 3 parts (3 left to run)"
    assert lines["broken.mp4"].startswith("fail: ") and "broken.mp4" in lines["broken.mp4"]
    assert out[-1] == "batch (dry run): 2 to run, 0 to skip, 1 failing; nothing written"
    assert not (tmp_path / "out").exists()


def test_weight_folders_reach_the_workers_models(tmp_path):
    from safetensors.torch import save_file

    from vfi_core.batch.plan import BatchItem
    from vfi_core.batch.work import WholeTask, run_task
    from vfi_core.models.refine import RefineNet

    folder = tmp_path / "weights"
    folder.mkdir()
    net = RefineNet({"stem": 4, "widths": [4, 6, 8], "selection": True})
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / "refine.safetensors"))
    (folder / "refine.json").write_text(json.dumps({"architecture": {"class": "RefineNet", "config": net.config.to_dict()}}))
    clip = write_clip(tmp_path / "in" / "a.mp4", 4)
    results = {}
    for name, dirs in (("with", (str(folder),)), ("without", ())):
        settings = ItemSettings(model="flow-asb", params={"refine": 1.0, "motion": "dis"}, weight_dirs=dirs).checked()
        results[name] = run_task(WholeTask(BatchItem(clip, tmp_path / name / "a.mp4", settings)))
    assert results["with"].status == "done" and results["with"].frames == 7
    assert results["without"].status == "failed" and "refine.safetensors" in results["without"].reason
