"""`vfi models`: the registered interpolators, their parameters and whether their weights are present."""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list the interpolators, their parameters and weight status")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..flow import raft_weights
    from ..registry import default_model_name, list_models

    default = default_model_name()
    rows = []
    for desc in list_models():
        info = desc.to_dict()
        path = desc.weights_path()
        info["weights_present"] = desc.weight_file is None or path is not None
        info["default"] = desc.name == default
        rows.append(info)
    raft = raft_weights.status()
    for info in rows:
        if any(p["name"] == "motion" for p in info["params"]):
            info["raft_weights"] = raft
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for info in rows:
        if info["weight_file"] is None:
            weights = "no weights needed"
        else:
            weights = f"weights {info['weight_file']}: {'present' if info['weights_present'] else 'MISSING'}"
        flags = [weights, "any t" if info["arbitrary_t"] else "t=0.5 only",
                 "fp16 ok" if info["supports_half"] else "fp32 only", f"size multiple {info['size_multiple']}"]
        print(f"{info['name']}{' (default)' if info['default'] else ''}: {info['summary']}")
        print(f"    {'; '.join(flags)}")
        for p in info["params"]:
            rng = f"one of {', '.join(p['choices'])}" if "choices" in p else \
                f"{p.get('min')}..{p.get('max')}" if "min" in p else p["type"]
            print(f"    --param {p['name']}=<{p['type']}>  default {p['default']}, {rng}: {p['help']}")
    print("RAFT motion weights (official, BSD-3-Clause): "
          + "; ".join(f"{variant} {state}" for variant, state in raft.items()))
    return 0
