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
from .common import add_model_options, load_model


def _multiplier(text: str) -> int | tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or a comma list of integers, got {text!r}") from None
    return values[0] if len(values) == 1 else values


def _tile(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, 0 (off) or a tile size in pixels, got {text!r}") from None


def _crf(text: str) -> int:
    """``--crf``: an integer in the widest range an encoder takes (VP9's 0-63); the writer holds
    H.264 to its own 0-51."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value <= 63:
        raise argparse.ArgumentTypeError(f"expected an integer quality, 0-51 for H.264 (.mp4, .mov, .mkv) or "
                                         f"0-63 for VP9 (.webm), got {text!r}")
    return value


def add_parser(sub) -> None:
    p = sub.add_parser("interpolate", help="raise the frame rate of a video or a folder of frames",
                       description="Interpolate IN (video file or folder of images) into OUT (.mp4, .mov, .mkv, "
                                   ".webm, .gif, or a folder for a PNG sequence).")
    p.add_argument("input", metavar="IN", help="video file, or folder of images (natural order)")
    p.add_argument("output", metavar="OUT", help="video file, or a folder (no extension) for PNG frames")
    from ..pipeline import timing_param

    declared = {name: timing_param(name) for name in ("multiplier", "target_fps", "scene_threshold", "loop", "dedup")}
    multiplier = declared["multiplier"]
    timing = p.add_mutually_exclusive_group(required=True)
    timing.add_argument("--multiplier", "-m", type=_multiplier, metavar="N",
                        help=f"{multiplier.help} {multiplier.min:g}-{multiplier.max:g}, or a comma list with one N "
                             "per pair")
    timing.add_argument("--fps", metavar="F", help=f"{declared['target_fps'].help.split('; 0 ')[0]}: 60, 60000/1001 "
                        f"or 59.94, up to {declared['target_fps'].max:g}")
    p.add_argument("--input-fps", metavar="F", default=None, help="frame rate of an image folder (default 25)")
    p.add_argument("--scene-threshold", type=float, default=None, metavar="S",
                   help=f"{declared['scene_threshold'].help} (default {declared['scene_threshold'].default:g})")
    p.add_argument("--no-scene-detect", action="store_true", help="interpolate across every pair, cuts included")
    p.add_argument("--dedup", action="store_true", help=declared["dedup"].help)
    p.add_argument("--loop", action="store_true", help=declared["loop"].help)
    p.add_argument("--tile", type=_tile, default="auto", metavar="auto|0|PX",
                   help="tile frames that do not fit in memory: auto (default), 0 (never) or a tile size")
    p.add_argument("--tile-overlap", type=int, default=64, metavar="PX", help="overlap between tiles (default 64)")
    p.add_argument("--batch-size", type=int, default=None, help="pairs per model call (default 1 on CPU, 4 on GPU)")
    p.add_argument("--crf", type=_crf, default=None, help="quality: H.264 0-51 (default 18), VP9 0-63 (default 30)")
    p.add_argument("--preset", default=None, help="x264 preset, ultrafast..veryslow (default medium)")
    p.add_argument("--no-audio", action="store_true", help="leave the source's audio out")
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
    p.set_defaults(run=run)


def _terminate(signum, frame):
    raise Terminated


def run(args) -> int:
    import signal
    import threading
    import warnings

    from tqdm import tqdm

    from ..pipeline import DEFAULT_SCENE_THRESHOLD, interpolate_file, parse_fps, timing_options

    options = timing_options(
        multiplier=args.multiplier,
        target_fps=args.fps if args.fps is not None else 0,
        loop=args.loop,
        scene_threshold=None if args.no_scene_detect else
        (DEFAULT_SCENE_THRESHOLD if args.scene_threshold is None else args.scene_threshold),
        dedup=args.dedup,
        tile=args.tile,
        tile_overlap=args.tile_overlap,
        batch_size=args.batch_size,
    )
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
