"""Training data: real frame sources, datasets and packs, synthetic motion, the dev-benchmark split.

Typical use (``shared`` is the folder holding ``data/dev/triplets.csv`` and the dev footage)::

    from vfi_core.data import TripletDataset, dev_benchmark_exclusions, open_sources
    exclusions = dev_benchmark_exclusions(shared)
    sources = open_sources([shared / "data/dev/davis2016", shared / "data/dev/clips"], exclusions,
                           max_side=480, cache_dir="~/.cache/vfi_frames")
    triplets = TripletDataset(sources, crop=256, max_gap=4, seed=epoch)
"""
from .datasets import PACK_LIMIT_BYTES, PackedCropDataset, TripletDataset, WindowDataset, pack_training_crops
from .motion_pack import CropScoring, MotionCropDataset, pack_motion_crops
from .sources import FolderSource, FrameSource, VideoSource, open_sources
from .split import DAVIS_VALIDATION_SEQUENCES, Exclusions, dev_benchmark_exclusions
from .synthetic import SyntheticMotion, SyntheticTripletDataset, SyntheticWindowDataset, procedural_texture

__all__ = ["CropScoring", "DAVIS_VALIDATION_SEQUENCES", "Exclusions", "FolderSource", "FrameSource",
           "MotionCropDataset", "PACK_LIMIT_BYTES",
           "PackedCropDataset", "SyntheticMotion", "SyntheticTripletDataset", "SyntheticWindowDataset",
           "TripletDataset", "VideoSource", "WindowDataset", "dev_benchmark_exclusions", "open_sources",
           "pack_motion_crops", "pack_training_crops", "procedural_texture"]
