"""vfi_core: video frame interpolation shared by the `vfi` CLI, the ComfyUI nodes and the Gradio app.

Conventions (see :mod:`vfi_core.frames`): frames are ``(B,3,H,W)`` float RGB in [0,1], ``t`` is
``(B,)`` in [0,1]. Start with :func:`load`::

    import vfi_core
    model = vfi_core.load("flow-asb")
    middle = model.interpolate(frame0, frame1, t)
"""
from .errors import Cancelled, InputError, ModelNotFoundError, ParameterError, VFIError, WeightsError
from .interpolator import Interpolation, Interpolator
from .registry import ModelDescriptor, Param, default_model_name, get_descriptor, list_models, load, register

__version__ = "0.1.0"

__all__ = ["Cancelled", "InputError", "Interpolation", "Interpolator", "ModelDescriptor",
           "ModelNotFoundError", "Param", "ParameterError", "VFIError", "WeightsError",
           "default_model_name", "get_descriptor", "list_models", "load", "register"]
