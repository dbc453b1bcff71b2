"""``ldmvfi``: the registered interpolator of LDMVFI (the trained denoiser, the autoencoder it was
trained on, and :class:`~vfi_core.models.ldmvfi.pipeline.LDMVFIPipeline`).

Two weight files: the denoiser ``ldmvfi.safetensors`` (the descriptor's) and the autoencoder
``vq_figan.safetensors``, looked for beside the denoiser, then in the weight folders, then among the
shipped weights. The denoiser's model card records the sha256 of the autoencoder it learned the
latents of; another autoencoder is refused (its latents would mean nothing to the denoiser).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from ...diffusion import sampler_params
from ...errors import WeightsError
from ...files import file_sha256
from ...flow import motion_param
from ...interpolator import Interpolation, Interpolator
from ...registry import WEIGHTS_DIR, ModelDescriptor, register
from ...weights import load_network, read_model_card
from .autoencoder import VQFIGAN, VQFIGANConfig
from .denoiser import LatentDenoiser, LatentDenoiserConfig
from .pipeline import LDMVFIPipeline, core_motion

AUTOENCODER_FILE = "vq_figan.safetensors"


def find_autoencoder(denoiser_weights: Path, weight_dirs: tuple[Path, ...] = ()) -> Path:
    """The autoencoder file for the denoiser at ``denoiser_weights`` (module docstring), checked
    against the sha256 its model card records. Raises :class:`WeightsError`."""
    recorded = read_model_card(denoiser_weights).get("autoencoder", {})
    name = recorded.get("file", AUTOENCODER_FILE)
    for folder in (Path(denoiser_weights).parent, *weight_dirs, WEIGHTS_DIR):
        path = Path(folder) / name
        if path.is_file():
            break
    else:
        raise WeightsError(f"ldmvfi needs its autoencoder {name} beside {Path(denoiser_weights).name} or among "
                           "the shipped weights (export it with `vfi export` from the ldmvfi-autoencoder run)")
    digest = recorded.get("sha256")
    if digest is not None and file_sha256(path) != digest:
        raise WeightsError(f"{path.name} is not the autoencoder {Path(denoiser_weights).name} was trained on (its "
                           "sha256 differs from the one in the denoiser's model card); use the pair exported "
                           "together, or retrain the denoiser on this autoencoder")
    return path


STRENGTH_HELP = ("1 generates the middle frame's latent from noise (the paper's sampling); lower values start "
                 "from the latent of the motion prior's own frame, re-noised to that share of the schedule, "
                 "and run only that share of the steps (0.5: better than 1 on DAVIS with the shipped "
                 "weights, docs/results.md).")


class LDMVFI(Interpolator):
    descriptor = ModelDescriptor(
        name="ldmvfi",
        summary="Latent diffusion (LDMVFI): the latent of the middle frame sampled by a conditional U-Net, "
                "decoded by a VFI autoencoder that attends to both input frames and synthesises from them, "
                "starting at the core's motion.",
        arbitrary_t=True,
        size_multiple=1,   # the pipeline pads to the autoencoder's and denoiser's multiple itself
        supports_half=False,
        weight_file="ldmvfi.safetensors",
        recipe="vfi_core.models.ldmvfi.recipe:LatentDenoiserRecipe",
        gives_confidence=False,
        # one CPU core (854x480 at the defaults: 10 DDIM steps at strength 0.5, motion=auto; the mean
        # of four davis_gap2 frames): motion, encoding, sampling and decoding together
        seconds_per_megapixel={"cpu": 27.8},
        params=(
            *sampler_params(10, 0.5, STRENGTH_HELP),
            motion_param(),
        ),
    )

    def __init__(self, *, network: LatentDenoiser | None = None, autoencoder: VQFIGAN | None = None, **kwargs):
        super().__init__(**kwargs)
        if network is None:
            network = load_network(self.weights, LatentDenoiser, LatentDenoiserConfig, self.device, self.dtype)
        if autoencoder is None:
            path = find_autoencoder(Path(self.weights), self.weight_dirs) if self.weights is not None else \
                WEIGHTS_DIR / AUTOENCODER_FILE
            autoencoder = load_network(path, VQFIGAN, VQFIGANConfig, self.device, self.dtype)
        self.network, self.autoencoder = network.to(self.device).eval(), autoencoder.to(self.device).eval()
        self.pipeline = LDMVFIPipeline(self.autoencoder, self.network,
                                       motion=lambda f0, f1: core_motion(f0, f1, self.params["motion"]))
        self.progress: Callable[[int, int], None] | None = None   # progress(done, total) per denoising step

    def on_network(self, network: torch.nn.Module, **extra) -> "LDMVFI":
        return super().on_network(network, autoencoder=self.autoencoder, **extra)

    def _interpolate(self, frame0: torch.Tensor, frame1: torch.Tensor, t: torch.Tensor) -> Interpolation:
        p = self.params
        frame = self.pipeline.interpolate(frame0, frame1, t, steps=p["steps"], sampler=p["sampler"], seed=p["seed"],
                                          strength=p["strength"], progress=self.progress)
        return Interpolation(frame.to(frame0.dtype))


register(LDMVFI.descriptor, LDMVFI)
