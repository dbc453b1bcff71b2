"""A side-by-side picture of the largest-motion pairs of a benchmark: one row per pair, one column per
predictions folder, then the ground truth, each cropped to the window of the pair where motion is
largest.

    .venv/bin/python tools/crop_compare.py --dataset ../shared/data/dev/triplets.csv \
        --sets davis_gap1,davis_gap2 --column svmv=out/dev_table/predictions/svmv \
        --column "svmv refine=1"=out/dev_table/predictions/svmv-refine \
        --column "RIFE 4.6"=out/dev_table/peers/rife --count 4 --size 192 --out docs/img/refine_crops.png

Predictions folders are those of `vfi bench --save-predictions` (`tools/dev_table.py
--keep-predictions`) and of the peers (`<key>.png`). Motion is DIS optical flow between the pair's
two frames (the core's estimator, `motion=dis`); a pair's motion is the mean flow magnitude over its
frame, and its crop is the window with the largest mean magnitude.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

LABEL_HEIGHT = 22


def motion_magnitude(frame0: np.ndarray, frame1: np.ndarray) -> np.ndarray:
    """``(H,W)`` magnitude in pixels of the DIS flow from ``frame0`` to ``frame1`` (uint8 RGB)."""
    from vfi_core.ops.flow import capped_dis

    x0, x1 = (torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255 for f in (frame0, frame1))
    flows = capped_dis(x0, x1, "medium", max(frame0.shape[:2]), True)
    f01 = F.interpolate(flows[:, :2], size=frame0.shape[:2], mode="bilinear", align_corners=False)
    scale = frame0.shape[1] / flows.shape[-1]
    return (f01[0].norm(dim=0) * scale).numpy()


def busiest_window(magnitude: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left ``(y, x)`` of the ``size x size`` window with the largest mean magnitude."""
    m = torch.from_numpy(magnitude)[None, None]
    size = min(size, *magnitude.shape)
    means = F.avg_pool2d(m, size, stride=max(1, size // 8))
    index = int(means.flatten().argmax())
    y, x = divmod(index, means.shape[-1])
    stride = max(1, size // 8)
    return y * stride, x * stride


def main(argv: list[str] | None = None) -> int:
    from vfi_core.evaluation.bench import read_rgb
    from vfi_core.evaluation.eval_sets import load_eval_set
    from vfi_core.files import publish

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="../shared/data/dev/triplets.csv")
    ap.add_argument("--layout", default="auto")
    ap.add_argument("--sets", help="only these sets, comma-separated")
    ap.add_argument("--column", action="append", required=True, metavar="LABEL=DIR",
                    help="a predictions folder and its label (repeatable, in column order)")
    ap.add_argument("--count", type=int, default=4, help="pairs (rows), largest motion first")
    ap.add_argument("--size", type=int, default=192, help="crop side in pixels")
    ap.add_argument("--out", required=True, help="the PNG to write")
    args = ap.parse_args(argv)
    columns = []
    for spec in args.column:
        label, sep, folder = spec.partition("=")
        if not sep or not Path(folder).is_dir():
            ap.error(f"--column takes LABEL=DIR with an existing folder, got {spec!r}")
        columns.append((label, Path(folder)))
    _, items = load_eval_set(Path(args.dataset), args.layout, sets=args.sets.split(",") if args.sets else None)
    items = [i for i in items if all((folder / f"{i.key}.png").is_file() for _, folder in columns)]
    if not items:
        ap.error("no item has a prediction in every column's folder")
    scored = []
    for item in items:
        magnitude = motion_magnitude(read_rgb(item.frame0), read_rgb(item.frame1))
        scored.append((float(magnitude.mean()), item, magnitude))
    scored.sort(key=lambda s: -s[0])
    rows = []
    for mean_motion, item, magnitude in scored[:args.count]:
        y, x = busiest_window(magnitude, args.size)
        images = [read_rgb(folder / f"{item.key}.png") for _, folder in columns] + [read_rgb(item.gt)]
        rows.append((item.key, mean_motion, [im[y:y + args.size, x:x + args.size] for im in images]))
        print(f"{item.key}: mean motion {mean_motion:.1f} px, crop at x={x} y={y}")
    side = min(min(c.shape[0], c.shape[1]) for _, _, crops in rows for c in crops)
    labels = [label for label, _ in columns] + ["ground truth"]
    canvas = Image.new("RGB", (side * len(labels), LABEL_HEIGHT + side * len(rows)), "white")
    draw = ImageDraw.Draw(canvas)
    for j, label in enumerate(labels):
        draw.text((j * side + 4, 4), label, fill="black")
    for i, (_, _, crops) in enumerate(rows):
        for j, crop in enumerate(crops):
            canvas.paste(Image.fromarray(np.ascontiguousarray(crop[:side, :side])), (j * side, LABEL_HEIGHT + i * side))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial.png")
    canvas.save(tmp)
    publish(tmp, out)
    print(f"wrote {out}: {len(rows)} pairs x {len(labels)} columns of {side} px")
    return 0


if __name__ == "__main__":
    sys.exit(main())
