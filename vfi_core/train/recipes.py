"""Finding a model's training recipe. Each model family declares its recipe where it registers
(``ModelDescriptor.recipe``, or :func:`~vfi_core.registry.register_trainable` for a shared stage);
the recipe lives with the family (``vfi_core/models/<family>/recipe.py``), and the trainer stays generic."""
from __future__ import annotations

import functools
import importlib

from torch import nn

from .. import registry
from ..errors import InputError


@functools.cache
def get_recipe(model: str):
    """The recipe instance for ``model`` (one per process)."""
    recipes = registry.trainable()
    if model not in recipes:
        raise InputError(f"model {model!r} cannot be trained here; trainable: {', '.join(sorted(recipes))}")
    module, _, name = recipes[model].partition(":")
    return getattr(importlib.import_module(module), name)()


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
