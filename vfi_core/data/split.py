"""The training/dev split: which files training must never see.

The dev benchmark (``<shared>/data/dev/triplets.csv``) measures on the five DAVIS validation
sequences and on the frames the CSV names; :func:`dev_benchmark_exclusions` lists both, and the
frame sources of :mod:`vfi_core.data.sources` drop every excluded frame (and never bridge a window
across one).
"""
from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

__all__ = ["DAVIS_VALIDATION_SEQUENCES", "Exclusions", "dev_benchmark_exclusions"]

DAVIS_VALIDATION_SEQUENCES = ("blackswan", "drift-chicane", "goat", "libby", "motocross-jump")


@dataclass(frozen=True)
class Exclusions:
    """Files and folders (resolved absolute paths) that training must not read.

    A path is excluded when it is one of ``files`` or lies anywhere inside one of ``folders``.
    Combine lists with ``|``.
    """

    files: frozenset[Path] = frozenset()
    folders: frozenset[Path] = frozenset()

    @classmethod
    def from_paths(cls, paths: Iterable[str | Path]) -> "Exclusions":
        """Exclusions from existing paths: folders exclude everything inside them."""
        files, folders = set(), set()
        for path in paths:
            resolved = Path(path).resolve()
            if not resolved.exists():
                raise InputError(f"excluded path does not exist: {path}")
            (folders if resolved.is_dir() else files).add(resolved)
        return cls(frozenset(files), frozenset(folders))

    def excludes(self, path: str | Path) -> bool:
        resolved = Path(path).resolve()
        return resolved in self.files or any(folder in self.folders for folder in (resolved, *resolved.parents))

    def __or__(self, other: "Exclusions") -> "Exclusions":
        return Exclusions(self.files | other.files, self.folders | other.folders)


def dev_benchmark_exclusions(shared_dir: str | Path) -> Exclusions:
    """Everything the dev benchmark measures on: the frames ``triplets.csv`` names (frame0, frame1
    and gt of every row) and the DAVIS validation sequences' folders.

    Args:
        shared_dir: the folder holding ``data/dev/triplets.csv`` (what ``vfi train --shared`` names).
    """
    dev = Path(shared_dir) / "data" / "dev"
    table = dev / "triplets.csv"
    if not table.is_file():
        raise InputError(f"no dev benchmark at {table}: pass the shared folder that holds data/dev/triplets.csv")
    files = set()
    with table.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"frame0", "frame1", "gt"} - set(reader.fieldnames or ())
        if missing:
            raise InputError(f"{table} lacks the columns {sorted(missing)}")
        for row in reader:
            files.update((dev / row[column]).resolve() for column in ("frame0", "frame1", "gt"))
    folders = {(dev / "davis2016" / name).resolve() for name in DAVIS_VALIDATION_SEQUENCES}
    return Exclusions(frozenset(files), frozenset(folders))
