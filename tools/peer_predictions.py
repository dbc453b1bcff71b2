"""Write one peer method's predictions as a `vfi bench --predictions` folder. Runs with the peers'
own Python (`../shared/peers/setup.sh` builds it); `tools/dev_table.py` calls it.

    $VFI_PEERS_DIR/venv/bin/python tools/peer_predictions.py JOBS.csv --method rife --out DIR \
        [--peers ../shared/peers] [--threads 2]

JOBS.csv has the columns key, frame0, frame1, t (absolute paths). Writes `DIR/<key>.png` for every
row (each through a temporary file, then renamed) and `DIR/seconds.jsonl`, one `{"key", "sec"}` per
row: the seconds the interpolation itself took, timed as `eval_triplets.py` times it. A method
that cannot produce a row's t (minterpolate: t = 1/2 only) stops the run with its message.
"""
import argparse
import csv
import json
import os
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("jobs")
    ap.add_argument("--method", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--peers", default="../shared/peers", help="the peers' folder (interp.py)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.peers))
    from interp import load_method, read_rgb, write_rgb

    interpolate = load_method(args.method, args.threads)
    with open(args.jobs, newline="") as f:
        rows = list(csv.DictReader(f))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "seconds.jsonl"), "w") as log:
        for index, row in enumerate(rows, 1):
            frame0, frame1 = read_rgb(row["frame0"]), read_rgb(row["frame1"])
            start = time.perf_counter()
            try:
                prediction = interpolate(frame0, frame1, float(row["t"]))
            except ValueError as error:
                print(f"peer_predictions: {args.method} cannot do {row['key']} (t = {row['t']}): {error}",
                      file=sys.stderr)
                return 2
            seconds = time.perf_counter() - start
            path = os.path.join(args.out, row["key"] + ".png")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            partial = path[:-4] + ".partial.png"
            write_rgb(partial, prediction)
            os.replace(partial, path)
            log.write(json.dumps({"key": row["key"], "sec": seconds}) + "\n")
            if index % 20 == 0 or index == len(rows):
                print(f"{args.method}: {index}/{len(rows)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
