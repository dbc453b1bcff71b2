"""`vfi` subcommands; see :mod:`vfi_core.cli`."""
