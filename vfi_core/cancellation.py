"""Cancellation inside model calls.

The pipeline checks its ``cancel()`` between frame pairs, but one model call on a large frame can
take many seconds. While a job's model call runs, :func:`cancellable` makes that job's ``cancel``
the ambient one (a context variable: per thread, so concurrent jobs never see each other's), and
the long loops inside the core call :func:`check_cancelled` between their steps: RAFT's refinement
iterations, the DIS passes, each tile, each diffusion step, each level of the learned decoders. A
check costs a function call where nothing is cancellable.
"""
from __future__ import annotations

import contextvars
from contextlib import contextmanager
from typing import Callable, Iterator

from .errors import Cancelled

_current: contextvars.ContextVar[Callable[[], bool] | None] = contextvars.ContextVar("vfi_cancel", default=None)


@contextmanager
def cancellable(cancel: Callable[[], bool] | None) -> Iterator[None]:
    """Within this block, :func:`check_cancelled` raises :class:`Cancelled` once ``cancel()`` is true."""
    token = _current.set(cancel)
    try:
        yield
    finally:
        _current.reset(token)


def check_cancelled() -> None:
    """Raise :class:`~vfi_core.errors.Cancelled` if the job running here was cancelled."""
    cancel = _current.get()
    if cancel is not None and cancel():
        raise Cancelled("cancelled by the user")
