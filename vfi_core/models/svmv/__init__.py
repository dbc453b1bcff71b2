"""SVMV, spatiotemporal variance-aware motion volumes: the network and interpolator (:mod:`.model`), its loss (:mod:`.loss`) and training recipe (:mod:`.recipe`)."""
from .model import (
    BASE_MOTIONS, ENSEMBLE_RANGE, SVMVConfig, SVMVOutput, dis_prior, repeats_outer_frames, SVMVNet,
    restoration_inputs, stack_frames, load_network, SVMV,
)
