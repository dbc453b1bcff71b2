"""Score our interpolators and the peers on one triplet benchmark in one run, and print the table.

    .venv/bin/python tools/dev_table.py --models svmv flow-asb --peers rife,dis \
        [--dataset ../shared/data/dev/triplets.csv] [--out out/dev_table] [--threads 2] \
        [--param svmv:ensemble=4] [--perceptual] [--layout seven] [--sets A,B] [--weight-dir DIR]

A model may run twice under two labels, ``LABEL=MODEL``, with its own parameters:
``--models svmv svmv-refine=svmv --param svmv-refine:refine=1``.

Our models go through `vfi bench --model` (reports `<out>/<model>.json`). Each peer writes its
predictions with its own Python (`$VFI_PEERS_DIR/venv/bin/python`, built by
`../shared/peers/setup.sh`) through `tools/peer_predictions.py` into `<out>/peers/<method>/`, and
`vfi bench --predictions` scores them (`<out>/<method>.json`; the peers' own seconds per frame
added): every method is scored by the same code (`vfi_core/evaluation/bench.py`), the perceptual distance
included with `--perceptual`. Prints, and writes to `<out>/table.md`, the mean PSNR / SSIM
(/ perceptual distance) and median seconds per frame of every method on every set and overall (`all`).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path


def run(command: list[str], threads: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    print("$", " ".join(command), flush=True)
    if subprocess.run(command, env=env).returncode:
        sys.exit(f"dev_table: this step failed (its message is above): {' '.join(command)}")


def report_sets(report: Path) -> dict[str, dict]:
    """Per-set figures of a `vfi bench` report (``n``, mean PSNR, SSIM [, perceptual], median seconds),
    then the overall ones under ``all``."""
    report = json.loads(report.read_text())
    return {**report["sets"], "all": report["overall"]}


def write_jobs(dataset: str, layout: str, sets: list[str] | None, path: Path) -> None:
    """The benchmark's items as the peers' job list (key, frame0, frame1, t; absolute paths)."""
    from vfi_core.evaluation.eval_sets import load_eval_set

    _, items = load_eval_set(dataset, layout, sets=sets)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("key", "frame0", "frame1", "t"))
        writer.writerows((i.key, i.frame0.resolve(), i.frame1.resolve(), i.t) for i in items)


def with_peer_seconds(report: Path, seconds_log: Path) -> dict[str, dict]:
    """Per-set figures of a predictions report, with the peer's own seconds per item added."""
    from vfi_core.evaluation.bench import summarize

    seconds = {row["key"]: row["sec"] for row in map(json.loads, seconds_log.read_text().splitlines())}
    items = json.loads(report.read_text())["items"]
    sets, overall = summarize({**item, "sec": seconds[item["key"]]} for item in items)
    return {**sets, "all": overall}


def table(methods: dict[str, dict[str, dict]]) -> str:
    names = list(methods)
    sets = list(dict.fromkeys(s for figures in methods.values() for s in figures))
    perceptual = all("perceptual" in f for figures in methods.values() for f in figures.values())
    metrics = "PSNR / SSIM / perceptual" if perceptual else "PSNR / SSIM"
    lines = ["| set | " + " | ".join(f"{n} {metrics}" for n in names) + " | " +
             " | ".join(f"{n} s" for n in names) + " |",
             "|---" * (1 + 2 * len(names)) + "|"]
    for s in sets:
        got = [methods[n].get(s) for n in names]
        cells = [f"{f['psnr']:.3f} / {f['ssim']:.4f}" + (f" / {f['perceptual']:.4f}" if perceptual else "")
                 if f else "-" for f in got]
        secs = [f"{f['sec']:.3f}" if f else "-" for f in got]
        counts = "/".join(str(f["n"]) if f else "0" for f in got)
        lines.append(f"| {s} (n {counts}) | " + " | ".join(cells) + " | " + " | ".join(secs) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from vfi_core.commands.bench import set_names

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["svmv", "flow-asb"],
                    help="our interpolators, each MODEL or LABEL=MODEL")
    ap.add_argument("--param", action="append", default=[], metavar="MODEL:NAME=VALUE",
                    help="a declared parameter for one model, named by its label (repeatable)")
    ap.add_argument("--peers", default="rife,dis", help="peer methods of ../shared/peers ('' for none)")
    ap.add_argument("--dataset", default="../shared/data/dev/triplets.csv")
    ap.add_argument("--layout", default="auto", help="the dataset's layout (vfi bench --layout), e.g. seven: "
                    "the 7-frame protocol, where window models generate frames 2..6 in one pass and the "
                    "others interpolate each at t = j/6")
    ap.add_argument("--sets", help="only these sets of the dataset, comma-separated (vfi bench --sets)")
    ap.add_argument("--out", default="out/dev_table")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--perceptual", action="store_true", help="also the perceptual distance (vfi bench --perceptual)")
    ap.add_argument("--keep-predictions", action="store_true",
                    help="keep our models' frames in <out>/predictions/<label>/ (the peers' are in <out>/peers/)")
    ap.add_argument("--weight-dir", action="append", default=[], metavar="DIR",
                    help="a folder searched before the shipped weights (vfi bench --weight-dir; repeatable)")
    ap.add_argument("--peers-dir", default="../shared/peers")
    ap.add_argument("--peers-python", default=str(Path(os.environ.get(
        "VFI_PEERS_DIR", Path.home() / ".cache/vfi-peers")) / "venv/bin/python"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    params = defaultdict(list)
    for spec in args.param:
        model, sep, setting = spec.partition(":")
        if not sep or "=" not in setting:
            ap.error(f"--param takes MODEL:NAME=VALUE, got {spec!r}")
        params[model] += ["--param", setting]
    bench = [sys.executable, "-m", "vfi_core", "bench", "--dataset", args.dataset, "--layout", args.layout,
             "--out", str(out)]
    bench += ["--perceptual"] if args.perceptual else []
    bench += ["--sets", args.sets] if args.sets else []
    peers = [m for m in args.peers.split(",") if m]
    peer_python = Path(args.peers_python)
    if peers and not peer_python.is_file():
        ap.error(f"no peers' Python at {peer_python}: run ../shared/peers/setup.sh first")
    folders = [a for folder in args.weight_dir for a in ("--weight-dir", folder)]   # our models' runs only
    methods: dict = {}
    for spec in args.models:
        label, _, model = spec.partition("=")
        keep = ["--save-predictions", str(out / "predictions" / label)] if args.keep_predictions else []
        run([*bench, "--model", model or label, *params[label], *folders, "--name", label, "--device", "cpu", *keep],
            args.threads)
        methods[label] = report_sets(out / f"{label}.json")
    if peers:
        jobs = out / "peers" / "jobs.csv"
        jobs.parent.mkdir(parents=True, exist_ok=True)
        write_jobs(args.dataset, args.layout, set_names(args.sets), jobs)
        for method in peers:
            folder = out / "peers" / method
            run([str(peer_python), str(Path(__file__).with_name("peer_predictions.py")), str(jobs), "--method", method,
                 "--out", str(folder), "--peers", args.peers_dir, "--threads", str(args.threads)], args.threads)
            run([*bench, "--predictions", str(folder), "--name", method], args.threads)
            methods[method] = with_peer_seconds(out / f"{method}.json", folder / "seconds.jsonl")
    text = table(methods)
    (out / "table.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
