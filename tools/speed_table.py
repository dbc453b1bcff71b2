"""Seconds per interpolated frame of our models and the peers, alternated in one script.

    .venv/bin/python tools/speed_table.py --pair A.jpg B.jpg --size 1280x720 --rounds 2 --repeat 3 \
        --model svmv --model svmv:motion=dis --model flow-asb --peer rife [--device cuda] [--half] \
        [--out out/speed.md]

A model given as ``NAME@DIR`` runs the ``vfi_core`` of the checkout ``DIR`` (e.g. a ``git worktree``
of an earlier commit), to time a change against what it changed.

Every round runs each method once, in the order given, each in a fresh process (ours: this script
with ``--child``, timing :func:`vfi_core.evaluation.bench.measure_speed` on the pair resized to ``--size``,
the pair alternating direction so that no call reuses the previous one's motion; a peer:
``../shared/peers/interp.py`` with the peers' own Python, ``$VFI_PEERS_DIR/venv/bin/python``).
Alternating the methods round by round spreads a busy machine's slow moments over all of them.
``--half``: our models in float16 (GPU only; the peers' harness runs float32 on the CPU).
Prints (and writes to ``--out``) a Markdown table of the median seconds per frame, and frames per
second, of each method in each round.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child(args) -> int:
    import torch

    import vfi_core
    try:
        from vfi_core.evaluation.bench import measure_speed, read_rgb
    except ModuleNotFoundError:  # a checkout from before vfi_core.evaluation (NAME@DIR)
        from vfi_core.bench import measure_speed, read_rgb

    torch.set_num_threads(args.threads)
    name, _, given = args.child.partition(":")
    params = dict(kv.split("=", 1) for kv in given.split(",") if kv)
    model = vfi_core.load(name, device=args.device, dtype="float16" if args.half else None, **params)
    width, height = (int(v) for v in args.size.lower().split("x"))
    speed = measure_speed(model, read_rgb(Path(args.pair[0])), read_rgb(Path(args.pair[1])),
                          sizes=((width, height),), warmup=1, repeats=args.repeat)
    print(json.dumps({"sec": speed[f"{width}x{height}"]}))
    return 0


def run_ours(method: str, args) -> float:
    method, _, tree = method.partition("@")
    env = _env(args)
    if tree:  # another checkout's vfi_core, e.g. a baseline commit's worktree
        env["PYTHONPATH"] = str(Path(tree).resolve())
    command = [sys.executable, __file__, "--child", method, "--pair", *args.pair, "--size", args.size,
               "--repeat", str(args.repeat), "--threads", str(args.threads)]
    if args.device:
        command += ["--device", args.device]
    if args.half:
        command.append("--half")
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    if out.returncode:
        sys.exit(f"speed_table: {method} failed: {out.stderr.strip().splitlines()[-1] if out.stderr else ''}")
    return json.loads(out.stdout.strip().splitlines()[-1])["sec"]


def run_peer(method: str, args) -> float:
    root = Path(os.environ.get("VFI_PEERS_DIR", Path.home() / ".cache" / "vfi-peers"))
    python = root / "venv" / "bin" / "python"
    script = Path(args.peers_script)
    if not python.exists() or not script.exists():
        sys.exit(f"speed_table: the peers are not set up (no {python} or {script}): run the peers' setup.sh")
    command = [str(python), str(script), "--method", method, "--f0", args.pair[0], "--f1", args.pair[1],
               "--out", str(Path(args.scratch) / f"{method}.png"),
               "--size", args.size, "--warmup", "1", "--repeat", str(args.repeat)]
    out = subprocess.run(command, capture_output=True, text=True, env=_env(args))
    found = re.search(r"interp_time_s=([0-9.]+)", out.stdout)
    if out.returncode or not found:
        sys.exit(f"speed_table: peer {method} failed: {(out.stderr or out.stdout).strip()[-300:]}")
    return float(found.group(1))


def _env(args) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONUNBUFFERED": "1"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pair", nargs=2, required=True, metavar=("FRAME0", "FRAME1"))
    p.add_argument("--size", default="1280x720")
    p.add_argument("--model", action="append", default=[],
                   help="NAME or NAME:key=value,key=value; @DIR at the end: the vfi_core of checkout DIR")
    p.add_argument("--peer", action="append", default=[], help="a method of the peers' interp.py, e.g. rife")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default=None)
    p.add_argument("--half", action="store_true")
    p.add_argument("--peers-script", default=str(REPO.parent / "shared" / "peers" / "interp.py"))
    p.add_argument("--scratch", default=str(REPO / "out" / "speed"))
    p.add_argument("--out", default=None)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    Path(args.scratch).mkdir(parents=True, exist_ok=True)
    methods = [(m, "ours") for m in args.model] + [(m, "peer") for m in args.peer]
    seconds: dict[str, list[float]] = {m: [] for m, _ in methods}
    for round_ in range(args.rounds):
        for method, kind in methods:
            sec = run_ours(method, args) if kind == "ours" else run_peer(method, args)
            seconds[method].append(sec)
            print(f"round {round_ + 1}: {method} {sec:.3f} s/frame", flush=True)
    header = "| method | " + " | ".join(f"round {i + 1} s/frame" for i in range(args.rounds)) + " | frames/s (best) |"
    lines = [f"{args.size}, {args.threads} threads, device {args.device or 'auto'}{', half' if args.half else ''}:",
             "", header, "|---" * (args.rounds + 2) + "|"]
    for method, values in seconds.items():
        lines.append(f"| {method} | " + " | ".join(f"{v:.3f}" for v in values) + f" | {1 / min(values):.2f} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
