"""The web app over real HTTP: gradio_client against the launched app (round trips, errors, cancel)."""
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from fractions import Fraction
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
import torch.nn.functional as F
from PIL import Image

gr = pytest.importorskip("gradio")
client_module = pytest.importorskip("gradio_client")

import gradio_app  # noqa: E402
from gradio_app.app import SAMPLE_CLIP  # noqa: E402
from vfi_core.frames import to_numpy_uint8  # noqa: E402
from vfi_core.io import open_reader, open_writer  # noqa: E402
from vfi_core.pipeline import OutputFrame  # noqa: E402
from vfi_core.registry import list_models  # noqa: E402

# a registered model with a weight file (the "missing weights" case hides the shipped ones)
WEIGHTED = next(d.name for d in list_models() if d.weight_file)

Client, handle_file = client_module.Client, client_module.handle_file
AppError = client_module.exceptions.AppError
ENDPOINT = f"/{gradio_app.API_NAME}"


def write_clip(path, frames, size, fps=None):
    """The sample's first ``frames`` frames, scaled to ``size`` (w, h), as an MP4 at ``fps`` (default its 25)."""
    reader = open_reader(SAMPLE_CLIP)
    width, height = size
    writer = open_writer(path, fps or reader.fps, width, height, alpha=False)
    for frame in itertools.islice(reader.frames(), frames):
        writer.write(OutputFrame(F.interpolate(frame.rgb, size=(height, width), mode="area"), None))
    return writer.commit()


def video_facts(path) -> tuple[int, Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for _ in container.decode(video=0)), Fraction(stream.average_rate)


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False, download_files=False)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("clips") / "tiny.mp4", 6, (160, 68))


def call(client, video, **settings):
    arguments = dict(video=handle_file(str(video)) if video is not None else None, first_image=None, second_image=None, model="flow-asb",
                     timing="multiplier", multiplier=2, target_fps="", model_params={}, scene_threshold=0.3,
                     loop=False, dedup=False, preview_seconds=0, output_format="mp4", keep_audio=True, adaptation={})
    arguments.update(settings)
    if "target_fps" in settings and "timing" not in settings:
        arguments["timing"] = "target fps"
    return client.predict(**arguments, api_name=ENDPOINT)


def local(result_file) -> str:
    """The server path of a returned file (client and server share this machine)."""
    return result_file["video"]["path"] if "video" in result_file else result_file["path"]


def job_folders() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("vfi-app-*"))


def test_multiplier_round_trip_gives_frame_count_fps_comparison_and_heat_map(client, tiny_clip):
    folders_before = job_folders()
    video, comparison, heat_map, summary, download = call(client, tiny_clip, model_params={"asymmetry": 0.5})
    assert job_folders() <= folders_before  # the job's working folder is gone once the files are handed over
    assert video_facts(local(download)) == (11, Fraction(50))   # (6-1)*2+1 frames at 2 x 25 fps
    assert video_facts(local(video)) == (11, Fraction(50))
    assert video_facts(local(comparison)) == (11, Fraction(50))
    assert "**11 frames at 50 fps**" in summary and "interpolated in" in summary
    heat = np.asarray(Image.open(local(heat_map)))
    assert heat.shape == (68, 160, 3)


def test_sample_clip_preview_at_a_target_fps_as_gif(client):
    video, _, _, summary, download = call(client, SAMPLE_CLIP, target_fps="60", preview_seconds=0.4,
                                          output_format="gif")
    assert local(download).endswith(".gif") and local(video).endswith(".mp4")  # the browser gets an MP4
    assert video_facts(local(video)) == (24, Fraction(60))  # its first 10 frames cover 0.4 s: 24 at 60 fps
    assert "24 frames at 60 fps" in summary and "preview: the first 0.4 s only" in summary


def test_two_images_give_the_frames_between(client, tmp_path):
    images = []
    for index, frame in enumerate(itertools.islice(open_reader(SAMPLE_CLIP).frames(), 2)):
        images.append(tmp_path / f"frame{index}.png")
        Image.fromarray(to_numpy_uint8(F.interpolate(frame.rgb, size=(68, 160), mode="area"))[0]).save(images[-1])
    video, _, _, summary, download = call(client, None, first_image=handle_file(str(images[0])),
                                          second_image=handle_file(str(images[1])), multiplier=4)
    assert video_facts(local(download)) == (5, Fraction(100))  # both images and 3 between, at 4 x 25 fps
    assert "5 frames at 100 fps" in summary


@pytest.mark.parametrize("case, expected", [
    ("not a video", "is not a video or image file"),
    ("one frame", "only one frame"),
    ("huge", "megapixels"),
    ("too long", "lasts 80.0 s; this app takes up to 60 s"),
    ("bad parameter", "parameter 'asymmetry' must lie in"),
    ("missing weights", "needs .*safetensors, which is not in"),
    ("nothing", "upload a video, or two images"),
    ("absurd rate", r"the output would have 50,000 frames, over the limit of 10,000 \(this app's limit; `vfi interpolate`"),
    ("rate out of range", r"parameter 'target_fps' must lie in \[0.0, 1000.0\], got 1000000000.0"),
    ("no mode", r"'fast' .* is not in the list of choices: \['multiplier', 'target fps'\]"),
    ("cannot adapt", r"model 'flow-asb' cannot adapt to a clip; models that can: .*svmv"),
    ("too many adapt steps", r"this app adapts for up to 500 steps, got 900; use `vfi interpolate --adapt`"),
    ("unknown adapt option", r"unknown adaptation option\(s\) steps; the options are adapt, adapt_rate, adapt_rank"),
])
def test_bad_input_is_one_message_and_the_app_keeps_serving(client, tiny_clip, tmp_path, monkeypatch, case, expected):
    settings = {}
    if case == "not a video":
        video = tmp_path / "notes.mp4"
        video.write_text("not a video at all\n")
    elif case == "one frame":
        video = write_clip(tmp_path / "one.mp4", 1, (64, 48))
    elif case == "huge":
        video = write_clip(tmp_path / "huge.mp4", 2, (2048, 1152))  # above the default 1920x1080
    elif case == "too long":
        video = write_clip(tmp_path / "long.mp4", 2, (64, 48), fps=Fraction(1, 40))
    elif case == "nothing":
        video = None
    elif case == "absurd rate":  # 2 frames 25 s apart at 1000 fps
        video = write_clip(tmp_path / "slow.mp4", 2, (64, 48), fps=Fraction(1, 25))
        settings = {"target_fps": "1000"}
    else:
        video = tiny_clip
        if case == "missing weights":   # the app runs in this process: hide the shipped weights from it
            monkeypatch.setattr("vfi_core.registry.WEIGHTS_DIR", tmp_path / "no-weights")
        settings = {"bad parameter": {"model_params": {"asymmetry": 3.0}}, "missing weights": {"model": WEIGHTED},
                    "rate out of range": {"target_fps": "1e9"}, "no mode": {"timing": "fast"},
                    "cannot adapt": {"adaptation": {"adapt": 10}},
                    "too many adapt steps": {"model": "svmv", "adaptation": {"adapt": 900}},
                    "unknown adapt option": {"adaptation": {"steps": 10}}}[case]
    with pytest.raises(AppError, match=expected) as caught:
        call(client, video, **settings)
    message = str(caught.value)
    assert "Traceback" not in message and "\n" not in message.strip()
    assert tempfile.gettempdir() + "/" not in message  # no server path
    if case == "not a video":
        assert message.startswith("notes.mp4 is not a video")  # the name the user uploaded
    _, _, _, summary, _ = call(client, tiny_clip)
    assert "11 frames at 50 fps" in summary


def test_adapting_to_the_clip_reports_it_and_keeps_the_frame_count(client, tmp_path):
    clip = write_clip(tmp_path / "pan.mp4", 9, (160, 68))
    _, _, _, summary, download = call(client, clip, model="svmv",
                                      adaptation={"adapt": 2, "adapt_rate": 1e-3, "adapt_rank": 2})
    assert "adapted to the clip in" in summary and "(2 steps, adapt_sharpness 30, loss" in summary
    assert video_facts(local(download)) == (17, Fraction(50))


def test_mivids_mask_ratios_reach_its_adaptation(client, tmp_path):
    clip = write_clip(tmp_path / "pan.mp4", 9, (160, 68))
    _, _, _, summary, _ = call(client, clip, model="mivid", model_params={"random_mask": 0.5, "curriculum_end": 0.8},
                               adaptation={"adapt": 2})
    assert "(2 steps, random_mask 0.5, motion_mask 0.3, curriculum_start 0.1, curriculum_end 0.8, loss" in summary
    with pytest.raises(AppError, match="curriculum_start") as caught:
        call(client, clip, model="mivid", model_params={"curriculum_start": 0.9}, adaptation={"adapt": 2})
    assert "\n" not in str(caught.value).strip()


def test_adapt_controls_are_the_cores_declarations_and_follow_the_model():
    from vfi_core import registry
    from vfi_core.adapt import ADAPT_PARAMS

    demo = gradio_app.build_demo()
    by_id = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    for param in ADAPT_PARAMS:
        control = by_id[f"adapt-{param.name.replace('_', '-')}"]
        assert control.value == param.default and control.info == param.help
        assert control.minimum == param.min
    assert by_id["adapt-adapt"].maximum == gradio_app.Limits().max_adapt_steps
    default = registry.get_descriptor(registry.default_model_name())
    assert by_id["adapt-group"].visible == default.adaptable

    def in_adapt_group(block) -> bool:
        while block is not None:
            if block is by_id["adapt-group"]:
                return True
            block = getattr(block, "parent", None)
        return False

    # a model's own adaptation parameters (mivid's mask ratios) sit in the group, its others do not
    mivid = registry.get_descriptor("mivid")
    assert any(p.group == "adapt" for p in mivid.params)
    for param in mivid.params:
        control = by_id[f"param-mivid-{param.name}"]
        assert in_adapt_group(control) == (param.group == "adapt"), param.name
        assert control.value == param.default


def test_messages_name_the_users_files_not_the_servers_paths(tmp_path):
    from gradio_app.job import public_message

    upload = tmp_path / "gradio" / "3f9a" / "holiday.mov"
    work = tmp_path / "vfi-app-x1"
    uploads = {"video": str(upload), "first image": None, "second image": None}
    assert public_message(f"{upload} is not a video or image file", uploads, work) == \
        "holiday.mov is not a video or image file"
    assert public_message(f"{work}/image_pair/2.png: cannot identify image file", {}, work) == \
        "the second image: cannot identify image file"
    assert public_message(f"cannot write {work}/interpolated.mp4: disk full", {}, work) == \
        "cannot write interpolated.mp4: disk full"


def test_timing_controls_are_the_cores_timing_declarations():
    from vfi_core.pipeline import timing_param

    demo = gradio_app.build_demo()
    by_id = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    for elem_id, name in (("multiplier", "multiplier"), ("scene-threshold", "scene_threshold"),
                          ("loop", "loop"), ("dedup", "dedup")):
        param, control = timing_param(name), by_id[elem_id]
        assert control.value == param.default and control.info == param.help
        if param.kind in (int, float):
            assert (control.minimum, control.maximum) == (param.min, param.max)


def test_cancel_stops_the_running_job(app_url, tmp_path):
    client = Client(app_url, verbose=False, download_files=False)
    clip = write_clip(tmp_path / "long.mp4", 40, (320, 136))
    job = client.submit(handle_file(str(clip)), None, None, "flow-asb", "multiplier", 8, "", {}, 0.3, False, False,
                        0, "mp4", True, api_name=ENDPOINT)
    deadline = time.monotonic() + 120
    while not (job.status().progress_data or job.done()):  # wait until frames are flowing
        assert time.monotonic() < deadline
        time.sleep(0.2)
    cancelled_at = time.monotonic()
    client.predict(api_name="/cancel")
    with pytest.raises(AppError, match="cancelled by the user"):
        job.result(timeout=60)
    assert time.monotonic() - cancelled_at < 30  # the job stops between pairs, not after 39 of them


@pytest.mark.parametrize("command", [["-m", "vfi_core", "app"], ["-m", "gradio_app"]])
def test_vfi_app_and_python_m_gradio_app_serve_the_page(command):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, *command, "--port", str(port)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5) as response:
                    config = json.load(response)
                break
            except OSError:
                assert time.monotonic() < deadline, "the app did not start within 60 s"
                time.sleep(0.5)
        assert any(d.get("api_name") == gradio_app.API_NAME for d in config["dependencies"])
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_uploads_above_the_limit_are_refused_with_a_message(tmp_path):
    demo = gradio_app.launch(gradio_app.Limits(max_upload_mb=1), prevent_thread_lock=True, quiet=True)
    try:
        big = tmp_path / "big.mp4"
        big.write_bytes(b"\0" * 1_500_000)
        with pytest.raises(ValueError, match="exceeds the maximum file size of 1048576 bytes"):
            call(Client(demo.local_url, verbose=False), big)  # the client reads the limit from the server
        with open(big, "rb") as data:  # and the server refuses it without the client's check
            response = httpx.post(f"{demo.local_url}gradio_api/upload", files={"files": ("big.mp4", data)})
        assert response.status_code == 413 and "maximum allowed size of 1048576 bytes" in response.text
    finally:
        demo.close()


def test_the_app_removes_uploads_and_results_when_it_stops(tiny_clip, tmp_path):
    """A job's upload and results live in the app's cache until it stops (Ctrl-C): then none is left."""
    cache = tmp_path / "cache"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "GRADIO_TEMP_DIR": str(cache)}
    server = subprocess.Popen([sys.executable, "-m", "gradio_app", "--port", str(port), "--keep-minutes", "30"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the app did not start within 60 s"
                time.sleep(0.5)
        call(Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False), tiny_clip)
        files = [p for p in cache.rglob("*") if p.is_file()]
        assert any(p.name == tiny_clip.name for p in files) and any(p.suffix == ".mp4" for p in files)
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    assert not [p for p in cache.rglob("*") if p.is_file()]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads the resident memory from /proc")
def test_eight_concurrent_jobs_with_an_oversized_one(client, tiny_clip, tmp_path):
    """Eight jobs at once, one asking for an absurd rate: the seven finish with the right frames, the
    eighth is refused in one message, and the server (this process) holds no more memory after."""
    import gc

    call(client, tiny_clip)  # warm: the model and Gradio's caches are loaded once
    gc.collect()
    before = _rss_bytes()
    slow = write_clip(tmp_path / "slow.mp4", 2, (64, 48), fps=Fraction(1, 25))  # 50 s: 50,000 frames at 1000 fps
    jobs = []
    for i in range(8):
        settings = {"timing": "target fps", "target_fps": "1000"} if i == 3 else {"multiplier": 2 + i % 3}
        arguments = dict(video=handle_file(str(slow if i == 3 else tiny_clip)), first_image=None, second_image=None,
                         model="flow-asb", timing="multiplier", multiplier=2, target_fps="", model_params={},
                         scene_threshold=0.3, loop=False, dedup=False, preview_seconds=0, output_format="mp4",
                         keep_audio=True)
        arguments.update(settings)
        jobs.append((i, settings, client.submit(**arguments, api_name=ENDPOINT)))
    for i, settings, job in jobs:
        if i == 3:
            with pytest.raises(AppError, match="over the limit of 10,000"):
                job.result(timeout=300)
            continue
        _, _, _, summary, _ = job.result(timeout=300)
        assert f"{(6 - 1) * settings['multiplier'] + 1} frames" in summary
    gc.collect()
    assert _rss_bytes() <= 1.1 * before


def test_a_preview_gets_round_the_clip_length_limit(client, tmp_path):
    """The length error suggests a preview; a preview of the first seconds of a long clip then runs."""
    long_clip = write_clip(tmp_path / "long.mp4", 3, (64, 48), fps=Fraction(1, 40))  # 120 s
    with pytest.raises(AppError, match=r"preview its first seconds \(up to 60\)"):
        call(client, long_clip)
    _, _, _, summary, _ = call(client, long_clip, preview_seconds=10)
    assert "preview: the first 10 s only" in summary and "3 frames" in summary
