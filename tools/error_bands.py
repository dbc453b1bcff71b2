"""Where a model's error lies against a peer's, on frames training may use (never the dev benchmark's).

    .venv/bin/python tools/error_bands.py --write-jobs out/bands/jobs.csv
    $VFI_PEERS_DIR/venv/bin/python tools/peer_predictions.py out/bands/jobs.csv --method rife \
        --out out/bands/rife --threads 1
    .venv/bin/python tools/error_bands.py --jobs out/bands/jobs.csv --peer rife=out/bands/rife \
        [--model svmv] [-p raft_hypotheses=true] [--skip dog] [--threads 1]

Windows: the DAVIS windows of ``tools/motion_proxy.py`` (ten training-allowed sequences, gaps of 1
and 2 frames, t = 1/2). For each window the motion the truth frame actually shows is measured: the
core's default flow between the truth and each input, its magnitude (the mean of the two) and the
forward-backward check of each (:func:`vfi_core.data.motion_pack.occlusion_mask`), a pixel failing
either being "occluded". Per group of windows the tool prints the mean 8-bit PSNR of the model and
the peer, then for each region (motion bands of the truth's flow, occluded pixels) its share of the
frame area, its share of the model's squared error, and the model's squared error over the peer's
(below 1: the model is ahead there); then the mean PSNR difference per sequence. For reference, the
first line of a group also gives "truth-flow": both inputs warped by the truth's own flow and
averaged, what exact motion (non-linear included) with a plain blend would reach.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from motion_proxy import windows  # noqa: E402

BANDS = ((0.0, 4.0), (4.0, 16.0), (16.0, float("inf")))  # pixels of motion between the truth and an input


def write_jobs(path: Path, shared: Path) -> None:
    """The DAVIS windows as a peer_predictions job file (key, frame0, frame1, t, gt)."""
    items = [w for w in windows(shared / "data" / "dev") if w[0].startswith("davis")]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with open(partial, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["key", "frame0", "frame1", "t", "gt"])
        for index, (group, f0, f1, gt) in enumerate(items):
            out.writerow([f"{group}_{index:03d}", f0.resolve(), f1.resolve(), 0.5, gt.resolve()])
    partial.replace(path)
    print(f"wrote {path}: {len(items)} windows")


def truth_flows(truth: torch.Tensor, frame0: torch.Tensor, frame1: torch.Tensor):
    """The default estimator's flows between the truth and each input: ``((T->0, 0->T), (T->1, 1->T))``,
    each ``(1,2,H,W)`` in pixels."""
    from vfi_core.flow import frame_estimator

    estimate = frame_estimator(*truth.shape[-2:])
    return estimate(truth, frame0), estimate(truth, frame1)


def regions(flows) -> dict[str, torch.Tensor]:
    """Boolean ``(1,1,H,W)`` masks of the motion bands and of the occluded pixels (module docstring)
    from :func:`truth_flows`."""
    from vfi_core.data.motion_pack import occlusion_mask

    (to0, from0), (to1, from1) = flows
    magnitude = 0.5 * (to0.norm(dim=1, keepdim=True) + to1.norm(dim=1, keepdim=True))
    masks = {f"motion {lo:g}-{hi:g} px": (magnitude >= lo) & (magnitude < hi) for lo, hi in BANDS}
    masks["occluded"] = (occlusion_mask(to0, from0) + occlusion_mask(to1, from1)) > 0
    return masks


def truth_flow_blend(frame0: torch.Tensor, frame1: torch.Tensor, flows) -> torch.Tensor:
    """Both inputs warped to the truth by the truth's own flow (:func:`truth_flows`), averaged ``(1,3,H,W)``."""
    from vfi_core.ops.warp import backward_warp

    (to0, _), (to1, _) = flows
    return 0.5 * (backward_warp(frame0, to0) + backward_warp(frame1, to1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shared", default="../shared")
    p.add_argument("--write-jobs", type=Path, metavar="CSV", help="write the windows as a job file and stop")
    p.add_argument("--jobs", type=Path, metavar="CSV", help="the job file the peer's predictions were made from")
    p.add_argument("--peer", metavar="NAME=DIR", help="the peer's predictions (DIR/<key>.png)")
    p.add_argument("--model", default="svmv")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--skip", action="append", default=[], metavar="SEQUENCE", help="leave out a sequence's windows")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if args.write_jobs:
        write_jobs(args.write_jobs, Path(args.shared))
        return 0
    if not (args.jobs and args.peer and "=" in args.peer):
        p.error("give --write-jobs CSV, or --jobs CSV and --peer NAME=DIR")
    torch.set_num_threads(args.threads)

    import vfi_core
    from vfi_core.evaluation.bench import read_rgb

    peer, peer_dir = args.peer.split("=", 1)
    model = vfi_core.load(args.model, device="cpu", **dict(kv.split("=", 1) for kv in args.param))
    tensor = lambda image: torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    with open(args.jobs, newline="") as f:
        rows = list(csv.DictReader(f))
    unknown = set(args.skip) - {Path(row["frame0"]).parent.name for row in rows}
    if unknown:
        p.error(f"--skip: no window of {', '.join(sorted(unknown))} in {args.jobs}")
    rows = [row for row in rows if Path(row["frame0"]).parent.name not in args.skip]
    stats: dict[str, dict[str, list]] = {}
    for row in rows:
        frame0, frame1, truth = (tensor(read_rgb(row[k])) for k in ("frame0", "frame1", "gt"))
        ours = (model.interpolate(frame0, frame1, float(row["t"])).clamp(0, 1) * 255).round() / 255
        theirs = tensor(read_rgb(Path(peer_dir) / f"{row['key']}.png"))
        flows = truth_flows(truth, frame0, frame1)
        error = {name: ((x - truth) ** 2).mean(1, keepdim=True) for name, x in
                 (("ours", ours), ("peer", theirs), ("truth-flow", truth_flow_blend(frame0, frame1, flows)))}
        group = stats.setdefault(row["key"].rsplit("_", 1)[0], {})
        group.setdefault("sequence", []).append(Path(row["frame0"]).parent.name)
        for name, e in error.items():
            group.setdefault(f"psnr {name}", []).append(float(-10 * torch.log10(e.mean())))
            group.setdefault(f"sse {name}", []).append(float(e.sum()))
        for region, mask in regions(flows).items():
            group.setdefault(f"area {region}", []).append(float(mask.float().mean()))
            for name in ("ours", "peer"):
                group.setdefault(f"sse {name} {region}", []).append(float((error[name] * mask).sum()))
        print(f"{row['key']}: {group['psnr ours'][-1]:.2f} / {group['psnr peer'][-1]:.2f} dB", file=sys.stderr)

    for name, group in stats.items():
        mean = {k: np.mean(v) for k, v in group.items() if k != "sequence"}
        print(f"\n{name} ({len(group['sequence'])} windows): {args.model} {mean['psnr ours']:.3f} dB, "
              f"{peer} {mean['psnr peer']:.3f} dB, truth-flow {mean['psnr truth-flow']:.3f} dB")
        print(f"| region | area | share of {args.model}'s squared error | {args.model} / {peer} squared error |")
        print("|---|---|---|---|")
        for region in [k[5:] for k in group if k.startswith("area ")]:
            ours, theirs = sum(group[f"sse ours {region}"]), sum(group[f"sse peer {region}"])
            ratio = f"{ours / theirs:.3f}" if theirs > 0 else "-"  # a band no pixel falls in
            print(f"| {region} | {mean['area ' + region]:.3f} | {ours / sum(group['sse ours']):.3f} | {ratio} |")
        differences: dict[str, list[float]] = {}
        for seq, a, b in zip(group["sequence"], group["psnr ours"], group["psnr peer"]):
            differences.setdefault(seq, []).append(a - b)
        print(f"{args.model} - {peer}, dB per sequence: "
              + ", ".join(f"{seq} {np.mean(v):+.2f}" for seq, v in sorted(differences.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
