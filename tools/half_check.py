"""How far half precision moves a model's output: PSNR of float16 and float32 runs against the truth.

    .venv/bin/python tools/half_check.py --dataset ../shared/data/dev/triplets.csv --model svmv \
        --sets davis_gap2,vimeo_gap3 --limit 4 [--device cpu]

``vfi_core.load`` refuses float16 on the CPU (tens of times slower there), so this check builds the
interpolator from its registered factory directly: the numerics are those of a GPU run up to the
kernels' rounding. Prints the mean 8-bit PSNR of each precision and the largest per-item difference.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", default="svmv")
    p.add_argument("--sets", default=None)
    p.add_argument("--limit", type=int, default=4, help="items per set")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)

    import vfi_core
    from vfi_core.evaluation.bench import read_rgb
    from vfi_core.evaluation.eval_sets import load_eval_set
    from vfi_core.frames import from_numpy, to_numpy_uint8
    from vfi_core.evaluation.metrics import psnr_uint8
    from vfi_core.weights import find_weights

    desc = vfi_core.get_descriptor(args.model)
    if not desc.supports_half:
        sys.exit(f"half_check: {args.model} does not support half precision")
    device = torch.device(args.device)
    weights = find_weights(desc, None, ()) if desc.weight_file else None
    models = {dt: desc.factory(descriptor=desc, device=device, dtype=dt, params=desc.resolve_params({}),
                               weights=weights) for dt in (torch.float32, torch.float16)}
    _, items = load_eval_set(args.dataset, "auto", sets=args.sets.split(",") if args.sets else None)
    per_set: dict[str, list] = {}
    for item in items:
        if len(per_set.setdefault(item.set, [])) >= args.limit:
            continue
        f0, f1 = (from_numpy(read_rgb(x)) for x in (item.frame0, item.frame1))
        truth = read_rgb(item.gt)
        scores = [psnr_uint8(to_numpy_uint8(models[dt].interpolate(f0, f1, item.t))[0], truth) for dt in models]
        per_set[item.set].append(scores)
        print(f"{item.key}: fp32 {scores[0]:.3f} fp16 {scores[1]:.3f}", flush=True)
    for name, rows in per_set.items():
        rows = np.array(rows)
        print(f"{name} ({len(rows)}): fp32 {rows[:, 0].mean():.3f} dB, fp16 {rows[:, 1].mean():.3f} dB, "
              f"largest difference {np.abs(rows[:, 0] - rows[:, 1]).max():.3f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
