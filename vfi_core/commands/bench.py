"""`vfi bench`: score an interpolator or a folder of predictions on a benchmark; compare reports.

  vfi bench --model NAME --dataset PATH [--layout auto|triplets-csv|...] [--sets A,B] [--out DIR] [--limit N]
            [--speed] [--perceptual]
  vfi bench --predictions DIR --dataset PATH ...
  vfi bench --compare a.json b.json [...]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from .common import add_model_options


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
    if not args.dataset:
        raise InputError("vfi bench needs --dataset PATH (or --compare a.json b.json)")
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
