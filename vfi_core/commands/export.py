"""`vfi export`: write a run's EMA weights (fp16 safetensors) and JSON model card for the registry.

  vfi export RUN_DIR [--out vfi_core/weights] [--name NAME] [--bench DATASET [--layout L] [--sets A,B] [--limit N]] [--note TEXT]
"""
from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a training run's weights and model card", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="a run directory written by `vfi train`")
    p.add_argument("--out", default=None, help="output folder (default: the shipped vfi_core/weights)")
    p.add_argument("--name", help="file stem (default: the model's weight file name, e.g. svmv)")
    p.add_argument("--bench", metavar="DATASET", help="also score the exported weights on this benchmark")
    p.add_argument("--layout", default="auto", help="benchmark layout (see `vfi bench`)")
    p.add_argument("--sets", help="score only these benchmark sets, comma-separated")
    p.add_argument("--limit", type=int, help="score only the first N benchmark items")
    p.add_argument("--note", help="free text kept in the model card (what the run history alone does not say)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..registry import WEIGHTS_DIR
    from ..train import export_run
    from .bench import set_names

    weights, card = export_run(args.run_dir, args.out or WEIGHTS_DIR, args.name, args.bench, args.layout, args.limit,
                               args.note, set_names(args.sets))
    print(f"wrote {weights} ({weights.stat().st_size / 2**20:.2f} MiB) and {card}")
    return 0
