"""Score motion-estimator settings on frames training may use (never the dev benchmark's).

    .venv/bin/python tools/motion_proxy.py --shared ../shared --model flow-asb \
        --setting dis:motion=dis --setting raft-dis:motion=raft-dis,raft_iterations=6 \
        [--setting raft-427:motion=raft-dis,raft_max_side=427]
    .venv/bin/python tools/motion_proxy.py --model svmv --perceptual --weight-dir out/refine_weights \
        --setting off:refine=0 --setting on:refine=1

Windows: in each of the ten training-allowed DAVIS sequences (854x480), five evenly spaced gap-2
windows (frames i, i+4 -> i+2) and five gap-1 windows (i+7, i+9 -> i+8); ten gap-1 windows of the
bedroom clip (960x540, small motion). A setting is ``LABEL:key=value,...``: keys the model declares
(``motion``, ``selection``, ...) are its parameters, the other keys are
:class:`vfi_core.flow.MotionEstimator` fields (``raft_max_side``, ``raft_iterations``) overriding the
model's. Prints the mean 8-bit PSNR per group (with ``--perceptual`` also the mean ST-LPIPS
distance) and the seconds per frame of each setting, one line each.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

TRAINING_SEQUENCES = ("breakdance", "camel", "car-roundabout", "cows", "dog", "drift-straight",
                      "horsejump-high", "paragliding-launch", "scooter-black", "soapbox")


def windows(dev: Path) -> list[tuple[str, Path, Path, Path]]:
    from vfi_core.data.split import dev_benchmark_exclusions

    excluded = dev_benchmark_exclusions(dev.parents[1])
    out = []
    for seq in TRAINING_SEQUENCES:
        folder = dev / "davis2016" / seq
        n = len(list(folder.glob("*.jpg")))
        for i in range(0, n - 10, (n - 10) // 5):
            name = lambda k: folder / f"{k:05d}.jpg"  # noqa: E731
            out.append(("davis_gap2", name(i), name(i + 4), name(i + 2)))
            out.append(("davis_gap1", name(i + 7), name(i + 9), name(i + 8)))
    bedroom = dev / "clips" / "bedroom"
    for i in range(0, 190, 19):
        out.append(("bedroom_gap1", *(bedroom / f"{k:05d}.jpg" for k in (i, i + 2, i + 1))))
    for item in out:
        for path in item[1:]:
            if excluded.excludes(path):
                sys.exit(f"motion_proxy: {path} is part of the dev benchmark")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shared", default="../shared")
    p.add_argument("--model", default="flow-asb")
    p.add_argument("--setting", action="append", required=True, help="LABEL:key=value,...")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--perceptual", action="store_true", help="also the ST-LPIPS perceptual distance")
    p.add_argument("--weight-dir", action="append", default=[], metavar="DIR",
                   help="search this folder for weight files first (e.g. an exported refine stage)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    import vfi_core
    import vfi_core.flow as flow
    from vfi_core.evaluation.bench import read_rgb
    from vfi_core.evaluation.metrics import psnr_uint8
    from vfi_core.evaluation.perceptual import perceptual_distance

    items = windows(Path(args.shared) / "data" / "dev")
    tensor = lambda image: torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    original = flow.MotionEstimator
    descriptor = vfi_core.get_descriptor(args.model)
    declared = {param.name for param in descriptor.params}
    module = sys.modules[descriptor.factory.__module__]
    for setting in args.setting:
        label, _, given = setting.partition(":")
        values = dict(kv.split("=", 1) for kv in given.split(",") if kv)
        params = {k: values.pop(k) for k in list(values) if k in declared}
        overrides = {k: int(v) for k, v in values.items()}

        def estimator(*a, **k):
            return original(*a, **{**k, **overrides})

        module.MotionEstimator = estimator if overrides else original  # the model's own settings, overridden
        model = vfi_core.load(args.model, device="cpu", weight_dirs=tuple(map(Path, args.weight_dir)), **params)
        scores: dict[str, list[float]] = {}
        distances: dict[str, list[float]] = {}
        start = time.perf_counter()
        for group, f0, f1, gt in items:
            out = model.interpolate(tensor(read_rgb(f0)), tensor(read_rgb(f1)), 0.5)
            predicted = (out[0].permute(1, 2, 0) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
            scores.setdefault(group, []).append(psnr_uint8(predicted, read_rgb(gt)))
            if args.perceptual:
                distances.setdefault(group, []).append(perceptual_distance(predicted, read_rgb(gt)))
        seconds = (time.perf_counter() - start) / len(items)  # the perceptual scoring included
        module.MotionEstimator = original
        figures = ", ".join(f"{g} {np.mean(v):.3f}" for g, v in scores.items()) + " dB"
        if args.perceptual:
            figures += "; perceptual " + ", ".join(f"{g} {np.mean(v):.4f}" for g, v in distances.items())
        print(f"{label}: {figures}; {seconds:.2f} s/frame", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
