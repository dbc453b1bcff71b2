"""Resumable training state in a run directory: ``state.safetensors`` + ``state.json`` (no pickle).

``state.safetensors`` holds the tensors: ``model.*`` (weights), ``ema.*`` (EMA weights),
``optim.<param index>.<name>`` (optimizer state), ``rng.torch`` and ``rng.cuda.<i>`` (generator
states); its metadata carries the step. ``state.json`` holds the rest: step, optimizer param
groups, grad-scaler state, cumulative wall time, the commands, data and hardware of every session.
Both are written to temporary files and renamed, the JSON last; a checkpoint whose two files
disagree on the step is refused.

Beside it, ``resume.safetensors`` + ``resume.json`` form the light state: the weights and EMA
weights in float16 and the same JSON without the optimizer (about 4 bytes per parameter in all).
A run that spans machines keeps only these (they are small enough to commit); resuming from them
restores the weights, the step (so the schedule and the batch stream continue) and the history,
and starts a fresh optimizer (:class:`~vfi_core.train.trainer.Trainer` warms its rate up again).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..errors import InputError
from ..files import save_safetensors

STATE_TENSORS, STATE_JSON = "state.safetensors", "state.json"
LIGHT_TENSORS, LIGHT_JSON = "resume.safetensors", "resume.json"


def save_checkpoint(run_dir: Path, step: int, model: torch.nn.Module, ema: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, info: dict) -> None:
    """Write the state after ``step`` optimizer steps; ``info`` is stored in the JSON as is."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    opt = optimizer.state_dict()
    keys = {}
    for index, state in opt["state"].items():
        keys[str(index)] = sorted(state)
        for name, value in state.items():
            tensors[f"optim.{index}.{name}"] = torch.as_tensor(value)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    light = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()
             if k.startswith(("model.", "ema."))}
    run_dir.mkdir(parents=True, exist_ok=True)
    for name, json_name, payload, record in (
            (STATE_TENSORS, STATE_JSON, tensors,
             {**info, "step": step, "param_groups": opt["param_groups"], "optim_state_keys": keys}),
            (LIGHT_TENSORS, LIGHT_JSON, light, {**info, "step": step})):
        tmp_json = run_dir / f"{json_name}.tmp"
        tmp_json.write_text(json.dumps(record, indent=1) + "\n")
        save_safetensors(payload, run_dir / name, metadata={"step": str(step)})  # temp file, then rename
        os.replace(tmp_json, run_dir / json_name)


def has_checkpoint(run_dir: Path) -> bool:
    """A full or a light checkpoint."""
    return ((run_dir / STATE_JSON).is_file() and (run_dir / STATE_TENSORS).is_file()) or \
        ((run_dir / LIGHT_JSON).is_file() and (run_dir / LIGHT_TENSORS).is_file())


def read_checkpoint(run_dir: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(info, tensors)`` of the run directory's checkpoint; :class:`InputError` if missing or torn.

    The full checkpoint when present, else the light one (``info["light"]`` true, tensors in float32).
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    if not run_dir.is_dir():
        raise InputError(f"run directory {run_dir} does not exist: nothing to resume")
    if not has_checkpoint(run_dir):
        raise InputError(f"run directory {run_dir} holds no checkpoint ({STATE_JSON} + {STATE_TENSORS}, "
                         f"or {LIGHT_JSON} + {LIGHT_TENSORS})")
    light = not ((run_dir / STATE_JSON).is_file() and (run_dir / STATE_TENSORS).is_file())
    names = (LIGHT_JSON, LIGHT_TENSORS) if light else (STATE_JSON, STATE_TENSORS)
    info = json.loads((run_dir / names[0]).read_text())
    with safe_open(str(run_dir / names[1]), "pt") as handle:
        step = (handle.metadata() or {}).get("step")
    if step != str(info["step"]):
        raise InputError(f"checkpoint in {run_dir} is inconsistent (tensors at step {step}, JSON at {info['step']})")
    tensors = load_file(str(run_dir / names[1]), device="cpu")
    if light:
        tensors = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    return {**info, "light": light}, tensors


def restore(tensors: dict[str, torch.Tensor], info: dict, model: torch.nn.Module, ema: torch.nn.Module,
            optimizer: torch.optim.Optimizer) -> None:
    """Load weights, EMA, optimizer and generator states saved by :func:`save_checkpoint` (a light
    checkpoint: weights and EMA only; the optimizer stays as it is)."""
    def part(prefix: str) -> dict:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    model.load_state_dict(part("model."))
    ema.load_state_dict(part("ema."))
    if info.get("light"):
        return
    state = {int(i): {name: tensors[f"optim.{i}.{name}"] for name in names}
             for i, names in info["optim_state_keys"].items()}
    optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
