"""`vfi interpolate IN OUT`: raise the frame rate of a video file or a folder of frames.

Streams the source through the model (:func:`vfi_core.pipeline.interpolate_file`) with a tqdm
progress bar; Ctrl-C (exit status 130) or SIGTERM (143) cancels and leaves no partial output. Prints
one line: the output path, its frame count and frame rate.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError, Terminated
from ..limits import WorkLimits
from .common import (add_adapt_options, add_encoder_options, add_model_options, add_timing_options, adapt_from_args,
                     load_model, timing_from_args)


def _tile(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, 0 (off) or a tile size in pixels, got {text!r}") from None


def add_parser(sub) -> None:
    p = sub.add_parser("interpolate", help="raise the frame rate of a video or a folder of frames",
                       description="Interpolate IN (video file or folder of images) into OUT (.mp4, .mov, .mkv, "
                                   ".webm, .gif, or a folder for a PNG sequence).")
    p.add_argument("input", metavar="IN", help="video file, or folder of images (natural order)")
    p.add_argument("output", metavar="OUT", help="video file, or a folder (no extension) for PNG frames")
    add_timing_options(p, required=True)
    p.add_argument("--input-fps", metavar="F", default=None, help="frame rate of an image folder (default 25)")
    p.add_argument("--tile", type=_tile, default="auto", metavar="auto|0|PX",
                   help="tile frames that do not fit in memory: auto (default), 0 (never) or a tile size")
    p.add_argument("--tile-overlap", type=int, default=64, metavar="PX", help="overlap between tiles (default 64)")
    p.add_argument("--batch-size", type=int, default=None, help="pairs per model call (default 1 on CPU, 4 on GPU)")
    add_encoder_options(p)
    limits = p.add_argument_group("work limits (a job over one is refused before it starts)")
    limits.add_argument("--max-frames", type=int, default=WorkLimits.max_frames, metavar="N",
                        help=f"most output frames (default {WorkLimits.max_frames:,})")
    limits.add_argument("--max-megapixels", type=float, default=WorkLimits.max_megapixels, metavar="MP",
                        help=f"largest frame (default {WorkLimits.max_megapixels:g} megapixels)")
    limits.add_argument("--max-hours", type=float, default=WorkLimits.max_hours, metavar="H",
                        help=f"longest estimated run (default {WorkLimits.max_hours:g} h)")
    p.add_argument("--strict", action="store_true",
                   help="refuse a video holding fewer frames than it declares (truncated); default: warn and "
                   "use the frames that are there")
    add_model_options(p)
    add_adapt_options(p)
    p.set_defaults(run=run)


def _terminate(signum, frame):
    raise Terminated


def adapted(model, args, adapting: dict, folder_fps):
    """``model`` with the adapter ``--adapter`` names and/or adapted to the input for ``--adapt`` steps
    (progress bars for reading and adapting); the adapter saved to ``--save-adapter``."""
    from tqdm import tqdm

    from ..adapt import Adapter, adapt_to_frames, adaptation_of, apply_adapter
    from ..io import open_reader

    steps = adapting["steps"][0]
    if not steps and args.adapter is None:
        return model
    adaptation_of(model)  # a model that cannot adapt fails here, in one line, before any reading
    start = Adapter.load(args.adapter) if args.adapter is not None else None
    if steps:
        reader = open_reader(args.input, folder_fps, strict=args.strict)
        with tqdm(total=reader.count, desc="reading the clip", unit="frame", dynamic_ncols=True) as reading, \
                tqdm(total=steps, desc="adapting", unit="step", dynamic_ncols=True) as bar:
            result = adapt_to_frames(model, (f.rgb for f in reader.frames()), steps, adapting["rate"],
                                     adapting["rank"], start=start, seed=args.seed or 0,
                                     reading=lambda n: reading.update(n - reading.n),
                                     progress=lambda done, total: bar.update(done - bar.n))
        model, adapter = result.model, result.adapter
        tqdm.write(f"adapted in {result.seconds:.0f} s (loss {adapter.losses[0]:.4f} -> {adapter.losses[-1]:.4f})")
    else:
        model, adapter = apply_adapter(model, start), start
    if args.save_adapter is not None:
        tqdm.write(f"saved the adapter to {adapter.save(args.save_adapter)}")
    return model


def run(args) -> int:
    import signal
    import threading
    import warnings

    from tqdm import tqdm

    from ..pipeline import interpolate_file, parse_fps, timing_options

    options = timing_options(**timing_from_args(args), tile=args.tile, tile_overlap=args.tile_overlap,
                             batch_size=args.batch_size)
    adapting = adapt_from_args(args)
    if args.save_adapter is not None and Path(args.save_adapter).suffix != ".safetensors":
        raise InputError(f"--save-adapter writes a .safetensors file, got {args.save_adapter}")
    if args.save_adapter is not None and not (adapting["steps"][0] or args.adapter):
        raise InputError("--save-adapter saves what --adapt N learns: give --adapt N")
    folder_fps = parse_fps(args.input_fps) if args.input_fps is not None else None
    model = load_model(args)
    if Path(args.input).exists():  # like `mkdir -p`, but never for a job that cannot start
        parent = Path(args.output).resolve().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            blocked = isinstance(exc, (FileExistsError, NotADirectoryError))
            reason = "a file is in the way of that folder" if blocked else exc.strerror or str(exc)
            raise InputError(f"cannot create the output folder {parent}: {reason}; "
                             "choose an output in a folder you can write to") from None
    bars: list[tqdm] = []  # opened on the first frame, so errors found before any work print alone

    def progress(done: int, total: int | None) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="frame", desc="interpolating", dynamic_ncols=True))
        bars[0].update(done - bars[0].n)

    def show_warning(message, category, filename, lineno, file=None, line=None):
        tqdm.write(f"vfi: warning: {message}")

    # SIGTERM cancels like Ctrl-C, so a killed job also removes its partial output (exit status 143).
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous_sigterm = signal.signal(signal.SIGTERM, _terminate) if on_main_thread else None
    with warnings.catch_warnings():
        warnings.showwarning = show_warning
        try:
            model = adapted(model, args, adapting, folder_fps)
            result = interpolate_file(args.input, args.output, model, options, crf=args.crf, preset=args.preset,
                                      audio=not args.no_audio, folder_fps=folder_fps, progress=progress,
                                      strict=args.strict,
                                      limits=WorkLimits(args.max_frames, args.max_megapixels, args.max_hours))
        finally:
            for bar in bars:
                bar.close()
            if on_main_thread:
                signal.signal(signal.SIGTERM, previous_sigterm)
    stats = result.stats
    notes = [f"{len(stats.scene_cuts)} scene cut(s) held"] if stats.scene_cuts else []
    if stats.duplicates:
        notes.append(f"{stats.duplicates} duplicate frame(s) " +
                     ("re-timed" if stats.dropped_duplicates else "found (--dedup re-times them)"))
    if stats.tile:
        notes.append(f"tiled at {stats.tile}px")
    fps = result.fps
    rate = str(fps.numerator) if fps.denominator == 1 else f"{fps.numerator}/{fps.denominator} (~{float(fps):.3f})"
    print(f"wrote {result.path}: {result.frames} frames at {rate} fps" + (f" ({'; '.join(notes)})" if notes else ""))
    return 0
