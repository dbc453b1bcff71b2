"""User-facing errors.

Every mistake a user can make (bad file, bad parameter, unknown model...) raises a subclass of
:class:`VFIError` whose message is one line that says what is wrong and what to do. Front ends
(CLI, ComfyUI nodes, Gradio app) print that line instead of a traceback; anything else that
escapes is a bug and keeps its traceback.
"""


class VFIError(Exception):
    """Base class of errors caused by user input, not by a bug."""


class InputError(VFIError, ValueError):
    """Frames, files or arguments that cannot be processed."""


class ParameterError(VFIError, ValueError):
    """A model parameter that is unknown or out of its declared range."""


class ModelNotFoundError(VFIError, KeyError):
    """An interpolator name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsError(VFIError):
    """A weight file that is missing, unreadable or does not match its architecture."""


class Cancelled(VFIError):
    """The user cancelled a running job."""


class Terminated(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM). Like Ctrl-C it unwinds through every cleanup, so
    nothing is left half-written; the CLI then exits 143 (128 + SIGTERM), as a killed process does."""
