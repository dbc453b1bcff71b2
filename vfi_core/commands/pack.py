"""`vfi pack`: cut training crops from real video into one .npz that `vfi train --data` reads.

  vfi pack OUT.npz --shared DIR [--source PATH ...] [--kind motion|windows] [--crop PX] [--max-side PX]
           [--pairs N --crops-per-pair N --gaps 1,2,3,4 --synthetic N --motion M --device D]   (kind motion)
           [--windows N --max-stride N]                                           (kind windows)

--shared DIR is the folder holding data/dev/triplets.csv: the dev benchmark's frames (and the DAVIS
validation sequences) are never packed. --source defaults to DIR/data/dev/davis2016 and
DIR/data/dev/clips. Kind `motion` (for PerVFI) runs the motion estimator on whole frames as PerVFI
does at inference (its DIS settings and working size) and picks crops where motion is large and occlusions are
(vfi_core.data.motion_pack); kind `windows` packs random 9-frame windows (SVMV, MiVID).
The file is written to a temporary name and renamed when complete.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def _gaps(text: str) -> tuple[int, ...]:
    try:
        gaps = tuple(int(g) for g in text.split(","))
    except ValueError:
        gaps = ()
    if not gaps or min(gaps) < 1:
        raise argparse.ArgumentTypeError(f"expected positive whole numbers separated by commas, got {text!r}")
    return gaps


def add_parser(sub) -> None:
    from ..flow import MOTIONS

    p = sub.add_parser("pack", help="cut training crops from video into a .npz pack", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="the .npz pack to write")
    p.add_argument("--shared", metavar="DIR", required=True,
                   help="the folder holding data/dev/triplets.csv, whose frames training must exclude")
    p.add_argument("--source", action="append", default=None, metavar="PATH",
                   help="a video or a folder of frames or sequences (repeatable; default: the dev footage "
                   "under DIR/data/dev)")
    p.add_argument("--kind", choices=("motion", "windows"), default="motion")
    p.add_argument("--crop", type=int, default=256, help="square crop size in pixels (default 256)")
    p.add_argument("--max-side", type=int, default=854,
                   help="frames are first downscaled to this longest side (default 854)")
    p.add_argument("--pairs", type=int, default=150, help="motion: frame pairs drawn (default 150)")
    p.add_argument("--crops-per-pair", type=int, default=3, help="motion: crops cut from each pair (default 3)")
    p.add_argument("--gaps", type=_gaps, default=(1, 2, 3, 4),
                   help="motion: gaps g drawn for frames i, i+2g (default 1,2,3,4)")
    p.add_argument("--synthetic", type=int, default=0, help="motion: synthetic scenes added (default 0)")
    p.add_argument("--motion", choices=MOTIONS, default="auto",
                   help="motion: the estimator, as the interpolators' motion parameter (default auto)")
    p.add_argument("--windows", type=int, default=200, help="windows: how many (default 200)")
    p.add_argument("--max-stride", type=int, default=2, help="windows: largest frame stride (default 2)")
    p.add_argument("--limit-mib", type=int, default=None,
                   help="refuse a larger file (default: 1024 for motion, 64 for windows)")
    p.add_argument("--device", default="cpu",
                   help="motion: where the estimator runs: cpu (default), auto, cuda, cuda:N, mps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args) -> int:
    import json
    import sys

    from tqdm import tqdm

    from ..data import dev_benchmark_exclusions, open_sources, pack_motion_crops, pack_training_crops
    from ..device import resolve_device
    from ..errors import InputError
    from ..flow import MotionEstimator, resolve_motion
    from ..models.pervfi import PerVFIConfig

    shared = Path(args.shared)
    if not (shared / "data" / "dev" / "triplets.csv").is_file():
        raise InputError(f"--shared {shared} holds no data/dev/triplets.csv")
    if not args.out.endswith(".npz"):
        raise InputError(f"the pack must be a .npz file, got {args.out}")
    for name in ("crop", "max_side", "pairs", "crops_per_pair", "windows", "max_stride"):
        if getattr(args, name) < (0 if name == "pairs" else 1):
            raise InputError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    exclusions = dev_benchmark_exclusions(shared)
    paths = args.source or [shared / "data" / "dev" / "davis2016", shared / "data" / "dev" / "clips"]
    sources = open_sources(paths, exclusions, max_side=args.max_side)
    if args.kind == "windows":
        limit = (args.limit_mib or 64) * 2**20
        pack_training_crops(sources, args.out, crop=args.crop, n=args.windows, seed=args.seed,
                            max_stride=args.max_stride, exclusions=exclusions, limit_bytes=limit)
        print(f"wrote {args.out}: {args.windows} windows of 9x{args.crop}x{args.crop}")
        return 0
    # the estimator exactly as PerVFI (the model these packs train) runs it at inference
    config = PerVFIConfig()
    estimator = MotionEstimator(resolve_motion(args.motion), config.dis_preset, 0, config.dis_global_motion)
    with tqdm(total=args.pairs + args.synthetic, desc="pack", unit="pair", disable=args.quiet,
              file=sys.stderr) as bar:
        info = pack_motion_crops(sources, args.out, estimator, crop=args.crop, pairs=args.pairs,
                                 crops_per_pair=args.crops_per_pair, gaps=args.gaps, synthetic=args.synthetic,
                                 max_side=config.dis_max_side, seed=args.seed, limit_bytes=(args.limit_mib or 1024) * 2**20,
                                 progress=lambda done, total: bar.update(done - bar.n),
                                 device=resolve_device(args.device))
    print(f"wrote {args.out}: {info['items']} items of {args.crop}x{args.crop} from {len(info['sources'])} "
          f"sources; mean motion {info['mean_motion_px']:.1f} px, occluded {100 * info['mean_occluded']:.1f}%")
    print(json.dumps({k: info[k] for k in ("estimator", "gaps", "scoring")}))
    return 0
