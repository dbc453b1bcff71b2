"""Finding and reading weight files: safetensors only, with the JSON model card beside them."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .errors import WeightsError


def find_weights(descriptor, explicit: str | Path | None, search_dirs: tuple[Path, ...]) -> Path:
    """The weight file for ``descriptor``: ``explicit`` if given, else the first found in
    ``search_dirs`` then ``vfi_core/weights``. Raises :class:`WeightsError` when there is none."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise WeightsError(f"weight file {path} does not exist")
        return path
    path = descriptor.weights_path(tuple(Path(d) for d in search_dirs))
    if path is None:
        raise WeightsError(f"model {descriptor.name!r} needs {descriptor.weight_file}, which is not in "
                           f"vfi_core/weights/ (train and export it with `vfi train` / `vfi export`)")
    return path


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file into a CPU state dict; a clear error if it is not one."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise WeightsError(f"{path.name}: only .safetensors weight files are loaded")
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"weight file {path} is corrupt or unreadable: {exc}") from None
    bad = [name for name, tensor in state.items()
           if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        raise WeightsError(f"weight file {path.name} holds NaN or infinite values ({len(bad)} of its {len(state)} "
                           "tensors), so every output would be garbage; re-export the weights from a training run "
                           "that did not diverge, or use the shipped ones")
    return state


def read_model_card(path: str | Path) -> dict:
    """The JSON model card beside a weight file (``x.safetensors`` -> ``x.json``), ``{}`` if none."""
    card = Path(path).with_suffix(".json")
    if not card.is_file():
        return {}
    try:
        return json.loads(card.read_text())
    except json.JSONDecodeError as exc:
        raise WeightsError(f"model card {card} is not valid JSON: {exc}") from None


def load_network(path: str | Path, network_class, config_class, device: torch.device, dtype: torch.dtype):
    """Build ``network_class(config_class.from_dict(card config))`` from a weight file and the
    ``architecture`` of its model card (written by ``vfi export``), load the weights, and return it
    in eval mode on ``device``/``dtype``. :class:`WeightsError` when card and weights disagree."""
    card = read_model_card(path)
    arch = card.get("architecture", {})
    name = network_class.__name__
    if arch.get("class") != name or "config" not in arch:
        raise WeightsError(f"{path}: its model card (the .json beside it) does not describe the {name} "
                           "architecture; export weights with `vfi export`")
    net = network_class(config_class.from_dict(arch["config"]))
    state = load_state_dict(path)
    mismatch = state_dict_mismatch(net.state_dict(), state)
    if mismatch:
        raise WeightsError(f"{Path(path).name} does not match the {name} its model card describes: {mismatch}; "
                           "re-export the weights with `vfi export`, or restore the card written with them")
    net.load_state_dict({k: v.float() for k, v in state.items()})
    return net.to(device=device, dtype=dtype).eval()


def state_dict_mismatch(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor], shown: int = 3) -> str:
    """What keeps ``given`` from loading into a network whose state dict is ``expected``, in one line
    (missing tensors, unexpected ones, shapes that differ; the first ``shown`` of each); "" if it fits."""
    def some(names):
        names = sorted(names)
        return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")

    missing = expected.keys() - given.keys()
    unexpected = given.keys() - expected.keys()
    shapes = [f"{k} {tuple(given[k].shape)} instead of {tuple(expected[k].shape)}"
              for k in sorted(expected.keys() & given.keys()) if given[k].shape != expected[k].shape]
    parts = []
    if missing:
        parts.append(f"{len(missing)} tensor(s) missing ({some(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({some(unexpected)})")
    if shapes:
        parts.append(f"{len(shapes)} of another shape ({'; '.join(shapes[:shown])}"
                     + (f"; and {len(shapes) - shown} more" if len(shapes) > shown else "") + ")")
    return ", ".join(parts)
