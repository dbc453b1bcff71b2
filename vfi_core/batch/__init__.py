"""Batch interpolation of many videos, on one machine or a Ray cluster (`vfi batch`).

:mod:`.plan` (items, settings, splitting long videos), :mod:`.work` (the tasks, independent of Ray),
:mod:`.runner` (the Ray driver: planning, job state, progress, stopping) and :mod:`.actors` (the Ray
actors). Importing this package does not import Ray.
"""
from .plan import BatchItem, ItemSettings, Part, folder_items, manifest_items, split_points
from .runner import BatchSummary, JobState, describe_plan, run_batch

__all__ = ["BatchItem", "BatchSummary", "ItemSettings", "JobState", "Part", "describe_plan", "folder_items", "manifest_items",
           "run_batch", "split_points"]
