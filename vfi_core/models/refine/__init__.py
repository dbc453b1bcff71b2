"""Detail restoration, the learned stage after flow-asb's and svmv's blend: the network (:mod:`.model`) and its training recipe and loss (:mod:`.recipe`)."""
from .model import (
    WEIGHT_FILE, INPUT_CHANNELS, SECONDS_PER_MEGAPIXEL, add_cost, refine_param, RestorationInputs, RefineConfig, RefineNet,
    refine_weights_path, DetailRestorer,
)
from ...registry import register_trainable

register_trainable("refine", "vfi_core.models.refine.recipe:RefineRecipe")
