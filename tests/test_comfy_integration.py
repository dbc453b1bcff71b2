"""The node pack in a real ComfyUI, driven over HTTP the way the frontend drives it.

Runs only where ``COMFYUI_DIR`` (a ComfyUI checkout) and ``COMFYUI_PYTHON`` (the python of its
environment, with requirements.txt installed) are set; ../shared/comfy/README.md shows how to make
both. The repository's files (what a clone of this working tree holds) are copied into
``custom_nodes/``, a server is started on a free loopback port with its own input, output, temp
and user folders and an extra_model_paths.yaml that adds a ``vfi`` folder holding (untrained) svmv
weights and a weight file that is not ours. Every API workflow in workflows/ is posted to /prompt;
progress comes over /ws. Each test prints a JSON line of what it measured (run pytest with -s).
"""
import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from fractions import Fraction
from pathlib import Path

import av
import pytest
import torch

COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
COMFYUI_PYTHON = os.environ.get("COMFYUI_PYTHON")
pytestmark = pytest.mark.skipif(not (COMFYUI_DIR and COMFYUI_PYTHON),
                                reason="set COMFYUI_DIR and COMFYUI_PYTHON to run the pack in a real ComfyUI")

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "workflows"
SAMPLE = REPO / "vfi_core" / "samples" / "bikes_60.mp4"  # 60 frames at 25 fps, 640x272, no audio
AUDIO_CLIP = "vfi_suite_audio.mp4"  # made here: 12 frames at 24 fps with AAC audio
START_TIMEOUT = 240
RUN_TIMEOUT = 540


def report(**fields):
    print(json.dumps(fields, default=str))


class WebSocketMessages(threading.Thread):
    """The JSON messages ComfyUI sends a client on /ws, with their arrival times (a minimal
    RFC 6455 client: the server's frames are unmasked, and ComfyUI sends no pings)."""

    def __init__(self, port: int, client_id: str):
        super().__init__(daemon=True)
        self.messages: list[tuple[float, dict]] = []
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=None)
        key = base64.b64encode(os.urandom(16)).decode()
        self.socket.sendall((f"GET /ws?clientId={client_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                             f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        self.stream = self.socket.makefile("rb")
        status = self.stream.readline()
        assert b" 101 " in status, status
        while self.stream.readline() not in (b"\r\n", b""):
            pass
        self.start()

    def run(self):
        while True:
            head = self.stream.read(2)
            if len(head) < 2:
                return
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = struct.unpack(">H", self.stream.read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self.stream.read(8))[0]
            payload = self.stream.read(length)
            if opcode == 8:
                return
            if opcode == 1:
                self.messages.append((time.monotonic(), json.loads(payload)))

    def of_prompt(self, prompt_id: str, kind: str | None = None) -> list[tuple[float, dict]]:
        return [(t, m) for t, m in self.messages if (m.get("data") or {}).get("prompt_id") == prompt_id
                and (kind is None or m["type"] == kind)]

    def close(self):
        self.socket.close()


class Server:
    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.client_id = uuid.uuid4().hex
        self.log_path = run_dir / "server.log"
        folders = {name: run_dir / name for name in ("input", "output", "temp", "user")}
        args = [COMFYUI_PYTHON, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
                "--disable-auto-launch", "--database-url", "sqlite:///:memory:",
                "--extra-model-paths-config", str(run_dir / "extra_model_paths.yaml")]
        for name, folder in folders.items():
            folder.mkdir(exist_ok=True)
            args += [f"--{name}-directory", str(folder)]
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(args, cwd=COMFYUI_DIR, stdout=self.log, stderr=subprocess.STDOUT)
        started = time.monotonic()
        while True:
            assert self.process.poll() is None, f"ComfyUI exited while starting; see {self.log_path}"
            try:
                self.get("/system_stats", timeout=5)
                break
            except OSError:
                assert time.monotonic() - started < START_TIMEOUT, "ComfyUI did not answer"
                time.sleep(1)
        self.ws = WebSocketMessages(self.port, self.client_id)

    def get(self, path: str, timeout: float = 60):
        with urllib.request.urlopen(self.base + path, timeout=timeout) as response:
            return json.loads(response.read())

    def post(self, path: str, body: dict) -> tuple[int, dict]:
        request = urllib.request.Request(self.base + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def submit(self, graph: dict) -> str:
        status, body = self.post("/prompt", {"prompt": graph, "client_id": self.client_id})
        assert status == 200, body
        return body["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = RUN_TIMEOUT) -> dict:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            entry = self.get(f"/history/{prompt_id}").get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None:
                return entry
            time.sleep(0.5)
        self.post("/interrupt", {})
        raise AssertionError(f"prompt {prompt_id} did not finish in {timeout} s")

    def output_files(self, entry: dict) -> list[Path]:
        return [self.run_dir / "output" / item.get("subfolder", "") / item["filename"]
                for node_output in entry["outputs"].values() for items in node_output.values()
                if isinstance(items, list) for item in items if isinstance(item, dict) and "filename" in item]

    def stop(self):
        self.ws.close()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def install_like_a_clone(destination: Path) -> None:
    """Copy what a clone of this working tree holds: tracked files and untracked, unignored ones."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, destination / name)


def write_model_folder(folder: Path) -> None:
    """Untrained svmv weights with their model card, and a safetensors file that is not ours."""
    from safetensors.torch import save_file

    from vfi_core.models.svmv import SVMVConfig, SVMVNet

    folder.mkdir(parents=True)
    torch.manual_seed(0)
    net = SVMVNet(SVMVConfig())
    save_file({k: v.half() for k, v in net.state_dict().items()}, str(folder / "svmv.safetensors"))
    (folder / "svmv.json").write_text(json.dumps({"architecture": {"class": "SVMVNet", "config": net.config.to_dict()}}))
    save_file({"flownet.block0.conv0.weight": torch.zeros(4, 4)}, str(folder / "rife47.safetensors"))


@pytest.fixture(scope="module")
def comfyui(tmp_path_factory):
    from test_io import make_clip

    run_dir = tmp_path_factory.mktemp("comfyui")
    pack = Path(COMFYUI_DIR) / "custom_nodes" / f"vfi-suite-test-{os.getpid()}"
    install_like_a_clone(pack)
    try:
        (run_dir / "input").mkdir()
        shutil.copy(SAMPLE, run_dir / "input")
        make_clip(run_dir / "input" / AUDIO_CLIP, frames=12, size=(64, 48), fps=Fraction(24))
        write_model_folder(run_dir / "models" / "vfi")
        (run_dir / "extra_model_paths.yaml").write_text(
            f"vfi_suite_test:\n    base_path: {run_dir / 'models'}\n    vfi: vfi/\n")
        server = Server(run_dir)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(pack)


def api_workflow(name: str) -> dict:
    return json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())


def video_info(path: Path) -> dict:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        audio = [(a.codec_context.name, float(a.duration * a.time_base)) for a in container.streams.audio]
        return {"frames": frames, "fps": str(stream.average_rate), "audio": audio,
                "video_seconds": float(stream.duration * stream.time_base)}


def test_pack_loads_quickly_and_its_nodes_and_weights_are_listed(comfyui):
    log = comfyui.log_path.read_text()
    assert "IMPORT FAILED" not in log
    import_line = next(line for line in log.splitlines() if f"vfi-suite-test-{os.getpid()}" in line and "seconds" in line)
    seconds = float(import_line.split("seconds")[0].split()[-1])
    info = comfyui.get("/object_info")
    ours = sorted(k for k in info if k.startswith("VFISuite"))
    weights = info["VFISuiteLoad_svmv"]["input"]["required"]["weights"][1]["options"]
    report(test="pack loaded", import_seconds=seconds, nodes=ours, svmv_weights_choices=weights)
    assert seconds < 1.0
    assert {"VFISuiteLoad_flow_asb", "VFISuiteLoad_svmv", "VFISuiteInterpolate", "VFISuiteInterpolateVideo"} <= set(ours)
    assert weights == ["auto", "rife47.safetensors", "svmv.safetensors"]
    # ComfyUI 0.3.64 lists workflows/ as well as example_workflows/, so each name may come twice
    templates = comfyui.get("/workflow_templates")[f"vfi-suite-test-{os.getpid()}"]
    assert set(templates) == {p.stem for p in (REPO / "example_workflows").glob("*.json")}


def test_workflows_use_only_existing_nodes_and_inputs(comfyui):
    info = comfyui.get("/object_info")
    for path in sorted((WORKFLOWS / "api").glob("*.json")):
        for node in json.loads(path.read_text()).values():
            spec = info[node["class_type"]]["input"]
            known = set(spec.get("required", {})) | set(spec.get("optional", {}))
            assert set(node["inputs"]) <= known, (path.name, node["class_type"])


def test_ui_workflows_convert_to_their_api_twins_with_comfy_cli(comfyui):
    if subprocess.run([COMFYUI_PYTHON, "-c", "import comfy_cli.workflow_to_api"], capture_output=True).returncode:
        pytest.skip("comfy-cli is not installed in ComfyUI's environment")
    object_info = comfyui.run_dir / "object_info.json"
    object_info.write_text(json.dumps(comfyui.get("/object_info")))
    convert = ("import json, sys; from comfy_cli.workflow_to_api import convert_ui_to_api; "
               "print(json.dumps(convert_ui_to_api(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))))")
    for api_path in sorted((WORKFLOWS / "api").glob("*.json")):
        converted = subprocess.run([COMFYUI_PYTHON, "-c", convert, str(WORKFLOWS / api_path.name), str(object_info)],
                                   capture_output=True, text=True, check=True).stdout
        ours = {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in json.loads(api_path.read_text()).items()}
        theirs = {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in json.loads(converted).items()}
        assert theirs == ours, api_path.name


@pytest.mark.parametrize("name, frames, fps", [("vfi_suite_flow_asb", 11, "50"), ("vfi_suite_svmv", 11, "50"),
                                               ("vfi_suite_keyframe_peft", 15, "50"), ("vfi_suite_video", 119, "50")])
def test_every_api_workflow_runs(comfyui, name, frames, fps):
    graph = api_workflow(name)
    started = time.monotonic()
    prompt_id = comfyui.submit(graph)
    entry = comfyui.wait(prompt_id)
    seconds = round(time.monotonic() - started, 1)
    assert entry["status"]["status_str"] == "success", entry["status"]
    files = comfyui.output_files(entry)
    videos = [f for f in files if f.suffix == ".mp4"]
    assert len(videos) == 1 and all(f.is_file() for f in files)
    info = video_info(videos[0])
    interpolate_node = next(k for k, v in graph.items() if v["class_type"].startswith("VFISuiteInterpolate"))
    progress = [m["data"] for _, m in comfyui.ws.of_prompt(prompt_id, "progress") if m["data"]["node"] == interpolate_node]
    pngs = [f for f in files if f.suffix == ".png"]
    report(test="workflow", workflow=name, status=entry["status"]["status_str"], seconds=seconds,
           png_files=len(pngs), video=info, progress_events=len(progress),
           last_progress=progress[-1] if progress else None)
    assert info["frames"] == frames and info["fps"] == fps and info["audio"] == []
    if name != "vfi_suite_video":
        assert len(pngs) == 2 * frames  # the frames and their confidence maps
    assert progress and progress[-1]["value"] == progress[-1]["max"]


def test_video_graph_keeps_audio(comfyui):
    graph = api_workflow("vfi_suite_video")
    graph["1"]["inputs"]["file"] = AUDIO_CLIP
    entry = comfyui.wait(comfyui.submit(graph))
    assert entry["status"]["status_str"] == "success", entry["status"]
    (video,) = [f for f in comfyui.output_files(entry) if f.suffix == ".mp4"]
    info = video_info(video)
    source = video_info(comfyui.run_dir / "input" / AUDIO_CLIP)
    report(test="video keeps audio", source=source, output=info)
    assert info["frames"] == 23 and info["fps"] == "48"
    assert [codec for codec, _ in info["audio"]] == ["aac"]
    assert abs(info["audio"][0][1] - source["audio"][0][1]) < 0.05


def test_interrupt_stops_a_long_run_within_seconds(comfyui):
    graph = api_workflow("vfi_suite_video")
    graph["3"]["inputs"]["multiplier"] = 8  # 7 model calls per frame pair: minutes of work on this clip
    prompt_id = comfyui.submit(graph)

    def frames_done():
        return max((m["data"]["value"] for _, m in comfyui.ws.of_prompt(prompt_id, "progress")), default=0)

    deadline = time.monotonic() + 180
    while frames_done() < 3 and time.monotonic() < deadline:  # two pairs done, the third under way
        time.sleep(0.1)
    assert frames_done() >= 3, "the run did not get going before the deadline"
    interrupted_at = time.monotonic()
    comfyui.post("/interrupt", {})
    entry = comfyui.wait(prompt_id, timeout=60)
    stopped = comfyui.ws.of_prompt(prompt_id, "execution_interrupted")
    latency = round(stopped[0][0] - interrupted_at, 2) if stopped else None
    report(test="interrupt", status=entry["status"]["status_str"], source_frames_done=frames_done(),
           latency_seconds=latency, messages=[m[0] for m in entry["status"]["messages"]])
    assert entry["status"]["status_str"] == "error" and stopped
    assert latency < 15
    assert not comfyui.output_files(entry)


@pytest.mark.parametrize("case, expected", [("one frame", "at least two frames"),
                                            ("foreign weights", "does not describe the SVMVNet")])
def test_bad_input_is_a_readable_node_error(comfyui, case, expected):
    if case == "one frame":
        graph = api_workflow("vfi_suite_flow_asb")
        graph["3"]["inputs"]["length"] = 1
    else:
        graph = api_workflow("vfi_suite_svmv")
        graph["4"]["inputs"]["weights"] = "rife47.safetensors"
    entry = comfyui.wait(comfyui.submit(graph))
    error = next(m[1] for m in entry["status"]["messages"] if m[0] == "execution_error")
    report(test="bad input", case=case, node_type=error["node_type"], message=error["exception_message"])
    assert expected in error["exception_message"] and error["node_type"].startswith("VFISuite")
    assert comfyui.get("/system_stats")  # the server is still up
