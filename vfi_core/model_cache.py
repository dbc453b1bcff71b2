"""The loaded interpolators the front ends share (the web app, the ComfyUI nodes): one cache in the core.

:class:`ModelCache` keeps the last ``capacity`` interpolators, each under what it was loaded from:
model, weight file (with its modification time, so a re-exported file is reloaded), weight folders,
device and dtype. Parameters are not part of the key: they are applied to the cached model for
each use. An interpolator keeps per-pair state (the motion of the last pair), so :meth:`ModelCache.use`
holds the model's lock while a job runs: two jobs with the same model take turns; jobs with different
models run side by side. :meth:`ModelCache.clear` drops everything (ComfyUI's "free memory").
"""
from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from . import registry
from .device import resolve_device


class ModelCache:
    """Loaded interpolators by what they were loaded from (see the module docstring).

    Args:
        capacity: how many interpolators stay loaded (the least recently used one goes first).
    """

    def __init__(self, capacity: int = 2):
        self.capacity = capacity
        self._models: OrderedDict[tuple, tuple] = OrderedDict()  # key -> (interpolator, lock)
        self._lock = threading.Lock()

    @staticmethod
    def _key(name: str, weights, device, dtype, weight_dirs) -> tuple:
        descriptor = registry.get_descriptor(name)
        # the file the model would load: a weight file put in place (or removed) is noticed
        weights = Path(weights) if weights is not None else descriptor.weights_path(tuple(Path(d) for d in weight_dirs))
        mtime = weights.stat().st_mtime_ns if weights is not None and weights.is_file() else None
        return (descriptor.name, str(weights), mtime, str(resolve_device(device)), str(dtype),
                tuple(str(d) for d in weight_dirs))

    def _entry(self, name, weights=None, device=None, dtype=None, weight_dirs=()) -> tuple:
        name = getattr(name, "name", name)  # a name or its descriptor
        key = self._key(name, weights, device, dtype, weight_dirs)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        # loaded outside the cache's lock (seconds); a second loader of the same key keeps the first
        model = registry.load(name, device=device, dtype=dtype, weights=weights, weight_dirs=tuple(weight_dirs))
        with self._lock:
            entry = self._models.setdefault(key, (model, threading.Lock()))
            self._models.move_to_end(key)
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
            return entry

    def get(self, name, weights=None, device=None, dtype=None, weight_dirs=()):
        """The interpolator ``name`` (or its descriptor; default parameters when new), loaded if it is
        not cached."""
        return self._entry(name, weights, device, dtype, weight_dirs)[0]

    @contextmanager
    def use(self, name: str, params: dict | None = None, *, weights=None, device=None, dtype=None,
            weight_dirs=()) -> Iterator:
        """``with cache.use(name, params) as model:`` the cached interpolator with ``params`` (checked
        against its declarations) for the length of the block, which no other user of it enters."""
        model, lock = self._entry(name, weights, device, dtype, weight_dirs)
        with lock:
            model.set_params(**model.descriptor.resolve_params(params or {}))
            yield model

    def clear(self) -> int:
        """Drop every cached interpolator and return the memory it held; returns how many went."""
        with self._lock:
            count = len(self._models)
            self._models.clear()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return count

    def __len__(self) -> int:
        return len(self._models)


# The process's cache: what the app and the nodes use.
MODELS = ModelCache()
