"""`vfi batch INPUT OUTDIR`: interpolate many videos (a folder tree, or a manifest) on Ray.

With no cluster named it starts a local Ray runtime (``pip install "vfi-suite[batch]"`` brings Ray);
``--address`` (or ``RAY_ADDRESS``) runs the same job on a cluster. Progress: one bar for items, one
for source frames; a line per failed item with its reason; a final summary. Rerunning the command
finishes what an interrupted run left (see :mod:`vfi_core.batch.runner`). Exit status 0 when every
item is done or skipped, 1 when some failed, 130 on Ctrl-C (143 on SIGTERM).
"""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from ..errors import InputError, Terminated
from .common import add_encoder_options, add_timing_options, parse_params, timing_from_args


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def add_parser(sub) -> None:
    from ..batch.plan import FORMATS, SETTING_COLUMNS
    from ..batch.runner import DEFAULT_PART_SECONDS

    p = sub.add_parser("batch", help="interpolate a folder of videos or a manifest, locally or on a Ray cluster",
                       description="Interpolate every video file and folder of frames under INPUT (or each row of a "
                                   "manifest) into OUTDIR, mirroring the input tree. Runs on a local Ray runtime, "
                                   "or on the cluster --address names. Rerun the same command to finish an "
                                   "interrupted job: finished items are skipped.")
    p.add_argument("input", metavar="INPUT", help="a folder (searched recursively) or a manifest (.csv or .jsonl: "
                   f"columns input, output, and per-item {', '.join(SETTING_COLUMNS)})")
    p.add_argument("outdir", metavar="OUTDIR", help="where the outputs go, at the same places as in the input tree")
    p.add_argument("--model", default=None, help="interpolator name (see `vfi models`; default: the suite's default)")
    p.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE",
                   help="a model parameter declared in `vfi models` (repeatable)")
    p.add_argument("--weight-dir", action="append", default=[], metavar="DIR",
                   help="folder searched before the shipped weights for the model's weight files (repeatable; "
                        "every node must see it at the same path)")
    add_timing_options(p, required=False, per_pair=False)
    p.add_argument("--input-fps", metavar="F", default=None, help="frame rate of folders of frames (default 25)")
    p.add_argument("--format", choices=FORMATS, default="same",
                   help="output format: same (a video keeps its container, .mp4 where it cannot be written; a "
                        "folder of frames stays PNGs), png, or a video container")
    add_encoder_options(p)
    ray = p.add_argument_group("where it runs")
    ray.add_argument("--address", default=None, help="Ray cluster to join (e.g. ray://head:10001, or auto on a "
                     "cluster node; default: RAY_ADDRESS, else a local runtime on this machine)")
    ray.add_argument("--workers", type=int, default=None,
                     help="worker processes, each holding a loaded model (default: as many as fit)")
    ray.add_argument("--cpus-per-worker", type=_positive, default=1.0, metavar="N", help="CPUs each worker reserves "
                     "(and its torch threads; default 1)")
    ray.add_argument("--gpus-per-worker", type=_positive, default=0.0, metavar="N",
                     help="GPUs each worker reserves (default 0: CPU workers); 1 gives one worker per GPU")
    ray.add_argument("--part-seconds", type=_positive, default=DEFAULT_PART_SECONDS, metavar="S",
                     help=f"split videos longer than this into parts of about S seconds, cut at keyframes, "
                          f"interpolated in parallel and joined (default {DEFAULT_PART_SECONDS:g}; 0 never splits)")
    p.add_argument("--dry-run", action="store_true",
                   help="list what each item would do (run, skip, fail and why; parts) and run nothing")
    p.set_defaults(run=run)


def run(args) -> int:
    import signal
    import threading

    from tqdm import tqdm

    from .. import registry
    from ..batch.plan import ItemSettings, folder_items, manifest_items
    from ..batch.runner import run_batch

    timing = timing_from_args(args)
    settings = ItemSettings(model=args.model or registry.default_model_name(), params=parse_params(args.param),
                            multiplier=timing["multiplier"], fps=str(timing["target_fps"]),
                            scene_threshold=timing["scene_threshold"], loop=timing["loop"], dedup=timing["dedup"],
                            crf=args.crf, preset=args.preset, audio=not args.no_audio, input_fps=args.input_fps,
                            format=args.format, weight_dirs=tuple(str(Path(d).resolve()) for d in args.weight_dir))
    settings.checked()  # the command's own settings are checked before anything runs
    source, outdir = Path(args.input), Path(args.outdir)
    if not source.exists():
        raise InputError(f"{source} does not exist")
    items = folder_items(source, outdir, settings) if source.is_dir() else manifest_items(source, outdir, settings)
    if args.dry_run:
        return _dry_run(items, outdir, args.part_seconds)
    if importlib.util.find_spec("ray") is None:
        raise InputError('vfi batch runs on Ray, which is not installed: pip install "vfi-suite[batch]" '
                         '(or pip install ray)')
    bars: list[tqdm] = []

    def progress(counts) -> None:
        if not bars:
            bars.append(tqdm(total=counts.items_total, unit="item", desc="items", position=0, dynamic_ncols=True))
            bars.append(tqdm(total=counts.frames_total, unit="frame", desc="frames", position=1, dynamic_ncols=True))
        for bar, done, total in ((bars[0], counts.items, counts.items_total),
                                 (bars[1], counts.frames, counts.frames_total)):
            bar.total = total
            bar.update(done - bar.n)

    def on_failure(item, reason: str) -> None:
        tqdm.write(f"vfi: failed: {item.input}: {reason}")

    def _terminate(signum, frame):
        raise Terminated

    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if on_main_thread else None
    try:
        summary = run_batch(items, outdir, address=args.address, workers=args.workers,
                            cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker,
                            part_seconds=args.part_seconds, progress=progress, on_failure=on_failure)
    finally:
        for bar in bars:
            bar.close()
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)
    print(f"batch: {summary.done} done, {summary.skipped} skipped, {summary.failed} failed; {summary.frames} frames "
          f"in {summary.seconds:.1f} s ({summary.frames_per_second:.2f} frames/s) on {summary.workers} worker(s)")
    return 1 if summary.failed else 0


def _dry_run(items, outdir: Path, part_seconds: float) -> int:
    from ..batch.runner import describe_plan

    rows = describe_plan(items, outdir, part_seconds)
    for item, what in rows:
        print(f"{item.input} -> {item.output}: {what}")
    counts = {kind: sum(what.startswith(kind) for _, what in rows) for kind in ("run", "skip", "fail")}
    print(f"batch (dry run): {counts['run']} to run, {counts['skip']} to skip, {counts['fail']} failing; nothing written")
    return 0
