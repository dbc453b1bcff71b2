"""`vfi bench`: score an interpolator or a folder of predictions on a benchmark; compare reports.

  vfi bench --model NAME --dataset PATH [--layout auto|triplets-csv|...] [--sets A,B] [--out DIR] [--limit N]
            [--speed] [--perceptual]
  vfi bench --predictions DIR --dataset PATH ...
  vfi bench --model NAME --clips CLIP [CLIP ...] [--adapt 0,50,200] [--clip-frames N] [--perceptual]
      the dropped-frame protocol: every second frame of each clip is dropped, restored from the frames
      that remain (after adapting to them for each step count) and scored; one report per step count
  vfi bench --compare a.json b.json [...]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from .common import add_adapt_options, add_model_options


def add_parser(sub) -> None:
    from ..evaluation.eval_sets import LAYOUTS

    p = sub.add_parser("bench", help="score a model or a folder of predictions on a benchmark (PSNR, SSIM, speed)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_options(p)
    p.add_argument("--dataset", help="a triplet manifest CSV or a dataset folder (see --layout)")
    p.add_argument("--layout", default="auto", help=f"auto (default) or one of {', '.join(LAYOUTS)}")
    p.add_argument("--predictions", metavar="DIR",
                   help="score this folder of predictions (<DIR>/<key>.png per item) instead of a model")
    p.add_argument("--compare", nargs="+", metavar="REPORT.json", help="print these reports side by side")
    p.add_argument("--out", default="out/bench", help="folder for <name>.json and <name>.md (default: out/bench)")
    p.add_argument("--name", help="report name (default: <model or predictions folder>-<dataset name>)")
    p.add_argument("--sets", help="score only these sets, comma-separated (e.g. davis_gap2,vimeo_gap3)")
    p.add_argument("--limit", type=int, help="score only the first N items")
    p.add_argument("--speed", action="store_true", help="also time the model at 480p, 720p and 1080p")
    p.add_argument("--perceptual", action="store_true",
                   help="also compute the perceptual distance (needs: pip install 'vfi-suite[perceptual]')")
    p.add_argument("--save-predictions", metavar="DIR", help="keep the model's predictions as a predictions folder")
    p.add_argument("--clips", nargs="+", metavar="CLIP", help="video files or image folders for the dropped-frame "
                   "protocol (instead of --dataset)")
    p.add_argument("--clip-frames", type=int, default=None, metavar="N",
                   help="use only the first N frames of each clip (default: all)")
    add_adapt_options(p, several=True)
    p.set_defaults(run=run)


def set_names(text: str | None) -> list[str] | None:
    """``--sets A,B`` as a list of names (``None`` when not given)."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise InputError(f"--sets takes one or more set names, comma-separated, got {text!r}")
    return names


def _dataset_name(path: Path) -> str:
    return path.stem if path.is_file() else path.resolve().name


def run(args) -> int:
    from ..evaluation import bench

    if args.compare:
        if args.dataset or args.predictions:
            raise InputError("--compare takes only report files, not --dataset or --predictions")
        print(bench.compare_reports([bench.load_report(p) for p in args.compare]))
        return 0
    if args.clips:
        if args.dataset or args.predictions:
            raise InputError("--clips is a benchmark of its own: leave out --dataset and --predictions")
        return run_clips(args)
    if args.adapt != (0,):
        raise InputError("--adapt applies to the dropped-frame protocol: give --clips")
    if not args.dataset:
        raise InputError("vfi bench needs --dataset PATH or --clips CLIP ... (or --compare a.json b.json)")
    if args.predictions and (args.model or args.speed or args.save_predictions):
        raise InputError("--predictions scores a folder: it takes no --model, --speed or --save-predictions")

    from ..evaluation.eval_sets import load_eval_set

    dataset = Path(args.dataset)
    layout, items = load_eval_set(dataset, args.layout, args.limit, set_names(args.sets))
    perceptual = None
    if args.perceptual:
        from ..evaluation.perceptual import load_perceptual_metric
        perceptual = load_perceptual_metric()

    if args.predictions:
        source = {"predictions": str(Path(args.predictions).resolve())}
        records = bench.evaluate_predictions(Path(args.predictions), items, perceptual)
        name = args.name or f"{Path(args.predictions).resolve().name}-{_dataset_name(dataset)}"
        report = bench.build_report(name, source, str(dataset), layout, records, memory=bench.peak_memory())
    else:
        from .common import load_model

        model = load_model(args)
        source = {"model": model.name, "params": model.params, "device": str(model.device),
                  "dtype": str(model.dtype).replace("torch.", "")}
        if model.device.type == "cuda":
            import torch
            torch.cuda.reset_peak_memory_stats(model.device)
        save_dir = Path(args.save_predictions) if args.save_predictions else None
        records = bench.evaluate_model(model, items, perceptual, save_dir)
        speed = None
        if args.speed:
            first = items[0]
            speed = bench.measure_speed(model, bench.read_rgb(first.frame0), bench.read_rgb(first.frame1))
        name = args.name or f"{model.name}-{_dataset_name(dataset)}"
        report = bench.build_report(name, source, str(dataset), layout, records, speed,
                                    bench.peak_memory(model.device))
    json_path, md_path = bench.write_report(report, Path(args.out))
    print(bench.markdown_report(report))
    print(f"\nwrote {json_path} and {md_path}")
    return 0


def run_clips(args) -> int:
    """The dropped-frame protocol (:mod:`vfi_core.evaluation.clips`), one report per step count."""
    import sys

    from tqdm import tqdm

    from ..evaluation import bench
    from ..evaluation.clips import adapted_model, clip_name, score_clip
    from .common import adapt_from_args, load_model

    for clip in args.clips:
        if not Path(clip).exists():
            raise InputError(f"clip {clip} does not exist")
    if args.clip_frames is not None and args.clip_frames < 3:
        raise InputError(f"--clip-frames must be at least 3, got {args.clip_frames}")
    options = adapt_from_args(args)
    perceptual = None
    if args.perceptual:
        from ..evaluation.perceptual import load_perceptual_metric
        perceptual = load_perceptual_metric()
    model = load_model(args)
    base = args.name or f"{model.name}-clips"
    reports = []
    for steps in options["steps"]:
        records, seconds = [], {}
        for clip in args.clips:
            name = clip_name(clip)
            with tqdm(total=steps, desc=f"adapting to {name}", unit="step", disable=not steps, file=sys.stderr) as bar:
                adapted, seconds[name] = adapted_model(model, clip, steps, args.clip_frames, options["rate"],
                                                       options["rank"], seed=args.seed or 0,
                                                       progress=lambda done, total: bar.update(done - bar.n))
            with tqdm(desc=f"scoring {name}", unit="frame", file=sys.stderr) as bar:
                records += score_clip(adapted, clip, args.clip_frames, perceptual,
                                      progress=lambda done, total: bar.update(done - bar.n))
        source = {"model": model.name, "params": model.params, "device": str(model.device),
                  "dtype": str(model.dtype).replace("torch.", ""), "protocol": "dropped-frame",
                  "clip_frames": args.clip_frames,
                  "adapt": {"steps": steps, "rate": options["rate"], "rank": options["rank"], "seconds": seconds}}
        report = bench.build_report(f"{base}-adapt{steps}", source, ", ".join(args.clips), "clips", records,
                                    memory=bench.peak_memory(model.device))
        json_path, _ = bench.write_report(report, Path(args.out))
        reports.append(report)
        print(f"wrote {json_path}", file=sys.stderr)
    print(bench.compare_reports(reports) if len(reports) > 1 else bench.markdown_report(reports[0]))
    return 0
