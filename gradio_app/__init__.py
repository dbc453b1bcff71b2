"""The web app of the suite: interpolate a clip in the browser (Gradio).

``build_demo()`` returns the ``gr.Blocks`` app; ``launch()`` serves it (``vfi app`` and
``python -m gradio_app`` call it). The API endpoint is ``/interpolate`` (see :mod:`gradio_app.app`).
Gradio is an optional dependency: ``pip install -e ".[gradio]"``.
"""
import os

# The app works offline: no usage analytics and no version check at start.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from .app import API_NAME, build_demo, launch  # noqa: E402
from .job import Limits  # noqa: E402

__all__ = ["API_NAME", "Limits", "build_demo", "launch"]
