"""The ComfyUI node pack without a ComfyUI: schemas, node functions on odd-sized IMAGE batches,
readable errors, interrupts, the workflow files and the install metadata.

``comfy_api`` is ComfyUI's own where ``COMFYUI_DIR`` names a checkout, else the double in
``tests/comfy_double``. ComfyUI's runtime modules (``comfy.utils``, ``comfy.model_management``,
``folder_paths``) are replaced per test by small fakes that record progress and raise interrupts.
"""
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import tomllib
import types
from fractions import Fraction
from pathlib import Path

import av
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
COMFY_API_PATH = os.environ.get("COMFYUI_DIR") or str(REPO / "tests" / "comfy_double")
sys.path.append(COMFY_API_PATH)

import vfi_core  # noqa: E402
from comfy_api.latest import InputImpl, Types  # noqa: E402
from comfy_nodes import model_files, nodes, sequence  # noqa: E402
from test_io import make_clip  # noqa: E402
from vfi_core import pipeline  # noqa: E402
from vfi_core.errors import InputError, ParameterError, WeightsError  # noqa: E402
from vfi_core.model_cache import ModelCache  # noqa: E402
from vfi_core.pipeline import SequenceOptions  # noqa: E402

WORKFLOWS = REPO / "workflows"
CORE_NODE_IDS_TO_AVOID = {"FrameInterpolate", "FrameInterpolationModelLoader"}
# The core ComfyUI nodes the workflows use, with their inputs (ComfyUI 0.3.64's /object_info); the
# integration test checks the workflows against a running ComfyUI's /object_info as well.
CORE_NODE_INPUTS = {
    "LoadVideo": ["file"], "GetVideoComponents": ["video"], "ImageFromBatch": ["image", "batch_index", "length"],
    "SaveImage": ["images", "filename_prefix"], "MaskToImage": ["mask"], "CreateVideo": ["images", "fps", "audio"],
    "SaveVideo": ["video", "filename_prefix", "format", "codec"],
}


class Interrupted(Exception):
    """Stands in for comfy.model_management.InterruptProcessingException."""


@pytest.fixture
def comfy(tmp_path, monkeypatch):
    """Fakes of ComfyUI's runtime modules; returns a namespace with what they recorded."""
    state = types.SimpleNamespace(progress=[], interrupted=False, models_dir=tmp_path / "models",
                                  temp_dir=tmp_path / "temp")

    class ProgressBar:
        def __init__(self, total):
            self.total = total

        def update_absolute(self, value, total=None):
            self.total = total if total is not None else self.total
            state.progress.append((value, self.total))

    def processing_interrupted():
        return state.interrupted

    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = ProgressBar
    management = types.ModuleType("comfy.model_management")
    management.get_torch_device = lambda: torch.device("cpu")
    management.intermediate_device = lambda: torch.device("cpu")
    management.processing_interrupted = processing_interrupted
    management.InterruptProcessingException = Interrupted
    folder_paths = types.ModuleType("folder_paths")
    folder_paths.models_dir = str(state.models_dir)
    folder_paths.folder_names_and_paths = {}
    folder_paths.get_folder_paths = lambda key: list(folder_paths.folder_names_and_paths[key][0])
    folder_paths.get_temp_directory = lambda: str(state.temp_dir)

    def get_filename_list(key):
        folders, extensions = folder_paths.folder_names_and_paths[key]
        return sorted(p.name for f in folders if Path(f).is_dir() for p in Path(f).iterdir()
                      if p.suffix in extensions)

    def get_full_path(key, name):
        return next((str(Path(f) / name) for f in folder_paths.folder_names_and_paths[key][0]
                     if (Path(f) / name).is_file()), None)

    folder_paths.get_filename_list = get_filename_list
    folder_paths.get_full_path = get_full_path
    comfy_package = sys.modules.get("comfy") or types.ModuleType("comfy")
    monkeypatch.setitem(sys.modules, "comfy", comfy_package)
    monkeypatch.setattr(comfy_package, "utils", utils, raising=False)
    monkeypatch.setattr(comfy_package, "model_management", management, raising=False)
    monkeypatch.setitem(sys.modules, "comfy.utils", utils)
    monkeypatch.setitem(sys.modules, "comfy.model_management", management)
    monkeypatch.setitem(sys.modules, "folder_paths", folder_paths)
    monkeypatch.setattr(nodes, "CACHE", ModelCache())
    model_files.register_model_folder()
    return state


def loader(name):
    return next(n for n in nodes.node_list() if n.define_schema().node_id == nodes.loader_node_id(name))


def frames(count, height, width, channels=3, seed=0):
    """An IMAGE batch [B,H,W,C]: a bright square moving right over a smooth background."""
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.interpolate(torch.rand(1, channels, 4, 4, generator=g), size=(height, width),
                                           mode="bilinear", align_corners=False)[0].movedim(0, -1)
    batch = base.expand(count, height, width, channels).clone()
    for i in range(count):
        batch[i, height // 4: height // 4 + 4, 2 + i: 6 + i] = 0.9
    return batch


def flow_asb(comfy, **params):
    return loader("flow-asb").execute(**params)[0]


def interpolate(vfi_model, images, source_fps=24.0, multiplier=2, target_fps=0.0, scene_threshold=0.3,
                loop=False, dedup=False):
    return nodes.Interpolate.execute(vfi_model=vfi_model, images=images, source_fps=source_fps,
                                     multiplier=multiplier, target_fps=target_fps,
                                     scene_threshold=scene_threshold, loop=loop, dedup=dedup)


# -- schemas ---------------------------------------------------------------------------------------

def test_every_registered_model_gets_a_loader_with_its_declared_parameters(comfy):
    node_list = nodes.node_list()
    schemas = [n.define_schema() for n in node_list]
    for schema in schemas:
        schema.validate()
        assert schema.node_id.startswith("VFISuite") and schema.node_id not in CORE_NODE_IDS_TO_AVOID
        assert schema.category == nodes.CATEGORY and schema.display_name and schema.description
    ids = [s.node_id for s in schemas]
    assert len(set(ids)) == len(ids)
    assert ids[-4:] == ["VFISuiteInterpolate", "VFISuiteInterpolateVideo", "VFISuiteAdapt", "VFISuiteApplyAdapter"]
    for descriptor in vfi_core.list_models():
        schema = loader(descriptor.name).define_schema()
        inputs = {i.id: i for i in schema.inputs}
        expected = (["weights"] if descriptor.weight_file else []) + [p.name for p in descriptor.params]
        assert list(inputs) == expected
        for param in descriptor.params:
            widget = inputs[param.name]
            assert widget.default == param.default and widget.tooltip == param.help
            if param.kind in (int, float):
                assert (widget.min, widget.max) == (param.min, param.max)
            if param.choices:
                assert widget.options == list(param.choices)
        assert [o.id for o in schema.outputs] == ["vfi_model"]
    assert loader("flow-asb").define_schema().node_id == "VFISuiteLoad_flow_asb"


def test_timing_inputs_are_the_cores_timing_declarations(comfy):
    inputs = {i.id: i for i in nodes.InterpolateVideo.define_schema().inputs}
    for param in pipeline.TIMING_PARAMS:
        widget = inputs[param.name]
        assert widget.default == param.default and widget.tooltip == param.help
        if param.kind in (int, float):
            assert (widget.min, widget.max) == (param.min, param.max)


def test_weights_list_shows_safetensors_files_in_every_model_folder(comfy, tmp_path):
    extra = tmp_path / "extra_vfi"  # as extra_model_paths.yaml would add it, before the pack loads
    sys.modules["folder_paths"].folder_names_and_paths["vfi"] = ([str(extra)], set())
    model_files.register_model_folder()
    folders, extensions = sys.modules["folder_paths"].folder_names_and_paths["vfi"]
    assert folders == [str(comfy.models_dir / "vfi"), str(extra)] and extensions == {".safetensors"}
    extra.mkdir()
    (extra / "mine.safetensors").write_bytes(b"x")
    (extra / "notes.txt").write_text("not a weight file")
    weights = next(i for i in loader("svmv").define_schema().inputs if i.id == "weights")
    assert weights.options == ["auto", "mine.safetensors"]


def test_pack_imports_without_comfyui_and_lists_nodes_without_loading_video_io_or_gradio():
    code = ("import sys; import comfy_nodes; "
            "assert not {'comfy_api', 'torch'} & set(sys.modules), 'import comfy_nodes imported ComfyUI or torch'; "
            "sys.path.append(sys.argv[1]); from comfy_nodes import nodes; nodes.node_list(); "
            "print([m for m in ('vfi_core.io', 'av', 'cv2', 'gradio', 'gradio_app') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code, COMFY_API_PATH], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    # the real comfy_api imports PyAV itself (for its video types); the double does not
    assert out.stdout.strip() == ("['av']" if os.environ.get("COMFYUI_DIR") else "[]")


def test_root_init_hands_comfyui_the_entrypoint_as_a_custom_nodes_clone(comfy):
    # ComfyUI imports a pack folder as a module named after its path, from its __init__.py
    name = str(REPO).replace(".", "_x_")
    spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        extension = asyncio.run(module.comfy_entrypoint())
        node_ids = [n.define_schema().node_id for n in asyncio.run(extension.get_node_list())]
    finally:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
    assert not hasattr(module, "NODE_CLASS_MAPPINGS")  # with it, ComfyUI would load the pack as V1 only
    assert "VFISuiteInterpolate" in node_ids and "VFISuiteLoad_flow_asb" in node_ids


# -- loader ----------------------------------------------------------------------------------------

def test_loader_caches_models_and_validates_parameters(comfy):
    first = flow_asb(comfy)
    second = flow_asb(comfy, asymmetry=0.5)
    assert first.model is second.model and len(nodes.CACHE) == 1
    assert second.params["asymmetry"] == 0.5 and first.params["asymmetry"] == 0.0
    with pytest.raises(ParameterError, match="asymmetry"):
        flow_asb(comfy, asymmetry=2.0)


def test_comfy_unloading_models_releases_the_cached_interpolators(comfy):
    from vfi_core.model_cache import MODELS

    management = sys.modules["comfy.model_management"]
    unloaded = []
    management.unload_all_models = lambda: unloaded.append(True)
    model_files.release_models_when_comfy_unloads()
    model_files.release_models_when_comfy_unloads()  # once only, however often the pack loads
    MODELS.get("flow-asb", device="cpu")
    assert len(MODELS) >= 1
    management.unload_all_models()  # what ComfyUI's /free with unload_models does
    assert unloaded == [True] and len(MODELS) == 0


def test_missing_or_foreign_weights_are_readable_errors(comfy, tmp_path, monkeypatch):
    with monkeypatch.context() as patch:   # as if the shipped weights were not there
        patch.setattr("vfi_core.registry.WEIGHTS_DIR", tmp_path / "no-weights")
        for desc in [d for d in vfi_core.list_models() if d.weight_file]:
            with pytest.raises(WeightsError, match=f"{desc.weight_file}: put it in .*models/vfi"):
                loader(desc.name).execute(weights="auto", **{p.name: p.default for p in desc.params})
    from safetensors.torch import save_file

    (comfy.models_dir / "vfi").mkdir(parents=True)
    save_file({"conv.weight": torch.zeros(2, 2)}, str(comfy.models_dir / "vfi" / "rife.safetensors"))
    with pytest.raises(WeightsError, match="does not describe the SVMVNet"):
        loader("svmv").execute(weights="rife.safetensors", ensemble=4)
    with pytest.raises(WeightsError, match="not in"):
        loader("svmv").execute(weights="deleted.safetensors", ensemble=4)


# -- IMAGE interpolation ---------------------------------------------------------------------------

@pytest.mark.parametrize("height, width", [(17, 23), (9, 30)])
def test_interpolate_node_on_odd_sizes(comfy, height, width):
    images = frames(3, height, width)
    out, confidence, fps = interpolate(flow_asb(comfy), images, source_fps=12.5)
    assert out.shape == (5, height, width, 3) and confidence.shape == (5, height, width)
    assert out.dtype == confidence.dtype == torch.float32 and fps == 25.0
    for source, output in ((0, 0), (1, 2), (2, 4)):
        assert torch.equal(out[output], images[source]) and bool((confidence[output] == 1).all())
    assert 0 <= float(confidence[1].min()) and float(confidence[1].max()) <= 1
    assert comfy.progress[-1] == (3, 3)


def test_interpolate_node_target_fps_loop_and_alpha(comfy):
    images = frames(4, 11, 13, channels=4)
    out, confidence, fps = interpolate(flow_asb(comfy), images, source_fps=24.0, target_fps=60.0)
    assert out.shape == (10, 11, 13, 4) and confidence.shape == (10, 11, 13) and fps == 60.0
    assert torch.equal(out[0], images[0])
    out, _, fps = interpolate(flow_asb(comfy), images[..., :3], multiplier=3, loop=True)
    assert out.shape == (12, 11, 13, 3) and fps == 72.0


@pytest.mark.parametrize("count, options, source_fps", [
    (5, SequenceOptions(multiplier=3), Fraction(24)), (5, SequenceOptions(multiplier=2, loop=True), Fraction(24)),
    (6, SequenceOptions(fps=Fraction(60000, 1001)), Fraction(24000, 1001)),
    (4, SequenceOptions(fps=Fraction(50), loop=True), Fraction(30)), (5, SequenceOptions(multiplier=2, dedup=True), Fraction(10)),
])
def test_output_count_matches_the_pipeline(count, options, source_fps):
    class Blend:
        device = torch.device("cpu")

        def interpolate_with_confidence(self, frame0, frame1, t):
            return vfi_core.Interpolation(frame0 * 0.5 + frame1 * 0.5, None)

    images = frames(count, 8, 10)
    images[2] = images[1]  # a duplicate, for dedup
    result = sequence.interpolate_images(images, Blend(), options, source_fps, dtype=torch.float16,
                                         device=torch.device("cpu"))
    assert result.images.shape[0] == options.output_count(count, source_fps)
    assert result.images.dtype == torch.float16 and bool((result.confidence == 1).all())


def test_tiled_frames_and_confidence_match_whole_ones(monkeypatch):
    model = vfi_core.load("flow-asb", device="cpu")
    images = frames(2, 72, 150)
    options = SequenceOptions(multiplier=2)

    def run():
        return sequence.interpolate_images(images, model, options, Fraction(24), dtype=torch.float32,
                                           device=torch.device("cpu"))

    whole = run()
    monkeypatch.setattr(pipeline, "auto_tile_size", lambda *args: 100)  # two tiles across, 64 px overlap
    tiled = run()
    assert torch.allclose(whole.images, tiled.images, atol=0.15)
    assert torch.allclose(whole.confidence, tiled.confidence, atol=0.5)
    assert not torch.equal(whole.images[1], tiled.images[1])  # tiles were really used


@pytest.mark.parametrize("images, message", [
    (frames(1, 8, 8), "at least two frames"),
    (torch.rand(3, 8, 8, 2), "3 \\(RGB\\) or 4 \\(RGBA\\) channels"),
    (torch.rand(3, 1, 8, 3), "too small"),
])
def test_bad_images_give_readable_errors(comfy, images, message):
    with pytest.raises(InputError, match=message):
        interpolate(flow_asb(comfy), images, scene_threshold=1.0)  # random frames: no cuts


def test_images_slightly_outside_the_unit_range_are_clamped_and_nan_refused(comfy):
    # a bicubic resize upstream overshoots [0, 1] a little: ComfyUI's convention is to clamp
    images = frames(3, 16, 16) * 1.04 - 0.02
    out, _, _ = interpolate(flow_asb(comfy), images, source_fps=12.5, scene_threshold=1.0)
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    assert torch.equal(out[2], images[1].clamp(0, 1))
    images[1, 3, 3, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        interpolate(flow_asb(comfy), images, scene_threshold=1.0)


def test_interrupt_stops_within_one_model_call(comfy):
    vfi_model = flow_asb(comfy)
    calls = []

    def interpolate_then_interrupt(*args, original=vfi_model.model.interpolate_with_confidence):
        calls.append(args)
        comfy.interrupted = len(calls) == 2  # the user presses Cancel during the second call
        return original(*args)

    vfi_model.model.interpolate_with_confidence = interpolate_then_interrupt
    with pytest.raises(Interrupted):
        interpolate(vfi_model, frames(3, 10, 12), multiplier=8)  # 7 calls per pair without the interrupt
    assert len(calls) == 2


# -- VIDEO interpolation ---------------------------------------------------------------------------

def test_video_from_a_file_keeps_its_audio_and_gets_the_new_rate(comfy, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=6, size=(32, 24), fps=Fraction(24))
    (video,) = nodes.InterpolateVideo.execute(vfi_model=flow_asb(comfy), video=InputImpl.VideoFromFile(str(clip)),
                                             multiplier=2, target_fps=0.0, scene_threshold=0.3, loop=False,
                                             dedup=False).args
    with av.open(video.get_stream_source()) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == 48 and sum(1 for _ in container.decode(stream)) == 11
        assert [a.codec_context.name for a in container.streams.audio] == ["aac"]
    assert Path(video.get_stream_source()).parent == comfy.temp_dir / "vfi_suite"
    assert comfy.progress[-1] == (6, 6)


def test_video_from_components_keeps_its_audio(comfy):
    audio = {"waveform": torch.zeros(1, 2, 4800), "sample_rate": 48000}
    source = InputImpl.VideoFromComponents(Types.VideoComponents(images=frames(3, 9, 15), audio=audio,
                                                                 frame_rate=Fraction(30000, 1001)))
    (video,) = nodes.InterpolateVideo.execute(vfi_model=flow_asb(comfy), video=source, multiplier=2,
                                             target_fps=0.0, scene_threshold=0.3, loop=False, dedup=False).args
    components = video.get_components()
    assert components.images.shape == (5, 9, 15, 3) and components.frame_rate == Fraction(60000, 1001)
    assert components.audio is audio


# -- workflows and metadata ------------------------------------------------------------------------

def ui_to_api(ui: dict) -> dict:
    """The API form of a UI workflow, from its own contents (each widget is listed in its node's inputs)."""
    links = {link[0]: link for link in ui["links"]}
    graph = {}
    for node in ui["nodes"]:
        inputs, values = {}, iter(node["widgets_values"])
        for entry in node["inputs"]:
            value = next(values) if "widget" in entry else None
            if entry["link"] is not None:
                _, source, slot, *_ = links[entry["link"]]
                inputs[entry["name"]] = [str(source), slot]
            elif "widget" in entry:
                inputs[entry["name"]] = value
        graph[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return graph


def api_workflows():
    return sorted((WORKFLOWS / "api").glob("*.json"))


def test_there_is_a_workflow_per_interpolator_and_a_video_graph():
    names = {p.name for p in api_workflows()}
    expected = {f"vfi_suite_{d.name.replace('-', '_')}.json" for d in vfi_core.list_models()}
    assert expected | {"vfi_suite_video.json"} == names


@pytest.mark.parametrize("api_path", api_workflows(), ids=lambda p: p.stem)
def test_ui_and_api_twins_agree_and_use_existing_nodes(comfy, api_path):
    api = json.loads(api_path.read_text())
    ui_path = WORKFLOWS / api_path.name
    ui = json.loads(ui_path.read_text())
    assert ui_to_api(ui) == {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in api.items()}
    assert (REPO / "example_workflows" / ui_path.name).read_bytes() == ui_path.read_bytes()
    pack = {n.define_schema().node_id: n.define_schema() for n in nodes.node_list()}
    for node in api.values():
        if node["class_type"] in pack:
            known = [i.id for i in pack[node["class_type"]].inputs]
        else:
            known = CORE_NODE_INPUTS[node["class_type"]]
        assert set(node["inputs"]) <= set(known), node["class_type"]
        if node["class_type"] in pack:  # every required input of the pack's nodes is given
            assert set(node["inputs"]) == set(known), node["class_type"]


def test_example_workflows_are_the_ui_workflows():
    ui_names = {p.name for p in WORKFLOWS.glob("*.json")}
    assert {p.name for p in (REPO / "example_workflows").iterdir()} == ui_names
    assert ui_names == {p.name for p in (WORKFLOWS / "api").glob("*.json")}


def test_requirements_match_the_project_and_registry_metadata_is_there():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    requirements = [line for line in (REPO / "requirements.txt").read_text().splitlines()
                    if line and not line.startswith("#")]
    assert requirements == project["project"]["dependencies"]
    comfy_table = project["tool"]["comfy"]
    assert {"PublisherId", "DisplayName", "Icon", "includes"} <= set(comfy_table)
