"""Frames per second on a GPU: our models against RIFE 4.6, float32 and float16, in one process.

Prepared for a single call on a machine with a CUDA GPU, where neither PyPI nor the peers' set-up
can be reached: ``tools/gpu_speed.sh prepare`` (run here) copies what the run needs into
git-ignored folders of the checkout (the RAFT weights into ``.raft/``, RIFE 4.6's network code and
weights from the peers' set-up into ``.peers/``, and two frames of the bundled clip), then on the
GPU machine, with ``.raft`` and ``.peers`` carried:

    VFI_RAFT_DIR=.raft python3 tools/gpu_speed.py --peers .peers --size 1920x1080 --out OUT/gpu_speed.md

RIFE is timed through its own code from ``--peers`` (nothing of it is in the product); our models
through ``vfi_core.load(..., device="cuda", dtype=...)``. Every method: 3 untimed runs, then the
median of ``--repeat`` runs, each synchronised, the pair alternating direction (no reuse of motion).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(run, x0, x1, repeat: int) -> float:
    times = []
    for i in range(3 + repeat):
        a, b = (x0, x1) if i % 2 == 0 else (x1, x0)
        _sync()
        start = time.perf_counter()
        run(a, b)
        _sync()
        if i >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def rife46(peers: Path, dtype: torch.dtype, device: str):
    sys.path.insert(0, str(peers))
    from vendor.gmfss_fortuna.IFNet_HDv3 import IFNet  # the peers' code, loaded from outside the product

    net = IFNet(ensemble=False).eval()
    net.load_state_dict(torch.load(peers / "weights" / "rife_v4.6.pkl", map_location="cpu", weights_only=True))
    net = net.to(device=device, dtype=dtype)

    @torch.inference_mode()
    def run(x0, x1):
        h, w = x0.shape[-2:]
        ph, pw = (-h) % 64, (-w) % 64
        a, b = (F.pad(x, (0, pw, 0, ph)).to(dtype) for x in (x0, x1))
        t = torch.full((1, 1, 1, 1), 0.5, device=device, dtype=dtype)
        return net(a, b, t)[..., :h, :w]
    return run


def ours(name: str, dtype: torch.dtype, params: dict, device: str):
    import vfi_core

    model = vfi_core.load(name, device=device, dtype=dtype, **params)
    return lambda x0, x1: model.interpolate(x0, x1, 0.5)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--peers", default=".peers")
    p.add_argument("--size", default="1920x1080")
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--models", nargs="+", default=["svmv", "svmv:motion=dis", "flow-asb"])
    p.add_argument("--out", default=None)
    p.add_argument("--device", default="cuda", help="cuda; cpu only to try the script on a small --size")
    args = p.parse_args(argv)
    from PIL import Image

    width, height = (int(v) for v in args.size.split("x"))
    pair = []
    for name in ("frame0.png", "frame1.png"):
        image = Image.open(Path(args.peers) / "pair" / name).convert("RGB").resize((width, height), Image.BICUBIC)
        pair.append(torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None].float().div(255).to(args.device))
    rows = []
    for dtype in (torch.float32, torch.float16):
        label = "fp32" if dtype == torch.float32 else "fp16"
        for spec in args.models:
            name, _, given = spec.partition(":")
            params = dict(kv.split("=", 1) for kv in given.split(",") if kv)
            try:
                sec = timed(ours(name, dtype, params, args.device), *pair, args.repeat)
                rows.append((spec, label, sec))
            except Exception as exc:  # a model without half precision: say so in the table
                rows.append((spec, label, f"{type(exc).__name__}: {exc}"))
            print(rows[-1], flush=True)
        rows.append(("RIFE 4.6", label, timed(rife46(Path(args.peers), dtype, args.device), *pair, args.repeat)))
        print(rows[-1], flush=True)
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device
    lines = [f"{width}x{height}, {where}, torch {torch.__version__}", "",
             "| method | precision | s/frame | frames/s |", "|---|---|---|---|"]
    for spec, label, sec in rows:
        lines.append(f"| {spec} | {label} | " + (f"{sec:.4f} | {1 / sec:.1f} |" if isinstance(sec, float)
                                                  else f"{sec} | - |"))
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
