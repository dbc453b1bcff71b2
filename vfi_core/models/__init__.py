"""Interpolator architectures. Each module registers itself with :mod:`vfi_core.registry` on import."""
