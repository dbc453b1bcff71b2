"""ComfyUI node pack of vfi-suite: interpolator loaders, IMAGE and VIDEO interpolation (see nodes.py).

ComfyUI loads it through the repository's root ``__init__.py`` (the repository cloned into
``ComfyUI/custom_nodes/``), which hands over :func:`comfy_entrypoint`. Importing it is cheap:
models load when a loader node runs, and video I/O is imported when a video is interpolated.
"""
from .nodes import comfy_entrypoint

__all__ = ["comfy_entrypoint"]
