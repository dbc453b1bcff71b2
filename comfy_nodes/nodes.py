"""The ComfyUI nodes (V3 schema, ``comfy_api.latest``).

* ``VFISuiteLoad_<model>``: one loader per registered interpolator (``VFISuiteLoad_flow_asb``,
  ``VFISuiteLoad_svmv``, ...), generated from the registry when ComfyUI loads the pack. Its widgets
  are that model's declared parameters (type, default, range, help), plus a weights list for models
  that take weights. A model that lands in the registry gets its loader without node changes, and a
  workflow names the model by node id, so saved graphs keep their meaning.
* ``VFISuiteInterpolate``: IMAGE batch in, interpolated IMAGE batch, confidence MASK and frame rate out.
* ``VFISuiteInterpolateVideo``: VIDEO in, VIDEO out at the new frame rate, audio kept.
* ``VFISuiteAdapt``: a VFI_MODEL fine-tuned on an IMAGE batch (the clip it will interpolate), for the
  models that adapt; its widgets are the core's adaptation options. It can save the adapter to
  ``models/vfi/adapters/``, and ``VFISuiteApplyAdapter`` applies a saved one.

Errors caused by the graph (one frame, a weight file that is not ours, a bad parameter) are
:class:`vfi_core.VFIError` with a one-line message, which ComfyUI shows on the node.

ComfyUI's runtime modules (``comfy.utils``, ``comfy.model_management``, ``folder_paths``) are imported
where they are used, so that tests can stand in for them.
"""
from __future__ import annotations

import os
import re
import uuid
from fractions import Fraction
from pathlib import Path

import torch
from comfy_api.latest import ComfyExtension, InputImpl, Types, io

import vfi_core
from vfi_core.adapt import ADAPT_PARAMS, Adapter, adapt_to_frames, apply_adapter
from vfi_core.errors import Cancelled, InputError
from vfi_core.model_cache import MODELS
from vfi_core.pipeline import MAX_FPS, TIMING_PARAMS, SequenceOptions, parse_fps, timing_options
from vfi_core.registry import ModelDescriptor, Param

from .model_files import (AUTO_WEIGHTS, MODEL_FOLDER, LoadedInterpolator, register_model_folder,
                          release_models_when_comfy_unloads, weight_choices, weight_file)
from .sequence import InterruptibleModel, interpolate_images

CATEGORY = "VFI Suite"
VFIModel = io.Custom("VFI_MODEL")
CACHE = MODELS  # the core's cache of loaded interpolators, shared with every other front end


def loader_node_id(model_name: str) -> str:
    """``VFISuiteLoad_`` and the model name with every character but letters and digits as ``_``."""
    return "VFISuiteLoad_" + re.sub(r"[^0-9A-Za-z]", "_", model_name)


def param_input(param: Param) -> io.Input:
    """The widget for a declared model parameter."""
    if param.kind is bool:
        return io.Boolean.Input(param.name, default=param.default, tooltip=param.help)
    if param.kind is int:
        return io.Int.Input(param.name, default=param.default, min=param.min, max=param.max,
                            step=param.step or 1, tooltip=param.help)
    if param.kind is float:
        return io.Float.Input(param.name, default=param.default, min=param.min, max=param.max,
                              step=param.step, tooltip=param.help)
    if param.choices is not None:
        return io.Combo.Input(param.name, options=list(param.choices), default=param.default, tooltip=param.help)
    return io.String.Input(param.name, default=param.default, tooltip=param.help)


def loader_node(descriptor: ModelDescriptor) -> type[io.ComfyNode]:
    """The loader node class of one registered interpolator."""

    class LoadInterpolator(io.ComfyNode):
        model = descriptor

        @classmethod
        def define_schema(cls) -> io.Schema:
            inputs = []
            if cls.model.weight_file is not None:
                inputs.append(io.Combo.Input(
                    "weights", options=weight_choices(), default=AUTO_WEIGHTS,
                    tooltip=f"'{AUTO_WEIGHTS}': {cls.model.weight_file} from models/vfi (or the shipped "
                            "weights); or a .safetensors file from models/vfi"))
            inputs += [param_input(p) for p in cls.model.params]
            confidence = " It gives a confidence map." if cls.model.gives_confidence else ""
            return io.Schema(
                node_id=loader_node_id(cls.model.name), display_name=f"Load interpolator: {cls.model.name}",
                category=CATEGORY, description=cls.model.summary + confidence, inputs=inputs,
                outputs=[VFIModel.Output("vfi_model", display_name="VFI_MODEL")])

        @classmethod
        def execute(cls, weights: str = AUTO_WEIGHTS, **params) -> io.NodeOutput:
            import comfy.model_management

            values = cls.model.resolve_params(params)
            import folder_paths

            # the model folders also hold the detail-restoration stage's weights (refine.safetensors)
            folders = tuple(Path(d) for d in folder_paths.get_folder_paths(MODEL_FOLDER))
            model = CACHE.get(cls.model, weight_file(cls.model, weights), comfy.model_management.get_torch_device(),
                              weight_dirs=folders)
            return io.NodeOutput(LoadedInterpolator(model, values))

    LoadInterpolator.__name__ = LoadInterpolator.__qualname__ = loader_node_id(descriptor.name)
    return LoadInterpolator


def timing_inputs() -> list[io.Input]:
    """The inputs the IMAGE and VIDEO nodes share, from the core's timing declarations: multiplier,
    target fps, scene cuts, loop, duplicates."""
    return [param_input(p) for p in TIMING_PARAMS]


def sequence_options(multiplier: int, target_fps: float, scene_threshold: float, loop: bool,
                     dedup: bool) -> SequenceOptions:
    return timing_options(multiplier=multiplier, target_fps=target_fps, scene_threshold=scene_threshold,
                          loop=loop, dedup=dedup)


def output_dtype() -> torch.dtype:
    """ComfyUI's dtype for tensors passed between nodes: ``intermediate_dtype()`` in the ComfyUI
    versions that have it (it follows --fp16-intermediates); float32, what every node passed
    before it existed, in older ones such as 0.3.64."""
    import comfy.model_management

    intermediate = getattr(comfy.model_management, "intermediate_dtype", None)
    return intermediate() if intermediate is not None else torch.float32


class ComfyHooks:
    """Progress to ComfyUI's progress bar (its total comes with the first report); ComfyUI's interrupt
    to the pipeline's cancel hook."""

    def __init__(self):
        import comfy.utils

        self.bar = comfy.utils.ProgressBar(1)

    def progress(self, done: int, total: int | None) -> None:
        self.bar.update_absolute(done, total)

    @staticmethod
    def cancel() -> bool:
        import comfy.model_management

        return comfy.model_management.processing_interrupted()


def run_interruptible(function, *args, **kwargs):
    """Run ``function``; the pipeline's :class:`Cancelled` becomes ComfyUI's interrupt exception."""
    import comfy.model_management

    try:
        return function(*args, **kwargs)
    except Cancelled:
        raise comfy.model_management.InterruptProcessingException() from None


def prepared(vfi_model: LoadedInterpolator):
    """The interpolator with this loader's parameters (the cached model is shared between loaders)."""
    vfi_model.model.set_params(**vfi_model.params)
    return vfi_model.model


class Interpolate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VFISuiteInterpolate", display_name="Interpolate frames (VFI Suite)", category=CATEGORY,
            description="Raise the frame rate of an IMAGE batch: in-between frames from any loaded interpolator, "
                        "held frames at scene cuts, optional loop and duplicate removal. Also outputs each "
                        "frame's confidence map and the new frame rate.",
            inputs=[VFIModel.Input("vfi_model"),
                    io.Image.Input("images", tooltip="The frames, in order (RGB or RGBA)."),
                    io.Float.Input("source_fps", default=24.0, min=0.001, max=MAX_FPS, step=0.001,
                                   tooltip="Frame rate of the input frames."),
                    *timing_inputs()],
            outputs=[io.Image.Output("interpolated", display_name="images"),
                     io.Mask.Output("confidence", display_name="confidence",
                                    tooltip="Per frame: 1 where the interpolator is sure, low where artefacts are "
                                            "likely; 1 on source frames, and everywhere for interpolators that give "
                                            "no confidence map."),
                     io.Float.Output("fps", display_name="fps", tooltip="Frame rate of the output frames.")])

    @classmethod
    def execute(cls, vfi_model: LoadedInterpolator, images: torch.Tensor, source_fps: float, multiplier: int,
                target_fps: float, scene_threshold: float, loop: bool, dedup: bool) -> io.NodeOutput:
        import comfy.model_management

        options = sequence_options(multiplier, target_fps, scene_threshold, loop, dedup)
        hooks = ComfyHooks()
        result = run_interruptible(
            interpolate_images, images, prepared(vfi_model), options, parse_fps(source_fps),
            dtype=output_dtype(), device=comfy.model_management.intermediate_device(),
            progress=hooks.progress, cancel=hooks.cancel)
        return io.NodeOutput(result.images, result.confidence, float(result.fps))


class InterpolateVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VFISuiteInterpolateVideo", display_name="Interpolate video (VFI Suite)", category=CATEGORY,
            description="Raise the frame rate of a VIDEO, keeping its audio. A video from a file is streamed "
                        "(memory does not grow with its length) and its audio copied untouched.",
            inputs=[VFIModel.Input("vfi_model"), io.Video.Input("video"), *timing_inputs()],
            outputs=[io.Video.Output("interpolated", display_name="video")])

    @classmethod
    def execute(cls, vfi_model: LoadedInterpolator, video, multiplier: int, target_fps: float,
                scene_threshold: float, loop: bool, dedup: bool) -> io.NodeOutput:
        options = sequence_options(multiplier, target_fps, scene_threshold, loop, dedup)
        model = prepared(vfi_model)
        if isinstance(video, InputImpl.VideoFromComponents):
            return io.NodeOutput(interpolate_components(video, model, options))
        return io.NodeOutput(interpolate_video_file(video, model, options))


def interpolate_components(video, model, options: SequenceOptions):
    """A video held as frames (e.g. from CreateVideo): interpolate the frames, keep the audio as is."""
    import comfy.model_management

    components = video.get_components()
    hooks = ComfyHooks()
    result = run_interruptible(
        interpolate_images, components.images, model, options, Fraction(components.frame_rate),
        dtype=output_dtype(), device=comfy.model_management.intermediate_device(),
        progress=hooks.progress, cancel=hooks.cancel)
    return InputImpl.VideoFromComponents(Types.VideoComponents(
        images=result.images, audio=components.audio, frame_rate=result.fps))


def interpolate_video_file(video, model, options: SequenceOptions):
    """A video backed by a file (LoadVideo): stream it through the pipeline into an mp4 in ComfyUI's
    temp folder, copying the audio packets, and return that file as the VIDEO."""
    import folder_paths

    from vfi_core.pipeline import interpolate_file

    folder = os.path.join(folder_paths.get_temp_directory(), "vfi_suite")
    os.makedirs(folder, exist_ok=True)
    source = video.get_stream_source()
    if not isinstance(source, str):  # in memory: give the reader a file (the container is probed)
        path = os.path.join(folder, f"source_{uuid.uuid4().hex}")
        with open(path, "wb") as file:
            file.write(source.read())
        source = path
    destination = os.path.join(folder, f"interpolated_{uuid.uuid4().hex}.mp4")
    hooks = ComfyHooks()
    run_interruptible(interpolate_file, source, destination, InterruptibleModel(model, hooks.cancel), options,
                      progress=hooks.progress, cancel=hooks.cancel)
    return InputImpl.VideoFromFile(destination)


ADAPTER_FOLDER = "adapters"  # under the model folder


def adapter_choices() -> list[str]:
    """The adapter files in the model folders' ``adapters/`` folder."""
    import folder_paths

    return [name for name in folder_paths.get_filename_list(MODEL_FOLDER)
            if Path(name).parts[0] == ADAPTER_FOLDER]


class Adapt(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        able = ", ".join(d.name for d in vfi_core.list_models() if d.adaptable)
        return io.Schema(
            node_id="VFISuiteAdapt", display_name="Adapt interpolator to clip (VFI Suite)", category=CATEGORY,
            description="Fine-tune the interpolator's low-rank adapters on the frames it will interpolate "
                        "(self-supervised: known frames predicted from their neighbours), then pass it on. "
                        f"Models that adapt: {able}.",
            inputs=[VFIModel.Input("vfi_model"),
                    io.Image.Input("images", tooltip="The clip to adapt to, in order (what you will interpolate)."),
                    *[param_input(p) for p in ADAPT_PARAMS],
                    io.Int.Input("seed", default=0, min=0, max=2**63 - 1, tooltip="Seeds the windows and batches."),
                    io.String.Input("save_as", default="", tooltip=f"If set, save the adapter as "
                                    f"models/vfi/{ADAPTER_FOLDER}/<name>.safetensors (for Apply adapter).")],
            outputs=[VFIModel.Output("adapted_model", display_name="VFI_MODEL")])

    @classmethod
    def execute(cls, vfi_model: LoadedInterpolator, images: torch.Tensor, adapt: int, adapt_rate: float,
                adapt_rank: int, seed: int, save_as: str = "") -> io.NodeOutput:
        from .sequence import check_images

        check_images(images)
        name = save_as.strip()
        if name and (Path(name).name != name or name.startswith(".")):
            raise InputError(f"save_as is a file name without folders, got {name!r}")
        model = prepared(vfi_model)
        hooks = ComfyHooks()
        frames = (images[i, :, :, :3].permute(2, 0, 1)[None].float() for i in range(images.shape[0]))
        result = run_interruptible(adapt_to_frames, model, frames, adapt, adapt_rate, adapt_rank, seed=seed,
                                   progress=hooks.progress, cancel=hooks.cancel)
        if name:
            import folder_paths

            folder = Path(folder_paths.get_folder_paths(MODEL_FOLDER)[0]) / ADAPTER_FOLDER
            folder.mkdir(parents=True, exist_ok=True)
            result.adapter.save(folder / f"{Path(name).stem}.safetensors")
        return io.NodeOutput(LoadedInterpolator(result.model, vfi_model.params))


class ApplyAdapter(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VFISuiteApplyAdapter", display_name="Apply adapter (VFI Suite)", category=CATEGORY,
            description="Apply an adapter saved by 'Adapt interpolator to clip' to the same model and weights.",
            inputs=[VFIModel.Input("vfi_model"),
                    io.Combo.Input("adapter", options=adapter_choices(),
                                   tooltip=f"An adapter file from models/vfi/{ADAPTER_FOLDER}/.")],
            outputs=[VFIModel.Output("adapted_model", display_name="VFI_MODEL")])

    @classmethod
    def execute(cls, vfi_model: LoadedInterpolator, adapter: str) -> io.NodeOutput:
        import folder_paths

        path = folder_paths.get_full_path(MODEL_FOLDER, adapter)
        if path is None:
            raise InputError(f"adapter {adapter!r} is not in the model folders")
        model = apply_adapter(prepared(vfi_model), Adapter.load(path))
        return io.NodeOutput(LoadedInterpolator(model, vfi_model.params))


def node_list() -> list[type[io.ComfyNode]]:
    """Every node of the pack: one loader per registered interpolator, the two interpolate nodes and
    the adaptation nodes."""
    return [loader_node(d) for d in vfi_core.list_models()] + [Interpolate, InterpolateVideo, Adapt, ApplyAdapter]


class VFISuiteExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return node_list()


def create_extension() -> VFISuiteExtension:
    """Register the model folder and return the extension (see :func:`comfy_nodes.comfy_entrypoint`)."""
    register_model_folder()
    release_models_when_comfy_unloads()
    return VFISuiteExtension()
