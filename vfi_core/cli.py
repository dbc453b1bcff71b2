"""The `vfi` command line. Each subcommand lives in :mod:`vfi_core.commands` and registers itself
through ``add_parser(subparsers)``, setting ``run(args) -> int`` as its handler.

A user's mistake (any :class:`~vfi_core.errors.VFIError`, or options the parser refuses) prints one
line and exits 2; Ctrl-C exits 130 and SIGTERM 143 after the command has cleaned up; anything else is
a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import Cancelled, Terminated, VFIError

COMMANDS = ("interpolate", "models", "bench", "train", "export", "app")


class _Parser(argparse.ArgumentParser):
    """Reports a mistake in the options as one line, like every other user error, instead of the
    usage block; ``--help`` still shows it. Subcommand parsers are of this class too."""

    def error(self, message: str):
        self.exit(2, f"vfi: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="vfi", description="Video frame interpolation for creators.")
    parser.add_argument("--version", action="version", version=f"vfi {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"vfi_core.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except Cancelled:
        print("vfi: cancelled", file=sys.stderr)
        return 130
    except Terminated:
        print("vfi: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("vfi: interrupted", file=sys.stderr)
        return 130
    except VFIError as exc:
        print(f"vfi: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
