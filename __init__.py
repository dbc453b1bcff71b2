"""ComfyUI's entry point when this repository is cloned into ``ComfyUI/custom_nodes/``.

ComfyUI imports this file as a package named after the clone's folder and looks for
``comfy_entrypoint`` (V3 nodes); the nodes are in ``comfy_nodes/``. The repository goes first on
``sys.path`` so that ``vfi_core``, the core the nodes are built on, imports as the top-level package
it is, and is this clone's own copy even where another vfi-suite is installed. Outside ComfyUI
nothing imports this file: ``pip install -e .`` installs the packages below it, and pytest collects
``tests/`` only.
"""
import os
import sys

_REPOSITORY = os.path.dirname(os.path.abspath(__file__))
if _REPOSITORY not in sys.path:
    sys.path.insert(0, _REPOSITORY)

from .comfy_nodes import comfy_entrypoint  # noqa: E402  (needs the path above)

__all__ = ["comfy_entrypoint"]
