"""Keyframe-attention PEFT on the frozen MiVID denoiser: the network and interpolator (:mod:`.model`)
and its training recipe (:mod:`.recipe`); the loss is MiVID's, with the keyframe masking."""
from .model import (
    ConditionEncoder, KeyframeAttention, KeyframeBlock, KeyframePEFT, KeyframePEFTConfig, KeyframePEFTNet,
    find_base, load_base, load_network,
)

__all__ = ["ConditionEncoder", "KeyframeAttention", "KeyframeBlock", "KeyframePEFT", "KeyframePEFTConfig",
           "KeyframePEFTNet", "find_base", "load_base", "load_network"]
