"""Options shared by the subcommands that run a model: choosing it and setting its parameters, the
timing (built from the declared timing options) and the encoder."""
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


def _multiplier(text: str) -> int | tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or a comma list of integers, got {text!r}") from None
    return values[0] if len(values) == 1 else values


def add_timing_options(parser: argparse.ArgumentParser, required: bool, per_pair: bool = True) -> None:
    """``--multiplier``/``--fps`` (one of them; ``required`` or the declared default multiplier),
    ``--scene-threshold``, ``--no-scene-detect``, ``--dedup``, ``--loop``, from
    :data:`vfi_core.pipeline.TIMING_PARAMS`; ``per_pair`` also takes one multiplier per pair."""
    from ..pipeline import timing_param

    declared = {name: timing_param(name) for name in ("multiplier", "target_fps", "scene_threshold", "loop", "dedup")}
    multiplier = declared["multiplier"]
    timing = parser.add_mutually_exclusive_group(required=required)
    timing.add_argument("--multiplier", "-m", type=_multiplier if per_pair else int, metavar="N",
                        help=f"{multiplier.help} {multiplier.min:g}-{multiplier.max:g}" +
                        (", or a comma list with one N per pair" if per_pair else "") +
                        ("" if required else f" (default {multiplier.default})"))
    timing.add_argument("--fps", metavar="F", help=f"{declared['target_fps'].help.split('; 0 ')[0]}: 60, 60000/1001 "
                        f"or 59.94, up to {declared['target_fps'].max:g}")
    parser.add_argument("--scene-threshold", type=float, default=None, metavar="S",
                        help=f"{declared['scene_threshold'].help} (default {declared['scene_threshold'].default:g})")
    parser.add_argument("--no-scene-detect", action="store_true", help="interpolate across every pair, cuts included")
    parser.add_argument("--dedup", action="store_true", help=declared["dedup"].help)
    parser.add_argument("--loop", action="store_true", help=declared["loop"].help)


def timing_from_args(args: argparse.Namespace) -> dict:
    """The :func:`vfi_core.pipeline.timing_options` arguments the timing flags give."""
    from ..pipeline import DEFAULT_SCENE_THRESHOLD, timing_param

    multiplier = args.multiplier if args.multiplier is not None else timing_param("multiplier").default
    return {"multiplier": multiplier, "target_fps": args.fps if args.fps is not None else 0, "loop": args.loop,
            "scene_threshold": None if args.no_scene_detect else
            (DEFAULT_SCENE_THRESHOLD if args.scene_threshold is None else args.scene_threshold),
            "dedup": args.dedup}


def _crf(text: str) -> int:
    """``--crf``: an integer in the widest range an encoder takes (VP9's 0-63); the writer holds
    H.264 to its own 0-51."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value <= 63:
        raise argparse.ArgumentTypeError(f"expected an integer quality, 0-51 for H.264 (.mp4, .mov, .mkv) or "
                                         f"0-63 for VP9 (.webm), got {text!r}")
    return value


def add_encoder_options(parser: argparse.ArgumentParser) -> None:
    """``--crf``, ``--preset`` and ``--no-audio``."""
    parser.add_argument("--crf", type=_crf, default=None, help="quality: H.264 0-51 (default 18), VP9 0-63 (default 30)")
    parser.add_argument("--preset", default=None, help="x264 preset, ultrafast..veryslow (default medium)")
    parser.add_argument("--no-audio", action="store_true", help="leave the source's audio out")


def _steps_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of step counts, e.g. 0,50,200, got {text!r}") from None


def add_adapt_options(parser: argparse.ArgumentParser, several: bool = False) -> None:
    """``--adapt``, ``--adapt-rate``, ``--adapt-rank`` from :data:`vfi_core.adapt.ADAPT_PARAMS`
    (``several``: ``--adapt`` takes a comma list of step counts), and, for a single run, the adapter
    file options ``--adapter`` and ``--save-adapter``."""
    from ..adapt import adapt_param

    steps, rate, rank = (adapt_param(n) for n in ("adapt", "adapt_rate", "adapt_rank"))
    group = parser.add_argument_group("adapting to the clip (models that support it, see `vfi models`)")
    if several:
        group.add_argument("--adapt", type=_steps_list, default=(steps.default,), metavar="N,N,...",
                           help="adaptation steps to compare, e.g. 0,50,200 (0: not adapted)")
    else:
        group.add_argument("--adapt", type=int, default=steps.default, metavar="N",
                           help=f"{steps.help} Up to {steps.max:g}.")
    group.add_argument("--adapt-rate", type=float, default=rate.default, metavar="LR",
                       help=f"{rate.help} (default {rate.default:g})")
    group.add_argument("--adapt-rank", type=int, default=rank.default, metavar="R",
                       help=f"{rank.help} {rank.min:g}-{rank.max:g} (default {rank.default})")
    if not several:
        group.add_argument("--adapter", metavar="FILE", help="apply an adapter saved by --save-adapter "
                           "(with --adapt, adaptation continues from it)")
        group.add_argument("--save-adapter", metavar="FILE", help="save the adapted layers to this .safetensors file "
                           "(reuse with --adapter)")


def adapt_from_args(args: argparse.Namespace) -> dict:
    """The adaptation options the flags give, each checked against its declaration."""
    from ..adapt import adapt_param

    values = {"rate": adapt_param("adapt_rate").validate(args.adapt_rate),
              "rank": adapt_param("adapt_rank").validate(args.adapt_rank)}
    steps = args.adapt if isinstance(args.adapt, tuple) else (args.adapt,)
    values["steps"] = tuple(adapt_param("adapt").validate(n) for n in steps)
    return values
