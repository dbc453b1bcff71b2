"""Score our interpolators and the peers on one triplet benchmark in one run, and print the table.

    .venv/bin/python tools/dev_table.py --models svmv flow-asb --peers rife,dis \
        [--dataset ../shared/data/dev/triplets.csv] [--out out/dev_table] [--threads 2] [--param svmv:ensemble=4]

Our models go through `vfi bench` (reports `<out>/<model>.json`); the peers through
`../shared/peers/eval_triplets.py` with their own Python (`$VFI_PEERS_DIR/venv/bin/python`, built by
`../shared/peers/setup.sh`; results `<out>/peers.jsonl`). Both score full-frame RGB PSNR and SSIM
the same way (`vfi_core/bench.py`). Prints, and writes to `<out>/table.md`, the mean PSNR / SSIM and
median seconds per frame of every method on every set.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path


def run(command: list[str], threads: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True, env=env)


def ours(report: Path) -> dict[str, dict]:
    """Per-set figures of a `vfi bench` report (``n``, mean PSNR and SSIM, median seconds)."""
    return json.loads(report.read_text())["sets"]


def peers(results: Path) -> dict[str, dict[str, dict]]:
    """Per-set figures of each method in an `eval_triplets.py` results file, as `vfi bench` sums them."""
    from vfi_core.bench import summarize

    rows: dict[str, list[dict]] = defaultdict(list)
    for line in results.read_text().splitlines():
        row = json.loads(line)
        rows[row["method"]].append(row)
    return {method: summarize(records)[0] for method, records in rows.items()}


def table(methods: dict[str, dict[str, dict]]) -> str:
    names = list(methods)
    sets = list(dict.fromkeys(s for figures in methods.values() for s in figures))
    lines = ["| set | " + " | ".join(f"{n} PSNR / SSIM" for n in names) + " | " +
             " | ".join(f"{n} s" for n in names) + " |",
             "|---" * (1 + 2 * len(names)) + "|"]
    for s in sets:
        got = [methods[n].get(s) for n in names]
        cells = [f"{f['psnr']:.3f} / {f['ssim']:.4f}" if f else "-" for f in got]
        secs = [f"{f['sec']:.3f}" if f else "-" for f in got]
        counts = "/".join(str(f["n"]) if f else "0" for f in got)
        lines.append(f"| {s} (n {counts}) | " + " | ".join(cells) + " | " + " | ".join(secs) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["svmv", "flow-asb"], help="our interpolators")
    ap.add_argument("--param", action="append", default=[], metavar="MODEL:NAME=VALUE",
                    help="a declared parameter for one model (repeatable)")
    ap.add_argument("--peers", default="rife,dis", help="peer methods for eval_triplets.py ('' for none)")
    ap.add_argument("--dataset", default="../shared/data/dev/triplets.csv")
    ap.add_argument("--out", default="out/dev_table")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peers-script", default="../shared/peers/eval_triplets.py")
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
    methods: dict = {}
    for model in args.models:
        run([sys.executable, "-m", "vfi_core", "bench", "--model", model, *params[model], "--dataset", args.dataset,
             "--out", str(out), "--name", model, "--device", "cpu"], args.threads)
        methods[model] = ours(out / f"{model}.json")
    if args.peers:
        peer_python = Path(args.peers_python)
        if not peer_python.is_file():
            ap.error(f"no peers' Python at {peer_python}: run ../shared/peers/setup.sh first")
        results = out / "peers.jsonl"
        results.unlink(missing_ok=True)  # eval_triplets.py appends
        run([str(peer_python), args.peers_script, args.dataset, "--methods", args.peers, "--out", str(results),
             "--threads", str(args.threads)], args.threads)
        methods.update(peers(results))
    text = table(methods)
    (out / "table.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
