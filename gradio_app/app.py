"""The Gradio Blocks app: inputs, the model's own controls (built from its declared parameters),
results, cancel, queue, limits, examples and the ``/interpolate`` API endpoint.

Layout: on the left the source (a video, or two images), the interpolator with its controls,
"adapt to this clip" (models that can adapt, :data:`vfi_core.adapt.ADAPT_PARAMS`), timing
(multiplier or target fps, scene-cut threshold, loop, dedup: built from the core's timing
declarations), preview length, output format and audio, and the
Run / Cancel buttons; on the right the interpolated video, the side-by-side comparison, the confidence
heat map (models that give confidence), a summary with the seconds it took, and the download.

The UI's Run button and the API share one job function. The API endpoint ``/interpolate`` has a
stable signature whatever models are registered: the model's parameters go in one dict
(``model_params``), checked against the model's declarations, the adaptation options in another
(``adaptation``), and ``timing`` says whether the
multiplier or the target fps applies (the other is ignored).
"""
from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import gradio as gr

from vfi_core import registry
from vfi_core.errors import InputError, ParameterError, VFIError
from vfi_core.pipeline import timing_options, timing_param
from vfi_core.registry import ModelDescriptor, Param

from .job import OUTPUT_FORMATS, JobSettings, Limits, adapt_settings, image_pair_folder, public_message, run_job

API_NAME = "interpolate"
SAMPLES_DIR = Path(registry.__file__).resolve().parent / "samples"
SAMPLE_CLIP = SAMPLES_DIR / "bikes_60.mp4"
# System fonts: the default theme would fetch its fonts from Google, and the app must work offline.
THEME = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
MULTIPLIER, TARGET_FPS = "multiplier", "target fps"
TIMING_MODES = (MULTIPLIER, TARGET_FPS)  # the API's explicit timing mode
VIDEO_TAB, IMAGES_TAB = "video", "images"


class CancelRequests:
    """One cancel flag per browser session (or API client): Cancel sets it, the running job polls it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._flags: dict[str, threading.Event] = {}

    def start(self, session: str) -> threading.Event:
        with self._lock:
            flag = self._flags[session] = threading.Event()
            return flag

    def cancel(self, session: str) -> None:
        with self._lock:
            if session in self._flags:
                self._flags[session].set()

    def finish(self, session: str, flag: threading.Event) -> None:
        with self._lock:
            if self._flags.get(session) is flag:
                del self._flags[session]


# A range with more positions than this (a seed's) is typed in a number box, not dragged on a slider.
_MAX_SLIDER_STEPS = 10_000


def param_control(param: Param, elem_id: str):
    """The Gradio input for one declared parameter (a model's, or a timing option): slider for ranged
    numbers (a number box for very wide ranges such as seeds), dropdown for choices."""
    common = dict(label=param.name.replace("_", " "), info=param.help, elem_id=elem_id)
    if param.kind is bool:
        return gr.Checkbox(value=param.default, **common)
    if param.choices is not None:
        return gr.Dropdown(choices=list(param.choices), value=param.default, **common)
    step = param.step or (1 if param.kind is int else None)
    ranged = param.kind in (int, float) and param.min is not None and param.max is not None
    if ranged and (step is None or (param.max - param.min) / step <= _MAX_SLIDER_STEPS):
        step = step or (param.max - param.min) / 100
        return gr.Slider(minimum=param.min, maximum=param.max, step=step, value=param.default, **common)
    if param.kind in (int, float):
        return gr.Number(value=param.default, precision=0 if param.kind is int else None,
                         minimum=param.min, maximum=param.max, **common)
    return gr.Textbox(value=str(param.default), **common)


def model_control(model: ModelDescriptor, param: Param):
    """The control of one of ``model``'s declared parameters."""
    return param_control(param, f"param-{model.name}-{param.name}")


def weights_note(model: ModelDescriptor) -> str:
    if model.weight_file is None:
        return "No weights needed."
    if model.weights_path() is None:
        return f"Weights `{model.weight_file}` are not installed: running it will say where to put them."
    return f"Weights: `{model.weight_file}`."


def job_settings(video, first_image, second_image, model: str, timing: str, multiplier, target_fps,
                 model_params: dict | None, scene_threshold, loop, dedup, preview_seconds, output_format,
                 keep_audio, work: Path, adaptation: dict | None = None) -> tuple[Path, JobSettings]:
    """The source to read and the :class:`JobSettings` of one request, checked; ``timing`` names the
    mode (:data:`TIMING_MODES`): the multiplier, or the target fps, never both; ``adaptation`` maps
    the adaptation options' declared names to values (:func:`~gradio_app.job.adapt_settings`)."""
    if video and (first_image or second_image):
        raise InputError("give either a video or two images, not both")
    if video:
        source = Path(video)
    elif first_image and second_image:
        source = image_pair_folder(first_image, second_image, work)
    else:
        raise InputError("upload a video, or two images")
    mode = str(timing or "").strip().lower()
    if mode not in TIMING_MODES:
        raise ParameterError(f"timing must be one of {', '.join(TIMING_MODES)}, got {timing!r}")
    if mode == TARGET_FPS and not str(target_fps or "").strip():
        raise ParameterError("timing 'target fps' needs a target fps, e.g. 60, 59.94 or 60000/1001")
    if preview_seconds and preview_seconds < 0:
        raise ParameterError(f"the preview length must be 0 (whole clip) or positive, got {preview_seconds}")
    descriptor = registry.get_descriptor(model)
    # each option checked against its declaration before any work
    options = timing_options(multiplier=multiplier, target_fps=target_fps if mode == TARGET_FPS else 0,
                             scene_threshold=scene_threshold, loop=loop, dedup=dedup)
    settings = JobSettings(model=descriptor.name, model_params=descriptor.resolve_params(model_params or {}),
                           options=options, preview_seconds=float(preview_seconds or 0),
                           output_format=output_format, keep_audio=bool(keep_audio),
                           adapt=adapt_settings(adaptation))
    return source, settings


def job_function(limits: Limits, cancel_requests: CancelRequests):
    """The job the Run button and the API share: a generator yielding the results once, with Gradio's
    request (its session's cancel flag) and progress."""

    def interpolate(video: str | None, first_image: str | None, second_image: str | None, model: str,
                    timing: str, multiplier: float, target_fps: str | None, model_params: dict | None,
                    scene_threshold: float, loop: bool, dedup: bool, preview_seconds: float, output_format: str,
                    keep_audio: bool, adaptation: dict | None, request: gr.Request, progress=gr.Progress()):
        """Interpolate a video, or two images, with ``model``.

        ``timing`` is "multiplier" or "target fps" (then ``target_fps``: "60", "59.94", "60000/1001" is
        used); ``model_params`` maps the model's declared parameter names to values; ``preview_seconds``
        > 0 interpolates only the first seconds; ``scene_threshold`` 1 never cuts; ``loop`` and ``dedup``
        as their declarations say; ``adaptation`` (``{"adapt": steps, "adapt_rate", "adapt_rank"}``, any
        left out at its default) adapts a model that supports it to the clip first.
        Returns the interpolated video, the side-by-side comparison, the confidence heat map (None for
        models without confidence), a summary and the file in the chosen format.
        """
        flag = cancel_requests.start(request.session_hash)
        uploads = {"video": video, "first image": first_image, "second image": second_image}
        work = None
        try:
            with tempfile.TemporaryDirectory(prefix="vfi-app-") as folder:
                work = Path(folder)
                source, settings = job_settings(video, first_image, second_image, model, timing, multiplier,
                                                target_fps, model_params, scene_threshold, loop, dedup,
                                                preview_seconds, output_format, keep_audio, work, adaptation)

                def report(done: int, total: int | None) -> None:
                    progress((done, total), desc="interpolating", unit="frames")

                def adapting(step: int, steps: int) -> None:
                    progress((step, steps), desc="adapting to the clip", unit="steps")

                result = run_job(source, settings, limits, work, progress=report, cancel=flag.is_set,
                                 adapting=adapting)
                result.notes[:] = [public_message(note, uploads, work) for note in result.notes]
                # Gradio copies the files when it receives them; the folder goes when the generator resumes.
                yield (str(result.playable), str(result.comparison), result.heat_map, result.summary(),
                       str(result.video))
        except VFIError as exc:
            message = str(exc) if work is None else public_message(str(exc), uploads, work)
            raise gr.Error(message, print_exception=False) from None
        finally:
            cancel_requests.finish(request.session_hash, flag)

    return interpolate


def _source_inputs(limits: Limits):
    """The source tabs: ``(tab state, video, first image, second image, video tab, images tab)``."""
    source_tab = gr.State(VIDEO_TAB)
    with gr.Tabs():
        with gr.Tab("Video") as video_tab:
            video = gr.Video(label=f"Clip (up to {limits.max_seconds:g} s, {limits.max_upload_mb} MB, 1920x1080)",
                             sources=["upload"], elem_id="source-video")
        with gr.Tab("Two images") as images_tab:
            with gr.Row():
                first_image = gr.Image(label="First image", type="filepath", sources=["upload"])
                second_image = gr.Image(label="Second image", type="filepath", sources=["upload"])
    return source_tab, video, first_image, second_image, video_tab, images_tab


def _model_inputs(models: list[ModelDescriptor], default_model: str):
    """The model dropdown and one group of controls per model (only the chosen one visible): each
    model's ``{parameter name: control}``, its adaptation-only parameters left to :func:`_adapt_inputs`."""
    model = gr.Dropdown(choices=[(m.name, m.name) for m in models], value=default_model,
                        label="Interpolator", elem_id="model")
    groups, controls_by_model = [], {}
    for descriptor in models:
        with gr.Group(visible=descriptor.name == default_model) as group:
            gr.Markdown(f"**{descriptor.name}**: {descriptor.summary} {weights_note(descriptor)}")
            controls_by_model[descriptor.name] = {p.name: model_control(descriptor, p)
                                                  for p in descriptor.params if p.group != "adapt"}
        groups.append(group)
    return model, groups, controls_by_model


def _adapt_inputs(models: list[ModelDescriptor], default_model: str, limits: Limits, controls_by_model: dict):
    """The "Adapt to this clip" group, shown for models that can adapt: the options of
    :data:`vfi_core.adapt.ADAPT_PARAMS` (the steps capped at the app's limit) and, in a group per
    model shown with it, the model's own adaptation parameters (``group="adapt"``, e.g. mivid's mask
    ratios), which join that model's entry of ``controls_by_model``. Returns
    ``(accordion, {name: control}, [per-model group])``."""
    from dataclasses import replace

    from vfi_core.adapt import ADAPT_PARAMS

    able = ", ".join(m.name for m in models if m.adaptable)
    model_groups = []
    with gr.Accordion("Adapt to this clip", open=False, elem_id="adapt-group",
                      visible=registry.get_descriptor(default_model).adaptable) as group:
        gr.Markdown(f"Fine-tunes the model on the clip's own frames before interpolating (models: {able}). "
                    "Each step takes about a second on a CPU.")
        controls = {}
        for param in ADAPT_PARAMS:
            if param.name == "adapt":
                param = replace(param, max=min(param.max, limits.max_adapt_steps))
            controls[param.name] = param_control(param, f"adapt-{param.name.replace('_', '-')}")
        for descriptor in models:
            own = [p for p in descriptor.params if p.group == "adapt"]
            if not own:
                continue
            with gr.Group(visible=descriptor.name == default_model) as model_group:
                for param in own:
                    controls_by_model[descriptor.name][param.name] = model_control(descriptor, param)
            model_groups.append((descriptor.name, model_group))
    return group, controls, model_groups


def _timing_inputs() -> dict:
    """The timing controls, built from the core's declarations (:data:`vfi_core.pipeline.TIMING_PARAMS`)."""
    fps = timing_param("target_fps")
    with gr.Row():
        timing = gr.Radio([("Multiplier", MULTIPLIER), ("Target fps", TARGET_FPS)], value=MULTIPLIER,
                          label="Timing", elem_id="timing")
        multiplier = param_control(timing_param("multiplier"), "multiplier")
        target_fps = gr.Textbox(label="target fps", value="60", visible=False, elem_id="target-fps",
                                info=f"{fps.help.split('; 0 ')[0]}: 60, 59.94 or 60000/1001, up to {fps.max:g}")
    scene_threshold = param_control(timing_param("scene_threshold"), "scene-threshold")
    with gr.Row():
        loop = param_control(timing_param("loop"), "loop")
        dedup = param_control(timing_param("dedup"), "dedup")
    return {"timing": timing, "multiplier": multiplier, "target_fps": target_fps,
            "scene_threshold": scene_threshold, "loop": loop, "dedup": dedup}


def _result_outputs(default_model: str) -> list:
    """The result components: video, comparison, heat map, summary, download."""
    result_video = gr.Video(label="Interpolated", interactive=False, elem_id="result-video")
    comparison_video = gr.Video(label="Side by side: source at the output rate | interpolated",
                                interactive=False, elem_id="comparison-video")
    heat_map = gr.Image(label="Confidence heat map", interactive=False, format="png",
                        visible=registry.get_descriptor(default_model).gives_confidence, elem_id="heat-map")
    summary = gr.Markdown(label="Summary", elem_id="summary")
    download = gr.File(label="Download", elem_id="download")
    return [result_video, comparison_video, heat_map, summary, download]


def build_demo(limits: Limits = Limits(), concurrency: int = 1, keep_minutes: float = 60.0) -> gr.Blocks:
    """The app. ``concurrency`` jobs run at once (others wait in the queue, at most 16). Uploads and
    results (Gradio's cache of this app) older than ``keep_minutes`` are deleted while it runs, and
    all of them when it stops; each job's working folder goes as soon as its files are handed over."""
    keep = max(1, round(keep_minutes * 60))
    models = registry.list_models()
    default_model = registry.default_model_name()
    cancel_requests = CancelRequests()
    interpolate = job_function(limits, cancel_requests)

    with gr.Blocks(title="vfi: video frame interpolation", delete_cache=(min(600, keep), keep)) as demo:
        gr.Markdown("# Video frame interpolation\nRaise the frame rate of a clip, or make the frames "
                    f"between two images. Runs on this machine, {concurrency} job(s) at a time; others queue.")
        with gr.Row():
            with gr.Column(scale=1):
                source_tab, video, first_image, second_image, video_tab, images_tab = _source_inputs(limits)
                model, model_groups, controls_by_model = _model_inputs(models, default_model)
                adapt_group, adapt_controls, adapt_model_groups = _adapt_inputs(models, default_model, limits,
                                                                                 controls_by_model)
                timing = _timing_inputs()
                preview_seconds = gr.Slider(0, 10, value=0, step=0.1, label="Preview: first seconds only",
                                            info="0 interpolates the whole clip", elem_id="preview-seconds")
                with gr.Row():
                    output_format = gr.Dropdown([(label, key) for key, label in OUTPUT_FORMATS.items()],
                                                value="mp4", label="Output format")
                    keep_audio = gr.Checkbox(value=True, label="Keep audio")
                with gr.Row():
                    run_button = gr.Button("Interpolate", variant="primary", elem_id="run")
                    cancel_button = gr.Button("Cancel", variant="stop", elem_id="cancel")
            with gr.Column(scale=1):
                results = _result_outputs(default_model)
        gr.Examples(examples=[[str(SAMPLE_CLIP), 2, 0], [str(SAMPLE_CLIP), 4, 1.0]],
                    inputs=[video, timing["multiplier"], preview_seconds],
                    label="Examples: the bundled clip (640x272, 25 fps, 60 frames), whole or its first second")

        video_tab.select(lambda: VIDEO_TAB, outputs=source_tab, api_visibility="private", queue=False)
        images_tab.select(lambda: IMAGES_TAB, outputs=source_tab, api_visibility="private", queue=False)
        heat_map = results[2]
        model.change(lambda name: [gr.Group(visible=m.name == name) for m in models] +
                     [gr.Image(visible=registry.get_descriptor(name).gives_confidence),
                      gr.Accordion(visible=registry.get_descriptor(name).adaptable)] +
                     [gr.Group(visible=owner == name) for owner, _ in adapt_model_groups],
                     inputs=model, outputs=[*model_groups, heat_map, adapt_group, *(g for _, g in adapt_model_groups)],
                     api_visibility="private",
                     queue=False)
        timing["timing"].change(lambda mode: (gr.Slider(visible=mode == MULTIPLIER),
                                              gr.Textbox(visible=mode == TARGET_FPS)),
                                inputs=timing["timing"], outputs=[timing["multiplier"], timing["target_fps"]],
                                api_visibility="private", queue=False)
        all_controls = [c for name in controls_by_model for c in controls_by_model[name].values()]
        job_inputs = [timing[k] for k in ("timing", "multiplier", "target_fps")]
        after_params = [timing[k] for k in ("scene_threshold", "loop", "dedup")] + \
            [preview_seconds, output_format, keep_audio]

        def interpolate_from_controls(values: dict, request: gr.Request, progress=gr.Progress()):
            """The Run button: the inputs of the visible tab, and the chosen model's controls as its parameters."""
            name = values[model]
            descriptor = registry.get_descriptor(name)
            params = {key: values[c] for key, c in controls_by_model[name].items()}
            on_video_tab = values[source_tab] == VIDEO_TAB
            adaptation = {key: values[c] for key, c in adapt_controls.items()} if descriptor.adaptable else {}
            yield from interpolate(values[video] if on_video_tab else None,
                                   None if on_video_tab else values[first_image],
                                   None if on_video_tab else values[second_image],
                                   name, *(values[c] for c in job_inputs), params,
                                   *(values[c] for c in after_params), adaptation, request, progress)

        run_event = run_button.click(
            interpolate_from_controls,
            inputs={source_tab, video, first_image, second_image, model, *job_inputs, *after_params, *all_controls,
                    *adapt_controls.values()},
            outputs=results, api_visibility="private", concurrency_id="interpolation",
            concurrency_limit=concurrency)

        def cancel(request: gr.Request) -> None:
            """Stop this session's running job (it ends with the error 'cancelled by the user')."""
            cancel_requests.cancel(request.session_hash)

        # Public too: an API client stops its own running job with /cancel (same session).
        cancel_button.click(cancel, cancels=[run_event], api_name="cancel", queue=False)

        # The API endpoint: the same job, with the model's parameters as one dict and the timing mode explicit.
        api_params = gr.JSON(value={}, visible=False, label="model_params")
        api_adaptation = gr.JSON(value={}, visible=False, label="adaptation")
        api_trigger = gr.Button(visible=False)
        api_trigger.click(interpolate,
                          inputs=[video, first_image, second_image, model, *job_inputs, api_params, *after_params,
                                  api_adaptation],
                          outputs=results, api_name=API_NAME, concurrency_id="interpolation",
                          concurrency_limit=concurrency)
    demo.queue(default_concurrency_limit=concurrency, max_size=16)
    return demo


def launch(limits: Limits = Limits(), *, server_name: str = "127.0.0.1", server_port: int | None = None,
           concurrency: int = 1, prevent_thread_lock: bool = False, quiet: bool = False,
           keep_minutes: float = 60.0) -> gr.Blocks:
    """Build the app and serve it, with the upload limit and the bundled sample reachable."""
    demo = build_demo(limits, concurrency, keep_minutes)
    demo.launch(server_name=server_name, server_port=server_port, max_file_size=f"{limits.max_upload_mb}mb",
                allowed_paths=[str(SAMPLES_DIR)], theme=THEME, footer_links=["api"],
                prevent_thread_lock=prevent_thread_lock, quiet=quiet)
    return demo
