"""The web app of the suite: interpolate a clip in the browser (Gradio).

``build_demo()`` returns the ``gr.Blocks`` app; ``launch()`` serves it (``vfi app`` and
``python -m gradio_app`` call it). The API endpoint is ``/interpolate`` (see :mod:`gradio_app.app`).
Gradio is an optional dependency: ``pip install -e ".[gradio]"``.
"""
import os

from vfi_core.lazy import lazy_attributes

# The app works offline: no usage analytics and no version check at start.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

# Imported on first use, so that `vfi` can load gradio_app.command without importing Gradio.
_LAZY = {"API_NAME": ".app", "build_demo": ".app", "launch": ".app", "Limits": ".job"}
__all__ = list(_LAZY)
__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
