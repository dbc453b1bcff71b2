"""`vfi app` and `python -m gradio_app`: serve the Gradio web app (needs the `gradio` extra:
pip install -e ".[gradio]").

The `vfi` command finds :func:`add_parser` through the ``vfi.commands`` entry point that
pyproject.toml declares, so vfi_core never imports the app. Importing this module is cheap: Gradio
is imported when the command runs.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path

from vfi_core.errors import VFIError


def add_app_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=None, help="port (default: 7860, or the next free one)")
    parser.add_argument("--max-upload-mb", type=int, default=200, help="largest upload in MB (default 200)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="longest clip in seconds (default 60)")
    parser.add_argument("--max-adapt-steps", type=int, default=500,
                        help="most steps of adapting to a clip a job may ask for (default 500)")
    parser.add_argument("--concurrency", type=int, default=1, help="jobs that run at once (default 1)")
    parser.add_argument("--keep-minutes", type=float, default=60.0,
                        help="uploads and results older than this are deleted while the app runs; all of "
                        "them when it stops (default 60)")


def add_parser(sub) -> None:
    p = sub.add_parser("app", help="serve the web app in the browser",
                       description="Serve the Gradio web app: upload a clip or two images, interpolate, "
                                   "compare. Its API endpoint is /interpolate.")
    add_app_options(p)
    p.set_defaults(run=run)


def run(args) -> int:
    """Serve until Ctrl-C or SIGTERM; then every upload and result of this run is deleted: the app
    keeps them in a folder of its own (inside ``GRADIO_TEMP_DIR`` if set), removed when it stops."""
    if not args.keep_minutes > 0:
        raise VFIError(f"--keep-minutes must be positive, got {args.keep_minutes}")
    if args.max_adapt_steps < 0:
        raise VFIError(f"--max-adapt-steps must be 0 (no adapting) or more, got {args.max_adapt_steps}")
    previous = os.environ.get("GRADIO_TEMP_DIR")
    if previous:
        Path(previous).mkdir(parents=True, exist_ok=True)
    cache = Path(tempfile.mkdtemp(prefix="vfi-app-cache-", dir=previous or None))
    os.environ["GRADIO_TEMP_DIR"] = str(cache)  # read by Gradio when the app is built
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous_sigterm = signal.signal(signal.SIGTERM, _stop) if on_main_thread else None
    try:
        try:
            from .app import launch
        except ImportError as exc:
            raise VFIError(f"the web app needs gradio ({exc}): pip install -e \".[gradio]\"") from None
        from .job import Limits

        limits = Limits(max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds,
                        max_adapt_steps=args.max_adapt_steps)
        launch(limits, server_name=args.host, server_port=args.port, concurrency=args.concurrency,
               keep_minutes=args.keep_minutes)
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous_sigterm)
        if previous is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = previous
        shutil.rmtree(cache, ignore_errors=True)
    return 0


def _stop(signum, frame):
    raise KeyboardInterrupt  # Gradio closes the server on it; the cache goes with it
