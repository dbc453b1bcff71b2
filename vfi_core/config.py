"""JSON configs: unknown keys refused with one line, and the model configs saved in model cards."""
from __future__ import annotations

from dataclasses import asdict, fields
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


class LossWeights:
    """Mixin for a loss's frozen dataclass of term weights: every field is a term weight (a number
    >= 0; 0 switches the term off) except those named in ``settings`` (kept as given, e.g. a path).

    ``loss_name`` names the loss in errors; :meth:`check` is where a subclass checks its settings.
    """

    loss_name: ClassVar[str]
    settings: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def terms(cls) -> tuple[str, ...]:
        """The term-weight fields, in declaration order."""
        return tuple(f.name for f in fields(cls) if f.name not in cls.settings)

    @classmethod
    def from_dict(cls, values: dict):
        """Build from a JSON dict: unknown keys, weights that are not numbers, negative weights and all
        weights 0 are each an :class:`InputError` naming the loss."""
        reject_unknown_keys(values, [f.name for f in fields(cls)], f"{cls.loss_name} loss")
        try:
            weights = cls(**{k: v if k in cls.settings else float(v) for k, v in values.items()})
        except (TypeError, ValueError):
            raise InputError(f"{cls.loss_name} loss: term weights must be numbers, got {values}") from None
        if any(getattr(weights, name) < 0 for name in cls.terms()):
            raise InputError(f"{cls.loss_name} loss: term weights must be >= 0")
        if not any(getattr(weights, name) for name in cls.terms()):
            raise InputError(f"{cls.loss_name} loss: every term weight is 0: enable at least one term")
        weights.check()
        return weights

    def check(self) -> None:
        """Raise :class:`InputError` for a setting out of its range (nothing to check by default)."""
