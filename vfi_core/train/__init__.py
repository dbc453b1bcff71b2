"""Training and export: :class:`Trainer` (``vfi train``), :func:`export_run` (``vfi export``).

- :mod:`~vfi_core.train.trainer`: the loop (AMP on CUDA, gradient clipping, EMA, seeded batches,
  resumable checkpoints, dev evaluation, CSV/PNG/TensorBoard logs);
- :mod:`~vfi_core.train.recipes`: per model, how to build, run and wrap it for training;
- :mod:`~vfi_core.models.svmv.loss`: SVMV's variance-aware supervision;
- :mod:`~vfi_core.train.data`: batches from synthetic scenes, crop packs, video and folders;
- :mod:`~vfi_core.train.checkpoint`: the resumable state (safetensors + JSON);
- :mod:`~vfi_core.train.export`: the fp16 weights and model card the registry loads.

Imported lazily by the CLI: importing :mod:`vfi_core` does not import this package.
"""
from .export import export_run
from .trainer import Trainer, load_config

__all__ = ["Trainer", "export_run", "load_config"]
