"""MiVID, masked video diffusion: the network and interpolator (:mod:`.model`), noise schedules and samplers (:mod:`.schedule`), its loss (:mod:`.loss`), masking (:mod:`.masking`) and training recipe (:mod:`.recipe`)."""
from .model import (
    SIZE_MULTIPLE, MiVIDConfig, sinusoidal, frame_time_encoding, TemporalConv, ResBlock, TemporalAttention,
    MiVIDNet, linear_base, flow_base, BASES, network_base, load_network, CORRECTION_SIGMA, MiVID,
)
