"""The `vfi` command line. Each subcommand lives in :mod:`vfi_core.commands` and registers itself
through ``add_parser(subparsers)``, setting ``run(args) -> int`` as its handler.

Other installed packages add subcommands without vfi_core knowing them: an entry point in the
``vfi.commands`` group, named after the subcommand, names such an ``add_parser`` (the web app
declares ``app = "gradio_app.command:add_parser"`` in pyproject.toml, so `vfi app` exists once the
project is installed; reinstall after changing the declaration). A subcommand that fails to load is
left out with a warning; the built-in ones cannot be replaced.

A user's mistake (any :class:`~vfi_core.errors.VFIError`, or options the parser refuses) prints one
line and exits 2; Ctrl-C exits 130 and SIGTERM 143 after the command has cleaned up; anything else is
a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys

from .errors import Cancelled, Terminated, VFIError

COMMANDS = ("interpolate", "batch", "models", "bench", "train", "export", "pack")
ENTRY_POINT_GROUP = "vfi.commands"


def plugin_commands() -> dict[str, importlib.metadata.EntryPoint]:
    """The subcommands installed packages declare (``vfi.commands`` entry points), by name; names
    of built-in commands are ignored, and of two declarations of one name the first found counts."""
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name not in COMMANDS:
            found.setdefault(entry_point.name, entry_point)
    return found


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
    for name, entry_point in sorted(plugin_commands().items()):
        try:
            add_parser = entry_point.load()
        except Exception as exc:  # one broken package must not take the other commands down
            print(f"vfi: warning: command {name!r} ({entry_point.value}) could not be loaded: {exc}",
                  file=sys.stderr)
            continue
        add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)  # imports the commands (and torch): Ctrl-C may come here
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
