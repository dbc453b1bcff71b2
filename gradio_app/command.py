"""`vfi app` and `python -m gradio_app`: serve the Gradio web app (needs the `gradio` extra:
pip install -e ".[gradio]").

The `vfi` command finds :func:`add_parser` through the ``vfi.commands`` entry point that
pyproject.toml declares, so vfi_core never imports the app. Importing this module is cheap: Gradio
is imported when the command runs.
"""
from __future__ import annotations

import argparse

from vfi_core.errors import VFIError


def add_app_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=None, help="port (default: 7860, or the next free one)")
    parser.add_argument("--max-upload-mb", type=int, default=200, help="largest upload in MB (default 200)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="longest clip in seconds (default 60)")
    parser.add_argument("--concurrency", type=int, default=1, help="jobs that run at once (default 1)")


def add_parser(sub) -> None:
    p = sub.add_parser("app", help="serve the web app in the browser",
                       description="Serve the Gradio web app: upload a clip or two images, interpolate, "
                                   "compare. Its API endpoint is /interpolate.")
    add_app_options(p)
    p.set_defaults(run=run)


def run(args) -> int:
    try:
        from .app import launch
    except ImportError as exc:
        raise VFIError(f"the web app needs gradio ({exc}): pip install -e \".[gradio]\"") from None
    from .job import Limits

    limits = Limits(max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds)
    launch(limits, server_name=args.host, server_port=args.port, concurrency=args.concurrency)
    return 0
