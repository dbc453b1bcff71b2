"""Options shared by the subcommands that run a model: choosing it and setting its parameters."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ParameterError

MAX_SEED = 2**63 - 1  # the largest seed torch's generators take


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to {MAX_SEED} (2**63-1), got {text!r}")
    return value


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="interpolator name (see `vfi models`; default: the suite's default)")
    parser.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE",
                        help="set a model parameter declared in `vfi models`, e.g. -p asymmetry=0.8 (repeatable)")
    parser.add_argument("--weights", default=None, help="explicit .safetensors weight file for the model")
    parser.add_argument("--weight-dir", action="append", default=[], metavar="DIR",
                        help="folder searched before the shipped weights for the model's weight file and the "
                             "detail-restoration stage's (refine.safetensors); repeatable")
    parser.add_argument("--device", default=None, help="auto (default: CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    parser.add_argument("--half", action="store_true", help="half precision (models that support it)")
    parser.add_argument("--seed", type=_seed, default=None, help="seed for stochastic models (reproducible output)")


def parse_params(pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ParameterError(f"--param expects NAME=VALUE, got {pair!r}")
        params[name.strip()] = value.strip()
    return params


def load_model(args: argparse.Namespace):
    """Load the model the options name, with a seed when the model declares one."""
    from .. import registry

    params = parse_params(args.param)
    desc = registry.get_descriptor(args.model or registry.default_model_name())
    if args.seed is not None:
        if any(p.name == "seed" for p in desc.params):
            params["seed"] = args.seed
        else:
            import torch
            torch.manual_seed(args.seed)
    return registry.load(desc.name, device=args.device, dtype="float16" if args.half else None,
                         weights=args.weights, weight_dirs=tuple(Path(d) for d in args.weight_dir), **params)
