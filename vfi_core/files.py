"""Files the suite writes get the permissions any other program's would.

Outputs are written to a temporary name and renamed when complete. ``tempfile.mkstemp`` and
``mkdtemp`` create private files (0600) and folders (0700), and safetensors writes its files 0600;
renamed as they are, a video, a frame folder or a weight file could not be read by anyone else on
the machine (a render farm's other users, a web server). :func:`publish` renames a finished
temporary file or folder into place with the mode the process's umask gives new files
(``0666 & ~umask``, folders ``0777 & ~umask``), as ``open()`` and ``mkdir()`` would have.
"""
from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

_lock = threading.Lock()


def umask() -> int:
    """The process's file-creation mask (read without changing it where the OS allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _lock:  # elsewhere the only way to read it is to set it and put it back
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def default_mode(path: str | Path) -> None:
    """Give ``path`` the mode a new file (or folder) gets under the umask."""
    path = Path(path)
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask())


def publish(tmp: str | Path, final: str | Path) -> Path:
    """Rename the finished temporary ``tmp`` to ``final`` (atomic on one file system), with the
    umask's default mode."""
    default_mode(tmp)
    os.replace(tmp, final)
    return Path(final)


def save_safetensors(tensors: dict, path: str | Path, metadata: dict | None = None) -> Path:
    """Write ``tensors`` to ``path`` as safetensors: a temporary file beside it, then :func:`publish`."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        return publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
