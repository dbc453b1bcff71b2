"""What every training recipe shares (:mod:`vfi_core.train.recipes`)."""
from __future__ import annotations

from pathlib import Path

from torch import nn


class NetworkRecipe:
    """A recipe around one trainable network whose ``__init__`` takes its config as a JSON dict and
    whose ``config`` has ``to_dict`` (:class:`~vfi_core.config.ModelConfig`).

    Subclasses give :meth:`network_class` (imported there, so that importing the recipes stays cheap).
    """

    def network_class(self) -> type[nn.Module]:
        raise NotImplementedError

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
