"""Per-clip adaptation: low-rank adapters (:mod:`.lora`) fine-tuned on windows of the user's own clip
(:mod:`.windows`) by :func:`adapt` (:mod:`.engine`), saved and reused as :class:`Adapter` files."""
from .engine import (ADAPT_PARAMS, Adaptation, AdaptResult, Adapter, adapt, adapt_param, adapt_to_frames, adaptation_of,
                     apply_adapter, network_fingerprint)
from .windows import ClipWindows, collect_windows

__all__ = ["ADAPT_PARAMS", "Adaptation", "AdaptResult", "Adapter", "ClipWindows", "adapt", "adapt_param", "adapt_to_frames",
           "adaptation_of", "apply_adapter", "collect_windows", "network_fingerprint"]
