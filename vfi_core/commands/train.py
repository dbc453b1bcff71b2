"""`vfi train`: train a model, the same command on CPU and GPU (AMP on CUDA).

  vfi train MODEL --config configs/X.json --data SPEC [--data SPEC ...] [--run-dir runs/NAME] [--resume]
            [--init-from-shipped | --init-from FILE] [--steps N] [--workers N] [--device auto|cpu|cuda]
            [--shared DIR]

SPEC: `synthetic`, a crop pack (.npz from `vfi_core.data.pack_training_crops`), a video or a folder of
frames. Video and folder specs need --shared DIR: the folder holding data/dev/triplets.csv, whose
frames (the dev benchmark's) training must exclude. Ctrl-C saves a checkpoint;
the same command with --resume continues from it. See docs/TRAINING.md.
"""
from __future__ import annotations

import argparse
import shlex
import sys


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model (resumable; CPU or GPU)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="the model to train (a model that cannot be trained says which can)")
    p.add_argument("--config", required=True, help="JSON training config (see configs/)")
    p.add_argument("--data", action="append", required=True, metavar="SPEC",
                   help="training data: synthetic, a .npz crop pack, a video or a folder (repeatable)")
    p.add_argument("--run-dir", help="run directory for checkpoints and logs (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its checkpoint")
    init = p.add_mutually_exclusive_group()
    init.add_argument("--init-from-shipped", action="store_true",
                      help="start from the committed weights in vfi_core/weights (a new run)")
    init.add_argument("--init-from", metavar="FILE", help="start from this exported .safetensors (with its .json card); "
                      "the config's architecture may differ only where no tensor changes shape")
    p.add_argument("--steps", type=int, help="override the config's optim.steps (e.g. to extend a run)")
    p.add_argument("--workers", type=int, help="processes making batches ahead of the GPU (overrides data.workers; "
                   "0 makes them in the training process)")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--shared", metavar="DIR", default=None,
                   help="the folder holding data/dev/triplets.csv, whose frames training must exclude; "
                   "needed only for video and folder data")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args) -> int:
    from .. import registry
    from ..train import Trainer
    from ..weights import find_weights

    init_from = args.init_from
    if args.init_from_shipped:
        init_from = find_weights(registry.get_descriptor(args.model), None, ())
    trainer = Trainer(args.model, args.config, args.data, run_dir=args.run_dir, resume=args.resume,
                      init_from=init_from, device=args.device, steps=args.steps, workers=args.workers,
                      shared_dir=args.shared,
                      command=shlex.join(["vfi", *sys.argv[1:]]), show_progress=not args.quiet)
    row = trainer.train()
    dev = trainer.dev_log.rows[-1] if trainer.dev_log.rows else None
    print(f"trained {args.model} to step {trainer.step} in {trainer.run_dir}: loss {row.get('loss', float('nan')):.4f}"
          + (f", dev PSNR {float(dev['dev_psnr']):.2f} dB (step {dev['step']})" if dev else ""))
    print(f"export with: vfi export {trainer.run_dir}")
    return 0
