"""LDMVFI: latent diffusion interpolation with a VFI-specific autoencoder. The autoencoder
(VQ-FIGAN, :mod:`.autoencoder`), its loss (:mod:`.loss`) and its training recipe (:mod:`.recipe`,
``vfi train ldmvfi-autoencoder``); the conditional latent denoiser of the second stage
(:mod:`.denoiser`), sampled with the shared schedules of :mod:`vfi_core.diffusion`; the two stages
together (:mod:`.pipeline`), registered as the ``ldmvfi`` interpolator (:mod:`.model`)."""
from .autoencoder import VQFIGAN, MaxCABlock, Quantized, VectorQuantizer, VQFIGANConfig
from .denoiser import LatentDenoiser, LatentDenoiserConfig
from .loss import PatchDiscriminator, VQFIGANLoss, VQFIGANLossWeights

__all__ = ["LDMVFI", "LatentDenoiser", "LatentDenoiserConfig", "MaxCABlock", "PatchDiscriminator", "Quantized", "VQFIGAN", "VQFIGANConfig", "VQFIGANLoss",
           "VQFIGANLossWeights", "VectorQuantizer"]

from ...registry import register_trainable  # noqa: E402

register_trainable("ldmvfi-autoencoder", "vfi_core.models.ldmvfi.recipe:VQFIGANRecipe")

from .model import LDMVFI  # noqa: E402  (registers the interpolator and its denoiser's recipe)
