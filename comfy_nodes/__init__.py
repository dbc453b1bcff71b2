"""ComfyUI node pack of vfi-suite: interpolator loaders, IMAGE and VIDEO interpolation (see nodes.py).

ComfyUI loads it through the repository's root ``__init__.py`` (the repository cloned into
``ComfyUI/custom_nodes/``), which hands over :func:`comfy_entrypoint`. Importing this package needs
neither ComfyUI nor torch, so that pytest, which imports the root ``__init__.py`` of the rootdir
package, and ``pip install -e .`` users are unaffected; the nodes module is imported when ComfyUI
calls the entry point. Models load when a loader node runs, video I/O when a video is interpolated.
"""


async def comfy_entrypoint():
    """What ComfyUI calls when it loads the pack: the extension listing the nodes."""
    from .nodes import create_extension

    return create_extension()


__all__ = ["comfy_entrypoint"]
