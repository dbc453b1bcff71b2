"""The Gradio Blocks app: inputs, the model's own controls (built from its declared parameters),
results, cancel, queue, limits, examples and the ``/interpolate`` API endpoint.

Layout: on the left the source (a video, or two images), the interpolator with its controls, timing
(multiplier or target fps), scene-cut threshold, preview length, output format and audio, and the
Run / Cancel buttons; on the right the interpolated video, the side-by-side comparison, the confidence
heat map (models that give confidence), a summary with the seconds it took, and the download.

The UI's Run button and the API share one job function. The API endpoint ``/interpolate`` has a
stable signature whatever models are registered: the model's parameters go in one dict
(``model_params``), checked against the model's declarations.
"""
from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import gradio as gr

from vfi_core import registry
from vfi_core.errors import InputError, ParameterError, VFIError
from vfi_core.pipeline import DEFAULT_SCENE_THRESHOLD
from vfi_core.registry import ModelDescriptor, Param

from .job import OUTPUT_FORMATS, JobSettings, Limits, image_pair_folder, public_message, run_job

API_NAME = "interpolate"
SAMPLES_DIR = Path(registry.__file__).resolve().parent / "samples"
SAMPLE_CLIP = SAMPLES_DIR / "bikes_60.mp4"
# System fonts: the default theme would fetch its fonts from Google, and the app must work offline.
THEME = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
MULTIPLIER, TARGET_FPS = "Multiplier", "Target fps"
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


def model_control(model: ModelDescriptor, param: Param):
    """The Gradio input for one declared parameter: slider for ranged numbers (a number box for very
    wide ranges such as seeds), dropdown for choices."""
    common = dict(label=param.name.replace("_", " "), info=param.help, elem_id=f"param-{model.name}-{param.name}")
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


def weights_note(model: ModelDescriptor) -> str:
    if model.weight_file is None:
        return "No weights needed."
    if model.weights_path() is None:
        return f"Weights `{model.weight_file}` are not installed: running it will say where to put them."
    return f"Weights: `{model.weight_file}`."


def build_demo(limits: Limits = Limits(), concurrency: int = 1, keep_minutes: float = 60.0) -> gr.Blocks:
    """The app. ``concurrency`` jobs run at once (others wait in the queue, at most 16). Uploads and
    results (Gradio's cache of this app) older than ``keep_minutes`` are deleted while it runs, and
    all of them when it stops; each job's working folder goes as soon as its files are handed over."""
    keep = max(1, round(keep_minutes * 60))
    models = registry.list_models()
    default_model = registry.default_model_name()
    cancel_requests = CancelRequests()

    def interpolate(video: str | None, first_image: str | None, second_image: str | None, model: str,
                    multiplier: float, target_fps: str | None, model_params: dict | None,
                    scene_threshold: float, preview_seconds: float, output_format: str, keep_audio: bool,
                    request: gr.Request, progress=gr.Progress()):
        """Interpolate a video, or two images, with ``model``.

        A non-empty ``target_fps`` ("60", "59.94", "60000/1001") is used instead of ``multiplier``;
        ``model_params`` maps the model's declared parameter names to values; ``preview_seconds`` > 0
        interpolates only the first seconds; ``scene_threshold`` 1 never cuts.
        Returns the interpolated video, the side-by-side comparison, the confidence heat map (None for
        models without confidence), a summary and the file in the chosen format.
        """
        flag = cancel_requests.start(request.session_hash)
        uploads = {"video": video, "first image": first_image, "second image": second_image}
        work = None
        try:
            with tempfile.TemporaryDirectory(prefix="vfi-app-") as folder:
                work = Path(folder)
                result = _run(video, first_image, second_image, model, multiplier, target_fps, model_params,
                              scene_threshold, preview_seconds, output_format, keep_audio, work,
                              progress, flag)
                result.notes[:] = [public_message(note, uploads, work) for note in result.notes]
                # Gradio copies the files when it receives them; the folder goes when the generator resumes.
                yield (str(result.playable), str(result.comparison), result.heat_map, result.summary(),
                       str(result.video))
        except VFIError as exc:
            message = str(exc) if work is None else public_message(str(exc), uploads, work)
            raise gr.Error(message, print_exception=False) from None
        finally:
            cancel_requests.finish(request.session_hash, flag)

    def _run(video, first_image, second_image, model, multiplier, target_fps, model_params, scene_threshold,
             preview_seconds, output_format, keep_audio, work, progress, flag):
        if video and (first_image or second_image):
            raise InputError("give either a video or two images, not both")
        if video:
            source = Path(video)
        elif first_image and second_image:
            source = image_pair_folder(first_image, second_image, work)
        else:
            raise InputError("upload a video, or two images")
        if not target_fps and not float(multiplier).is_integer():
            raise ParameterError(f"the multiplier must be a whole number, got {multiplier}")
        if preview_seconds and preview_seconds < 0:
            raise ParameterError(f"the preview length must be 0 (whole clip) or positive, got {preview_seconds}")
        descriptor = registry.get_descriptor(model)
        settings = JobSettings(
            model=descriptor.name, model_params=descriptor.resolve_params(model_params or {}),
            multiplier=None if target_fps else int(multiplier), fps=target_fps or None,
            scene_threshold=float(scene_threshold), preview_seconds=float(preview_seconds or 0),
            output_format=output_format, keep_audio=bool(keep_audio))

        def report(done: int, total: int | None) -> None:
            progress((done, total), desc="interpolating", unit="frames")

        return run_job(source, settings, limits, work, progress=report, cancel=flag.is_set)

    with gr.Blocks(title="vfi: video frame interpolation", delete_cache=(min(600, keep), keep)) as demo:
        gr.Markdown("# Video frame interpolation\nRaise the frame rate of a clip, or make the frames "
                    f"between two images. Runs on this machine, {concurrency} job(s) at a time; others queue.")
        source_tab = gr.State(VIDEO_TAB)
        controls_by_model: dict[str, list] = {}
        with gr.Row():
            with gr.Column(scale=1):
                with gr.Tabs():
                    with gr.Tab("Video") as video_tab:
                        video = gr.Video(label=f"Clip (up to {limits.max_seconds:g} s, "
                                               f"{limits.max_upload_mb} MB, 1920x1080)",
                                         sources=["upload"], elem_id="source-video")
                    with gr.Tab("Two images") as images_tab:
                        with gr.Row():
                            first_image = gr.Image(label="First image", type="filepath", sources=["upload"])
                            second_image = gr.Image(label="Second image", type="filepath", sources=["upload"])
                model = gr.Dropdown(choices=[(m.name, m.name) for m in models], value=default_model,
                                    label="Interpolator", elem_id="model")
                model_groups = []
                for descriptor in models:
                    with gr.Group(visible=descriptor.name == default_model) as group:
                        gr.Markdown(f"**{descriptor.name}**: {descriptor.summary} {weights_note(descriptor)}")
                        controls_by_model[descriptor.name] = [model_control(descriptor, p) for p in descriptor.params]
                    model_groups.append(group)
                with gr.Row():
                    timing = gr.Radio([MULTIPLIER, TARGET_FPS], value=MULTIPLIER, label="Timing")
                    multiplier = gr.Slider(2, 8, value=2, step=1, label="Multiplier",
                                           info="output frames per source frame pair", elem_id="multiplier")
                    target_fps = gr.Textbox(label="Target fps", value="60", visible=False,
                                            info="60, 59.94 or 60000/1001")
                scene_threshold = gr.Slider(0, 1, value=DEFAULT_SCENE_THRESHOLD, step=0.01,
                                            label="Scene-cut threshold", elem_id="scene-threshold",
                                            info="pairs whose colour change scores above it are cuts and hold "
                                                 "the frame instead of morphing; 1 never cuts")
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
                result_video = gr.Video(label="Interpolated", interactive=False, elem_id="result-video")
                comparison_video = gr.Video(label="Side by side: source at the output rate | interpolated",
                                            interactive=False, elem_id="comparison-video")
                heat_map = gr.Image(label="Confidence heat map", interactive=False, format="png",
                                    visible=registry.get_descriptor(default_model).gives_confidence,
                                    elem_id="heat-map")
                summary = gr.Markdown(label="Summary", elem_id="summary")
                download = gr.File(label="Download", elem_id="download")
        gr.Examples(examples=[[str(SAMPLE_CLIP), 2, 0], [str(SAMPLE_CLIP), 4, 1.0]],
                    inputs=[video, multiplier, preview_seconds],
                    label="Examples: the bundled clip (640x272, 25 fps, 60 frames), whole or its first second")

        video_tab.select(lambda: VIDEO_TAB, outputs=source_tab, api_visibility="private", queue=False)
        images_tab.select(lambda: IMAGES_TAB, outputs=source_tab, api_visibility="private", queue=False)
        model.change(lambda name: [gr.Group(visible=m.name == name) for m in models] +
                     [gr.Image(visible=registry.get_descriptor(name).gives_confidence)],
                     inputs=model, outputs=[*model_groups, heat_map], api_visibility="private", queue=False)
        timing.change(lambda mode: (gr.Slider(visible=mode == MULTIPLIER), gr.Textbox(visible=mode == TARGET_FPS)),
                      inputs=timing, outputs=[multiplier, target_fps], api_visibility="private", queue=False)

        all_controls = [c for name in controls_by_model for c in controls_by_model[name]]
        results = [result_video, comparison_video, heat_map, summary, download]

        def interpolate_from_controls(values: dict, request: gr.Request, progress=gr.Progress()):
            """The Run button: the inputs of the visible tab, and the chosen model's controls as its parameters."""
            name = values[model]
            params = {p.name: values[c] for p, c in zip(registry.get_descriptor(name).params, controls_by_model[name])}
            on_video_tab = values[source_tab] == VIDEO_TAB
            yield from interpolate(values[video] if on_video_tab else None,
                                   None if on_video_tab else values[first_image],
                                   None if on_video_tab else values[second_image],
                                   name, values[multiplier], values[target_fps] if values[timing] == TARGET_FPS else None,
                                   params, values[scene_threshold], values[preview_seconds], values[output_format],
                                   values[keep_audio], request, progress)

        run_event = run_button.click(
            interpolate_from_controls,
            inputs={source_tab, video, first_image, second_image, model, timing, multiplier, target_fps,
                    scene_threshold, preview_seconds, output_format, keep_audio, *all_controls},
            outputs=results, api_visibility="private", concurrency_id="interpolation",
            concurrency_limit=concurrency)

        def cancel(request: gr.Request) -> None:
            """Stop this session's running job (it ends with the error 'cancelled by the user')."""
            cancel_requests.cancel(request.session_hash)

        # Public too: an API client stops its own running job with /cancel (same session).
        cancel_button.click(cancel, cancels=[run_event], api_name="cancel", queue=False)

        # The API endpoint: the same job, with the model's parameters as one dict.
        api_params = gr.JSON(value={}, visible=False, label="model_params")
        api_trigger = gr.Button(visible=False)
        api_trigger.click(interpolate,
                          inputs=[video, first_image, second_image, model, multiplier, target_fps, api_params,
                                  scene_threshold, preview_seconds, output_format, keep_audio],
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
