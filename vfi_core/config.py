"""JSON configs: unknown keys refused with one line, and the model configs saved in model cards."""
from __future__ import annotations

from dataclasses import asdict
from typing import ClassVar, Iterable

from .errors import InputError


def reject_unknown_keys(values: dict, known: Iterable[str], what: str) -> None:
    """Raise :class:`InputError` ``"<what>: unknown key(s) ...; known: ..."`` for keys not in ``known``."""
    known = set(known)
    unknown = set(values) - known
    if unknown:
        raise InputError(f"{what}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")


class ModelConfig:
    """Mixin for a model's frozen dataclass config: to and from the JSON dict of a model card.

    Tuples are lists in JSON; unknown keys are an :class:`~vfi_core.errors.InputError` naming the
    model (``config_name``), so that a card written for another architecture fails clearly.
    """

    config_name: ClassVar[str]

    @classmethod
    def from_dict(cls, values: dict):
        """Build from a JSON dict; unknown keys are an :class:`InputError`."""
        reject_unknown_keys(values, cls.__dataclass_fields__, f"{cls.config_name} config")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    @classmethod
    def coerce(cls, config):
        """``config`` as an instance: ``None`` gives the defaults, a dict goes through :meth:`from_dict`."""
        if config is None:
            return cls()
        return cls.from_dict(config) if isinstance(config, dict) else config

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
