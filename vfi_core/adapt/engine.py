"""Per-clip adaptation: fine-tune a model's low-rank adapters on windows of the clip it will interpolate.

An interpolator that supports it returns an :class:`Adaptation` from ``adaptation()``: the network
to adapt, the layers that take adapters, the window length it learns from and the loss of one batch
of windows. :func:`adapt` copies the network (the loaded model, which front ends share, is never
changed), attaches :func:`~vfi_core.adapt.lora.add_lora` adapters, trains only them on the clip's
own windows (:func:`~vfi_core.adapt.windows.collect_windows`), and returns a new interpolator on the
adapted network with the :class:`Adapter` that reproduces it (:meth:`Adapter.save`, :func:`apply_adapter`).

The user-facing options are declared once in :data:`ADAPT_PARAMS`; the CLI, the ComfyUI node and
the app build their controls from it.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from ..cancellation import cancellable, check_cancelled
from ..errors import InputError, WeightsError
from ..registry import Param
from .lora import add_lora, load_lora_state, lora_modules, lora_parameters, lora_state
from .windows import ClipWindows

ADAPTER_FORMAT = "vfi-adapter/1"
MAX_ADAPT_STEPS = 5000
ADAPT_PARAMS = (
    Param("adapt", int, 0, "Adapt the model to this clip first: steps of fine-tuning on the clip's own frames "
          "(known frames predicted from their neighbours); 0 is off.",
          min=0, max=MAX_ADAPT_STEPS, step=10),
    Param("adapt_rate", float, 1e-3, "Learning rate of the adaptation.", min=1e-6, max=1e-1, step=1e-4),
    Param("adapt_rank", int, 4, "Rank of the low-rank adapters: more can learn more from the clip.",
          min=1, max=32, step=1),
)
BATCH_WINDOWS = 4  # windows per adaptation step


def adapt_param(name: str) -> Param:
    """The declaration of one adaptation option (:data:`ADAPT_PARAMS`)."""
    return next(p for p in ADAPT_PARAMS if p.name == name)


@dataclass(frozen=True)
class Adaptation:
    """What an interpolator offers for per-clip adaptation.

    Attributes:
        network: the interpolator's network (copied before it is adapted, never changed).
        targets: names of the layers (or of modules holding them) that take low-rank adapters.
        span: frames per training window.
        loss: ``loss(network, runs, aux, rng, progress) -> scalar``: the self-supervised loss of a
            batch of windows ``runs`` ``(B, span, 3, h, w)`` float in [0,1] on the model's device, with
            their ``aux`` (see ``prepare``; None without), ``progress`` the share of the adaptation
            done, in [0, 1] (for a curriculum).
        rebuild: ``rebuild(network) -> Interpolator``: the same interpolator, parameters and all, on
            another network.
        prepare: ``prepare(runs) -> (B, ...)``: what the loss needs of each window that does not
            change while adapting (e.g. the motion between two of its frames), computed once per
            window before the first step; None if nothing.
        augment: ``augment(aux, flip, reverse) -> aux``: ``aux`` as the windows see it when mirrored
            left-right (``flip``, ``(B,)`` bool) and played backwards (``reverse``).
        resize: ``resize(frame) -> frame``: the scale the network works at, applied to each
            ``(1,3,H,W)`` frame before windows are cut (None: the clip's own size).
        crop: side of the windows' square crops (None: what the caller asks for).
    """

    network: nn.Module
    targets: tuple[str, ...]
    span: int
    loss: Callable[[nn.Module, torch.Tensor, torch.Tensor | None, np.random.Generator, float], torch.Tensor]
    rebuild: Callable[[nn.Module], object]
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None
    augment: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    resize: Callable[[torch.Tensor], torch.Tensor] | None = None
    crop: int | None = None


def network_fingerprint(network: nn.Module) -> str:
    """sha256 (hex, 16 digits) of a network's state: which weights an adapter was made for."""
    digest = hashlib.sha256()
    for name, tensor in sorted(network.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class Adapter:
    """The low-rank adapters of one model adapted to one clip.

    Attributes:
        model: the interpolator's name.
        base: :func:`network_fingerprint` of the weights it was trained on.
        rank, targets: how the adapters were attached (:func:`~vfi_core.adapt.lora.add_lora`).
        state: the adapters' tensors (:func:`~vfi_core.adapt.lora.lora_state`).
        steps: adaptation steps behind it, in all.
        losses: the mean loss of each stretch of steps (what the report shows), oldest first.
    """

    model: str
    base: str
    rank: int
    targets: tuple[str, ...]
    state: dict[str, torch.Tensor]
    steps: int = 0
    losses: list[float] = field(default_factory=list)

    def save(self, path: str | Path) -> Path:
        """Write a ``.safetensors`` adapter file (a temporary name, then renamed: nothing half-written)."""
        from safetensors.torch import save_file

        path = Path(path)
        if path.suffix != ".safetensors":
            raise InputError(f"an adapter file ends in .safetensors, got {path.name}")
        meta = {"format": ADAPTER_FORMAT, "model": self.model, "base": self.base, "rank": str(self.rank),
                "targets": json.dumps(list(self.targets)), "steps": str(self.steps)}
        partial = path.with_name(f".{path.name}.partial")
        try:
            save_file(self.state, str(partial), metadata=meta)
            os.replace(partial, path)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise InputError(f"cannot write the adapter {path}: {exc.strerror or exc}") from None
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Adapter":
        """Read an adapter file written by :meth:`save`; a one-line :class:`WeightsError` otherwise."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"adapter file {path} does not exist")
        if path.suffix != ".safetensors":
            raise WeightsError(f"{path.name}: an adapter file ends in .safetensors")
        try:
            with safe_open(str(path), "pt", device="cpu") as file:
                meta = file.metadata() or {}
                state = {key: file.get_tensor(key) for key in file.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"adapter file {path} is corrupt or unreadable: {exc}") from None
        if meta.get("format") != ADAPTER_FORMAT:
            raise WeightsError(f"{path.name} is not an adapter file (saved by --save-adapter)")
        try:
            return cls(meta["model"], meta["base"], int(meta["rank"]), tuple(json.loads(meta["targets"])),
                       state, int(meta.get("steps", 0)))
        except (KeyError, ValueError) as exc:
            raise WeightsError(f"adapter file {path.name} has a damaged header ({exc})") from None


def adaptation_of(model) -> Adaptation:
    """``model.adaptation()``, or a one-line :class:`InputError` naming the models that adapt."""
    get = getattr(model, "adaptation", None)
    spec = get() if get is not None else None
    if spec is None:
        from .. import registry

        able = [d.name for d in registry.list_models() if d.adaptable]
        raise InputError(f"model {model.name!r} cannot adapt to a clip; models that can: {', '.join(able)}")
    return spec


def _adapted_copy(spec: Adaptation, rank: int, targets: tuple[str, ...]) -> nn.Module:
    network = copy.deepcopy(spec.network)
    add_lora(network, targets, rank)
    return network


def _merged(network: nn.Module) -> nn.Module:
    """A copy of ``network`` with every adapter folded into its layer's weight (inference as fast as
    the base network's)."""
    merged = copy.deepcopy(network)
    for name in lora_modules(merged):
        parametrize.remove_parametrizations(merged.get_submodule(name), "weight", leave_parametrized=True)
    for parameter in merged.parameters():
        parameter.requires_grad_(False)
    return merged.eval()


def apply_adapter(model, adapter: Adapter):
    """A new interpolator: ``model`` with ``adapter`` folded into its network (``model`` is unchanged).
    Raises :class:`WeightsError` when the adapter was made for another model or other weights."""
    spec = adaptation_of(model)
    if adapter.model != model.name:
        raise WeightsError(f"the adapter was made for model {adapter.model!r}, not {model.name!r}")
    if adapter.base != network_fingerprint(spec.network):
        raise WeightsError(f"the adapter was made for other {model.name} weights than the ones loaded; "
                           "adapt again with these weights")
    with torch.inference_mode(False):
        network = _adapted_copy(spec, adapter.rank, adapter.targets)
        try:
            load_lora_state(network, adapter.state)
        except InputError as exc:
            raise WeightsError(str(exc)) from None
        return spec.rebuild(_merged(network))


@dataclass
class AdaptResult:
    """What :func:`adapt` returns: the adapted interpolator, its adapter and the time it took."""

    model: object
    adapter: Adapter
    seconds: float


def adapt(model, windows: ClipWindows, steps: int, rate: float | None = None, rank: int | None = None, *,
          start: Adapter | None = None, batch_size: int = BATCH_WINDOWS, seed: int = 0,
          progress: Callable[[int, int], None] | None = None,
          cancel: Callable[[], bool] | None = None) -> AdaptResult:
    """Fine-tune ``model``'s adapters on ``windows`` for ``steps`` steps.

    Args:
        model: an interpolator whose ``adaptation()`` is not None (``model`` itself is not changed).
        windows: from :func:`~vfi_core.adapt.windows.collect_windows` with the model's ``span``.
        steps, rate, rank: the :data:`ADAPT_PARAMS` (``None``: the declared default).
        start: continue from this adapter (its rank and layers) instead of fresh adapters.
        batch_size: windows per step.
        seed: seeds the batches and the fresh adapters.
        progress: ``progress(step, steps)`` after every step (and ``progress(0, steps)`` once the
            windows are prepared).
        cancel: polled between steps (and inside the model's loss); true raises
            :class:`~vfi_core.errors.Cancelled`.
    Returns:
        :class:`AdaptResult`; the adapted interpolator runs as fast as ``model``.
    """
    steps = adapt_param("adapt").validate(steps)
    rate = adapt_param("adapt_rate").validate(adapt_param("adapt_rate").default if rate is None else rate)
    rank = adapt_param("adapt_rank").validate(adapt_param("adapt_rank").default if rank is None else rank)
    spec = adaptation_of(model)
    if windows.span != spec.span:
        raise InputError(f"model {model.name!r} adapts on windows of {spec.span} frames, got {windows.span}")
    base = network_fingerprint(spec.network)
    if start is not None and (start.model != model.name or start.base != base):
        raise WeightsError("the adapter to continue from was made for another model or other weights")
    began = time.perf_counter()
    rng = np.random.default_rng(seed)
    device = next(spec.network.parameters()).device
    losses: list[float] = []
    with torch.inference_mode(False), torch.enable_grad(), cancellable(cancel):
        aux = None
        if spec.prepare is not None and steps:
            with torch.no_grad():
                parts = []
                for first in range(0, len(windows), batch_size):
                    check_cancelled()
                    parts.append(spec.prepare(windows.batch(range(first, min(first + batch_size, len(windows))))
                                              .to(device)))
                aux = torch.cat(parts)
        if progress is not None:
            progress(0, steps)
        torch.manual_seed(seed)
        rank_used, targets = (start.rank, start.targets) if start is not None else (rank, spec.targets)
        network = _adapted_copy(spec, rank_used, targets)
        if start is not None:
            load_lora_state(network, start.state)
        network.train()
        params = lora_parameters(network)
        optimizer = torch.optim.Adam(params, lr=rate)
        stretch = []
        for step in range(1, steps + 1):
            check_cancelled()
            picks = rng.integers(0, len(windows), size=batch_size)
            flip = torch.from_numpy(rng.random(batch_size) < 0.5)
            reverse = torch.from_numpy(rng.random(batch_size) < 0.5)
            runs = windows.batch(picks, flip, reverse).to(device)
            picked = None
            if aux is not None:
                picked = aux[torch.from_numpy(picks).to(aux.device)]
                if spec.augment is not None:
                    picked = spec.augment(picked, flip.to(aux.device), reverse.to(aux.device))
            loss = spec.loss(network, runs, picked, rng, (step - 1) / max(1, steps - 1))
            if not bool(torch.isfinite(loss)):
                raise InputError("the adaptation diverged (the loss is not finite); lower adapt_rate")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            stretch.append(float(loss.detach()))
            if len(stretch) == 50 or step == steps:
                losses.append(float(np.mean(stretch)))
                stretch = []
            if progress is not None:
                progress(step, steps)
        network.eval()
        adapter = Adapter(model.name, base, rank_used, tuple(targets), lora_state(network),
                          steps + (start.steps if start is not None else 0),
                          (start.losses if start is not None else []) + losses)
        adapted = spec.rebuild(_merged(network))
    return AdaptResult(adapted, adapter, time.perf_counter() - began)


def adapt_to_frames(model, frames, steps: int, rate: float | None = None, rank: int | None = None, *,
                    start: Adapter | None = None, capacity: int = 48, crop: int = 256, seed: int = 0,
                    reading: Callable[[int], None] | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    cancel: Callable[[], bool] | None = None) -> AdaptResult:
    """:func:`adapt` on windows of ``frames`` (``(1,3,H,W)`` float RGB in [0,1], in order, e.g. a
    reader's frames; read once, streaming): :func:`~vfi_core.adapt.windows.collect_windows` with the
    model's window length, ``capacity`` and ``crop`` (the model's own ``crop`` and ``resize`` where it
    declares them); ``reading(n)`` after each frame read."""
    from .windows import collect_windows

    spec = adaptation_of(model)
    if spec.resize is not None:
        frames = (spec.resize(frame if frame.ndim == 4 else frame[None]) for frame in frames)
    with cancellable(cancel):
        windows = collect_windows(frames, spec.span, capacity=capacity, crop=spec.crop or crop, seed=seed,
                                  progress=reading)
    return adapt(model, windows, steps, rate, rank, start=start, seed=seed, progress=progress, cancel=cancel)
