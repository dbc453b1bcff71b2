"""PerVFI, asymmetric blending with a normalizing-flow decoder: the network and interpolator (:mod:`.model`), the conditional flow (:mod:`.flow`), its loss (:mod:`.loss`) and training recipe (:mod:`.recipe`)."""
from .model import (
    MOTIONS, MASK_MODES, PerVFIConfig, MotionModule, DISMotion, LearnedMotion, DeformableAlign,
    AdaptiveDilation, Condition, PerVFINet, load_network, PerVFI,
)
