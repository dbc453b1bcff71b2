"""What every training recipe shares (:mod:`vfi_core.train.recipes`)."""
from __future__ import annotations

import copy
from dataclasses import asdict, is_dataclass
from pathlib import Path

from torch import nn


def _jsonable(value):
    """Dataclasses as dicts and tuples as lists, as a config's JSON holds them."""
    if is_dataclass(value):
        value = asdict(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def add_crop_flows(batch: dict) -> dict:
    """``batch`` with ``"flows"`` ``(B,4,H,W)`` (``F01, F10`` in pixels of the crop, between
    ``frames[:, 1]`` and ``frames[:, 2]``): a motion pack's own where the batch has them, else DIS
    (medium, from the dominant translation) on the crops, for recipes that train on the core's motion."""
    from ..ops.flow import full_dis

    if "flows" in batch:
        return batch
    frames = batch["frames"]
    return {**batch, "flows": full_dis(frames[:, 1], frames[:, 2])}


class NetworkRecipe:
    """A recipe around one trainable network whose ``__init__`` takes its config as a JSON dict and
    whose ``config`` has ``to_dict`` (:class:`~vfi_core.config.ModelConfig`).

    Subclasses give :meth:`network_class` (imported there, so that importing the recipes stays cheap).
    """

    log_extras: tuple[str, ...] = ()  # further columns of log.csv that step_loss's third result fills

    def network_class(self) -> type[nn.Module]:
        raise NotImplementedError

    def export(self, weights: dict, architecture: dict) -> tuple[dict, dict, int | None]:
        """The weights, the architecture record and the parameter count ``vfi export`` ships (default:
        the trained network's, count None; a recipe that trains helpers beside the model, e.g. a
        discriminator, leaves them out here and counts what is left)."""
        return weights, architecture, None

    def card_extras(self, config: dict) -> dict:
        """Further entries of the model card ``vfi export`` writes, from the run's ``config`` (default:
        none; e.g. the other weight file a model needs beside its own)."""
        return {}

    def loss_config(self, weights: dict):
        """The loss section of a config as the recipe's loss-settings dataclass (defaults filled in)."""
        raise NotImplementedError

    def canonical(self, config: dict) -> dict:
        """``config`` (as :func:`~vfi_core.train.trainer.load_config` returns it) with its architecture
        and loss spelled out in full, every default written: two configs that train the same are equal."""
        out = copy.deepcopy(config)
        out["architecture"] = _jsonable(self.build(config["architecture"]).config.to_dict())
        out["loss"] = _jsonable(self.loss_config(config["loss"]))
        return out

    def build(self, architecture: dict) -> nn.Module:
        """The network for a config's ``architecture`` section (unknown keys are an ``InputError``)."""
        return self.network_class()(architecture)

    def architecture(self, net: nn.Module) -> dict:
        """The model card's record of ``net``: its class and config."""
        return {"class": type(net).__name__, "config": net.config.to_dict()}

    def weight_stem(self) -> str:
        """The stem of the shipped weight file (``vfi export``'s default name): the model's declared file."""
        from ..registry import get_descriptor
        return Path(get_descriptor(self.name).weight_file).stem

    def load_exported(self, path: Path):
        """The interpolator of exported weights at ``path`` on the CPU (``vfi export --bench``)."""
        from .. import registry
        return registry.load(self.name, device="cpu", weights=path)
