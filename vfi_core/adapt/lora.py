"""Low-rank adapters (LoRA) on the convolutions and linear layers of a network.

A layer's weight ``W`` becomes ``W + (alpha / rank) * up @ down`` through a
:mod:`torch.nn.utils.parametrize` parametrization: ``down`` reads the layer's whole input window
(``rank x (C_in * k_h * k_w)``), ``up`` maps the ``rank`` channels to the outputs (``C_out x rank``)
and starts at zero, so a freshly adapted network computes exactly what the base network does.
Only ``down`` and ``up`` train; the base weights stay frozen and untouched in memory.

Functional helpers: :func:`add_lora` attaches adapters to named layers, :func:`lora_state` and
:func:`load_lora_state` read and write their tensors (what an adapter file holds), :func:`lora_parameters`
lists what an optimiser trains.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..errors import InputError

ADAPTABLE_LAYERS = (nn.Conv2d, nn.Conv3d, nn.Linear)


class LowRankDelta(nn.Module):
    """Parametrization ``W -> W + scale * (up @ down).view_as(W)`` of a weight of shape
    ``(C_out, C_in, *kernel)`` (a convolution's) or ``(C_out, C_in)`` (a linear layer's).

    Args:
        shape: the weight's shape.
        rank: the adapter's rank (at least 1, at most ``min(C_out, C_in * prod(kernel))``).
        alpha: the delta is scaled by ``alpha / rank``, so the learning rate need not change with rank.
    """

    def __init__(self, shape: torch.Size | tuple[int, ...], rank: int, alpha: float = 1.0):
        super().__init__()
        fan_out, fan_in = shape[0], math.prod(shape[1:])
        if not 1 <= rank <= min(fan_out, fan_in):
            raise InputError(f"adapter rank must lie in [1, {min(fan_out, fan_in)}] for a layer of weight "
                             f"{tuple(shape)}, got {rank}")
        self.shape = tuple(shape)
        self.scale = alpha / rank
        self.down = nn.Parameter(torch.empty(rank, fan_in))
        self.up = nn.Parameter(torch.zeros(fan_out, rank))
        nn.init.kaiming_uniform_(self.down, a=math.sqrt(5))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        delta = (self.up @ self.down).view(self.shape)
        return weight + self.scale * delta.to(weight.dtype)


def _layers(network: nn.Module) -> dict[str, nn.Module]:
    return {name: module for name, module in network.named_modules() if isinstance(module, ADAPTABLE_LAYERS)}


def add_lora(network: nn.Module, targets: tuple[str, ...], rank: int, alpha: float = 1.0) -> list[str]:
    """Attach a :class:`LowRankDelta` to every convolution or linear layer whose name is one of
    ``targets`` or lies under one (``"heads"`` takes every layer in ``network.heads``); freeze every
    other parameter. Returns the adapted layers' names, in order. Raises :class:`InputError` when a
    target names no such layer.
    """
    layers = _layers(network)
    chosen = [name for name in layers if any(name == t or name.startswith(t + ".") for t in targets)]
    missing = [t for t in targets if not any(n == t or n.startswith(t + ".") for n in chosen)]
    if missing:
        raise InputError(f"no convolution or linear layer under {', '.join(missing)} in "
                         f"{type(network).__name__}")
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    for name in chosen:
        layer = layers[name]
        delta = LowRankDelta(layer.weight.shape, rank, alpha).to(layer.weight.device)
        parametrize.register_parametrization(layer, "weight", delta)
    return chosen


def lora_modules(network: nn.Module) -> dict[str, LowRankDelta]:
    """The adapters of ``network`` by the name of the layer they adapt."""
    found = {}
    for name, module in network.named_modules():
        if parametrize.is_parametrized(module, "weight"):
            for p in module.parametrizations["weight"]:
                if isinstance(p, LowRankDelta):
                    found[name] = p
    return found


def lora_parameters(network: nn.Module) -> list[nn.Parameter]:
    """The trainable tensors of every adapter in ``network``."""
    return [p for delta in lora_modules(network).values() for p in (delta.down, delta.up)]


def lora_state(network: nn.Module) -> dict[str, torch.Tensor]:
    """``{"<layer>.down": ..., "<layer>.up": ...}``: every adapter's tensors (float32, CPU)."""
    state = {}
    for name, delta in lora_modules(network).items():
        state[f"{name}.down"] = delta.down.detach().float().cpu().contiguous()
        state[f"{name}.up"] = delta.up.detach().float().cpu().contiguous()
    return state


def load_lora_state(network: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy adapter tensors saved by :func:`lora_state` into ``network``'s adapters, which must be the
    same layers with the same shapes; raises :class:`InputError` otherwise."""
    modules = lora_modules(network)
    expected = {f"{n}.{part}" for n in modules for part in ("down", "up")}
    if set(state) != expected:
        extra, missing = sorted(set(state) - expected), sorted(expected - set(state))
        raise InputError("the adapter does not fit this model: "
                         + "; ".join(x for x in (f"unknown layers {extra[:3]}" if extra else "",
                                                 f"missing layers {missing[:3]}" if missing else "") if x))
    with torch.no_grad():
        for name, delta in modules.items():
            for part in ("down", "up"):
                source, target = state[f"{name}.{part}"], getattr(delta, part)
                if source.shape != target.shape:
                    raise InputError(f"the adapter's {name}.{part} has shape {tuple(source.shape)}, this model's "
                                     f"{tuple(target.shape)}: it was made for another configuration")
                target.copy_(source)
