"""Plot quality against seconds per frame for a sweep of `vfi bench` reports (e.g. MiVID's steps
sweep), and print the table behind it.

    .venv/bin/python tools/sweep_plot.py out/sweep/steps-10.json out/sweep/steps-25.json ... \
        --labels 10 25 50 100 --out docs/mivid_steps.png

Each report gives a point: its overall PSNR, SSIM and (when scored with --perceptual) perceptual
distance against its median seconds per frame.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from vfi_core.evaluation.bench import load_report
    from vfi_core.errors import InputError
    from vfi_core.train.plot import plot_sweep

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reports", nargs="+", help="vfi bench report JSON files, one per point")
    ap.add_argument("--labels", nargs="+", help="a label per report (default: the report names)")
    ap.add_argument("--out", required=True, help="the PNG to write")
    args = ap.parse_args(argv)
    try:
        reports = [load_report(p) for p in args.reports]
    except InputError as exc:
        ap.error(str(exc))
    labels = args.labels or [r["name"] for r in reports]
    if len(labels) != len(reports):
        ap.error(f"{len(labels)} labels for {len(reports)} reports")
    overall = [r["overall"] for r in reports]
    if not all("sec" in o for o in overall):
        ap.error("every report needs seconds per item (a --model run of vfi bench)")
    seconds = [o["sec"] for o in overall]
    panels = {"PSNR (dB)": [o["psnr"] for o in overall], "SSIM": [o["ssim"] for o in overall]}
    if all("perceptual" in o for o in overall):
        panels["perceptual distance (lower is better)"] = [o["perceptual"] for o in overall]
    plot_sweep(Path(args.out), labels, seconds, panels)
    print("| point | s/frame | " + " | ".join(panels) + " |")
    print("|---" * (2 + len(panels)) + "|")
    for k, label in enumerate(labels):
        print(f"| {label} | {seconds[k]:.3f} | " + " | ".join(f"{v[k]:.4f}" for v in panels.values()) + " |")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
