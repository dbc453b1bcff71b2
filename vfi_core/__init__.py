"""vfi_core: video frame interpolation shared by the `vfi` CLI, the ComfyUI nodes and the Gradio app.

Conventions (see :mod:`vfi_core.frames`): frames are ``(B,3,H,W)`` float RGB in [0,1], ``t`` is
``(B,)`` in [0,1]. Start with :func:`load`::

    import vfi_core
    model = vfi_core.load("flow-asb")
    middle = model.interpolate(frame0, frame1, t)
"""
from .errors import Cancelled, InputError, ModelNotFoundError, ParameterError, VFIError, WeightsError
from .lazy import lazy_attributes

__version__ = "0.1.0"

# imported on first use, so that `vfi` answers Ctrl-C during start-up (torch's import is most of it)
# with one line, and commands that need no model start fast
_LAZY = {"Interpolation": ".interpolator", "Interpolator": ".interpolator", "ModelDescriptor": ".registry",
         "Param": ".registry", "default_model_name": ".registry", "get_descriptor": ".registry",
         "list_models": ".registry", "load": ".registry", "register": ".registry"}
__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())

__all__ = ["Cancelled", "InputError", "ModelNotFoundError", "ParameterError", "VFIError", "WeightsError",
           *_LAZY]
