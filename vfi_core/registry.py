"""The interpolator registry: every model's descriptor and its user-facing parameters.

A model module declares a :class:`ModelDescriptor` (what it is, what it supports, which weight file
it needs, which parameters users may set, with ranges) and registers its class with
:func:`register`. The CLI, the ComfyUI nodes and the Gradio app build their choices and controls
from these declarations and load models only through :func:`load`.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from .errors import InputError, ModelNotFoundError, ParameterError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# The model families are the modules and packages of vfi_core.models; each registers itself when
# imported, and they are imported on first use so that importing vfi_core (and ComfyUI's start-up)
# stays cheap.
_MODELS_PACKAGE = "vfi_core.models"


def _non_finite(value: Any) -> bool:
    """Whether ``value`` is NaN or an infinity, as a number or as text ("nan", "-inf", "Infinity")."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return not math.isfinite(number)


@dataclass(frozen=True)
class Param:
    """A parameter a user may set, declared once by the model.

    ``kind`` is ``int``, ``float``, ``bool`` or ``str``; numeric ones carry an inclusive range
    (``min``/``max``) and a ``step`` hint for sliders; string ones carry ``choices``. ``group`` is
    ``"adapt"`` for a parameter that acts only while the model adapts to a clip (front ends show it
    with the adaptation options), else None.
    """

    name: str
    kind: type
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[str, ...] | None = None
    group: str | None = None

    def validate(self, value: Any) -> Any:
        """Return ``value`` converted to ``kind``; raise :class:`ParameterError` if it does not fit."""
        if self.kind in (int, float) and _non_finite(value):
            raise ParameterError(f"parameter {self.name!r} must be a finite number{self._range()}, got {value!r}")
        try:
            if self.kind is bool:
                if isinstance(value, str):
                    if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError(value)
                    value = value.lower() in ("true", "1", "yes")
                value = bool(value)
            elif self.kind is int:
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError(value)
                value = int(value)
            else:
                value = self.kind(value)
        except (TypeError, ValueError, OverflowError):
            raise ParameterError(f"parameter {self.name!r} must be {self.kind.__name__}, got {value!r}") from None
        if self.choices is not None and value not in self.choices:
            raise ParameterError(f"parameter {self.name!r} must be one of {', '.join(self.choices)}; got {value!r}")
        if self.min is not None and value < self.min or self.max is not None and value > self.max:
            raise ParameterError(f"parameter {self.name!r} must lie in [{self.min}, {self.max}], got {value}")
        return value

    def _range(self) -> str:
        if self.min is None and self.max is None:
            return ""
        return f" in [{self.min}, {self.max}]"

    def to_dict(self) -> dict:
        d = {"name": self.name, "type": self.kind.__name__, "default": self.default, "help": self.help}
        for key in ("min", "max", "step", "choices", "group"):
            if getattr(self, key) is not None:
                d[key] = list(self.choices) if key == "choices" else getattr(self, key)
        return d


@dataclass(frozen=True)
class ModelDescriptor:
    """What a registered interpolator is and supports (spandrel-style)."""

    name: str
    summary: str
    arbitrary_t: bool
    size_multiple: int
    supports_half: bool
    weight_file: str | None = None
    params: tuple[Param, ...] = ()
    gives_confidence: bool = False
    # whether the interpolator adapts to a clip (its ``adaptation()``, :mod:`vfi_core.adapt`)
    adaptable: bool = False
    # seconds per megapixel of an interpolated frame, by device type: what the work limits estimate
    # a job's time from (vfi_core.limits); measured at the default parameters, None where unmeasured
    seconds_per_megapixel: dict[str, float] = field(default_factory=dict, compare=False)
    factory: Callable[..., Any] | None = field(default=None, compare=False, repr=False)
    # "module:Class" of the model's training recipe (vfi_core.train), None for training-free models
    recipe: str | None = field(default=None, compare=False)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.params) or "none"
        raise ParameterError(f"model {self.name!r} has no parameter {name!r} (its parameters: {known})")

    def resolve_params(self, given: dict[str, Any]) -> dict[str, Any]:
        """Defaults updated by ``given``, every value validated against its declaration."""
        values = {p.name: p.default for p in self.params}
        for key, value in given.items():
            values[key] = self.param(key).validate(value)
        return values

    def weights_path(self, search_dirs: tuple[Path, ...] = ()) -> Path | None:
        """Where the weight file is, looking in ``search_dirs`` then the shipped weights; None if absent."""
        if self.weight_file is None:
            return None
        for d in (*search_dirs, WEIGHTS_DIR):
            p = Path(d) / self.weight_file
            if p.is_file():
                return p
        return None

    def to_dict(self) -> dict:
        return {"name": self.name, "summary": self.summary, "arbitrary_t": self.arbitrary_t,
                "size_multiple": self.size_multiple, "supports_half": self.supports_half,
                "weight_file": self.weight_file, "gives_confidence": self.gives_confidence,
                "adaptable": self.adaptable,
                "params": [p.to_dict() for p in self.params]}


_REGISTRY: dict[str, ModelDescriptor] = {}
_TRAINABLE: dict[str, str] = {}  # name -> "module:Class" of its training recipe
_loaded_modules = False


def register(descriptor: ModelDescriptor, factory: Callable[..., Any]) -> None:
    """Register ``factory(descriptor=, device=, dtype=, params=, weights=, weight_dirs=)`` under
    ``descriptor.name``, and its training recipe (``descriptor.recipe``) if it has one."""
    if descriptor.name in _REGISTRY:
        raise RuntimeError(f"interpolator {descriptor.name!r} is registered twice")
    _REGISTRY[descriptor.name] = replace(descriptor, factory=factory)
    if descriptor.recipe is not None:
        register_trainable(descriptor.name, descriptor.recipe)


def register_trainable(name: str, recipe: str) -> None:
    """Declare a trainable part that is not an interpolator of its own (a stage models share, such
    as detail restoration) by its training recipe, ``"module:Class"``."""
    if _TRAINABLE.get(name, recipe) != recipe:
        raise RuntimeError(f"trainable {name!r} is registered twice")
    _TRAINABLE[name] = recipe


def trainable() -> dict[str, str]:
    """What ``vfi train`` can train: name -> ``"module:Class"`` of its recipe."""
    _ensure_models_imported()
    return dict(_TRAINABLE)


def _ensure_models_imported() -> None:
    global _loaded_modules
    if not _loaded_modules:
        _loaded_modules = True
        import pkgutil

        package = importlib.import_module(_MODELS_PACKAGE)
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{_MODELS_PACKAGE}.{info.name}")


def list_models() -> list[ModelDescriptor]:
    """All registered descriptors, in registration order."""
    _ensure_models_imported()
    return list(_REGISTRY.values())


def get_descriptor(name: str) -> ModelDescriptor:
    _ensure_models_imported()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelNotFoundError(
            f"unknown interpolator {name!r}; available: {', '.join(_REGISTRY)}") from None


def default_model_name() -> str:
    """The interpolator front ends use when the user names none (svmv: ahead of flow-asb on every
    dev-benchmark set, see its model card)."""
    return "svmv"


def load(name: str | None = None, device=None, dtype=None, weights: str | Path | None = None,
         weight_dirs: tuple[Path, ...] = (), **params):
    """Build the interpolator ``name`` (default: :func:`default_model_name`).

    Args:
        device: ``None``/"auto" (CUDA, then MPS, then CPU), or a device string.
        dtype: ``None`` (float32), "float16"/"bfloat16" or a torch dtype; refused if unsupported.
        weights: an explicit weight file, overriding the search in ``weight_dirs`` and the shipped ones.
        **params: the model's declared parameters; each is validated against its range.
    """
    from .device import resolve_device, resolve_dtype

    desc = get_descriptor(name or default_model_name())
    values = desc.resolve_params(params)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, supports_half=desc.supports_half, model=desc.name, device=dev)
    weight_path = None
    if desc.weight_file is None and weights is not None:
        raise InputError(f"model {desc.name!r} takes no weights, but a weight file was given "
                         f"({Path(weights).name}); leave it out, or pick a model that loads weights")
    if desc.weight_file is not None:
        from .weights import find_weights
        weight_path = find_weights(desc, weights, weight_dirs)
    return desc.factory(descriptor=desc, device=dev, dtype=dt, params=values, weights=weight_path,
                        weight_dirs=tuple(Path(d) for d in weight_dirs))
