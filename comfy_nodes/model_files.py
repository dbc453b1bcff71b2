"""Interpolator weights in ComfyUI's model folders, and releasing the loaded ones when ComfyUI frees memory.

Weight files live in ``ComfyUI/models/vfi/`` and in any folder that ``extra_model_paths.yaml``
names under the key ``vfi``; the shipped ones in ``vfi_core/weights/`` are found too. Only
``.safetensors`` files are listed: the core loads no other format.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import vfi_core
from vfi_core.errors import WeightsError
from vfi_core.model_cache import MODELS
from vfi_core.registry import ModelDescriptor

MODEL_FOLDER = "vfi"
WEIGHT_EXTENSIONS = {".safetensors"}
# The weights choice that looks for the model's own weight file (its declared name) in the model
# folders, then among the shipped weights.
AUTO_WEIGHTS = "auto"


def register_model_folder() -> None:
    """Register ``models/vfi/`` under the key ``vfi`` with a .safetensors filter.

    ComfyUI reads extra_model_paths.yaml before it loads node packs, and a yaml key that ComfyUI
    does not know yet gets an entry without an extension filter; its folders are kept here, after
    the default one.
    """
    import folder_paths

    default = os.path.join(folder_paths.models_dir, MODEL_FOLDER)
    known = folder_paths.folder_names_and_paths.get(MODEL_FOLDER, ([], set()))[0]
    folders = [default] + [folder for folder in known if folder != default]
    folder_paths.folder_names_and_paths[MODEL_FOLDER] = (folders, set(WEIGHT_EXTENSIONS))


def weight_choices() -> list[str]:
    """The weights widget's options: :data:`AUTO_WEIGHTS`, then every file in the model folders."""
    import folder_paths

    return [AUTO_WEIGHTS] + folder_paths.get_filename_list(MODEL_FOLDER)


def weight_file(descriptor: ModelDescriptor, choice: str) -> Path | None:
    """The file a weights choice means for ``descriptor``; None for a model that takes no weights.

    Raises :class:`vfi_core.WeightsError` when ``auto`` finds no file or a chosen one is gone.
    """
    import folder_paths

    if descriptor.weight_file is None:
        return None
    folders = folder_paths.get_folder_paths(MODEL_FOLDER)
    if choice == AUTO_WEIGHTS:
        found = descriptor.weights_path(tuple(Path(p) for p in folders))
        if found is None:
            raise WeightsError(f"{descriptor.name} needs its weight file {descriptor.weight_file}: put it in "
                               f"{' or '.join(folders)}, or pick a weight file in the weights list")
        return found
    path = folder_paths.get_full_path(MODEL_FOLDER, choice)
    if path is None:
        raise WeightsError(f"weight file {choice!r} is not in {' or '.join(folders)}")
    return Path(path)


class LoadedInterpolator(NamedTuple):
    """What a loader node outputs: a (shared, cached) interpolator and the parameters to run it with."""

    model: vfi_core.Interpolator
    params: dict


def release_models_when_comfy_unloads() -> None:
    """Make ComfyUI's "unload models" (its ``/free`` endpoint, the Manager's buttons, and its own
    low-memory path) also drop the suite's cached interpolators (:data:`vfi_core.model_cache.MODELS`)."""
    import comfy.model_management as management

    original = getattr(management, "unload_all_models", None)
    if original is None or getattr(original, "releases_vfi_models", False):
        return

    def unload_all_models(*args, **kwargs):
        result = original(*args, **kwargs)
        MODELS.clear()
        return result

    unload_all_models.releases_vfi_models = True
    management.unload_all_models = unload_all_models
