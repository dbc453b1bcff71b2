"""ComfyUI's entry point when this repository is cloned into ``ComfyUI/custom_nodes/``.

ComfyUI imports this file as a package named after the clone's folder and looks for
``comfy_entrypoint`` (V3 nodes); the nodes are in ``comfy_nodes/``. The repository goes first on
``sys.path`` so that ``vfi_core``, the core the nodes are built on, imports as the top-level package
it is, and is this clone's own copy even where another vfi-suite is installed.

Outside ComfyUI, ``pip install -e .`` installs only the packages below this file. pytest imports it
(the rootdir is a package because of it) while setting up the tests; that is cheap and harmless:
``comfy_nodes`` imports ComfyUI's API only when ComfyUI calls the entry point.
"""
import os
import sys

from .comfy_nodes import comfy_entrypoint

_REPOSITORY = os.path.dirname(os.path.abspath(__file__))
if _REPOSITORY not in sys.path:
    sys.path.insert(0, _REPOSITORY)  # for `import vfi_core` in the nodes

__all__ = ["comfy_entrypoint"]
