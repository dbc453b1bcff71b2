"""The Ray actors of a batch job: the workers and the progress reporter. Importing this imports Ray."""
from __future__ import annotations

import time

import ray

from .work import Task, TaskResult, run_task

CANCEL_POLL_SECONDS = 0.5  # how often a worker asks whether the job is stopping


@ray.remote(num_cpus=0)
class Reporter:
    """Source frames done across the workers, and the job's stop request."""

    def __init__(self):
        self._frames = 0
        self._stopped = False

    def add(self, frames: int) -> None:
        self._frames += frames

    def frames(self) -> int:
        return self._frames

    def stop(self) -> None:
        self._stopped = True

    def stopped(self) -> bool:
        return self._stopped


class BatchWorker:
    """One worker process: runs tasks one at a time with the models it keeps loaded (the process's
    model cache), on ``device`` with ``threads`` CPU threads."""

    def __init__(self, reporter, device: str, threads: int):
        import torch

        torch.set_num_threads(threads)
        self.reporter = reporter
        self.device = device
        self._checked = 0.0
        self._stopped = False

    def run(self, task: Task) -> TaskResult:
        self._stopped = False
        return run_task(task, device=self.device, progress=self._progress, cancel=self._cancel)

    def _progress(self, frames: int) -> None:
        self.reporter.add.remote(frames)

    def _cancel(self) -> bool:
        now = time.monotonic()
        if not self._stopped and now - self._checked >= CANCEL_POLL_SECONDS:
            self._checked = now
            self._stopped = ray.get(self.reporter.stopped.remote())
        return self._stopped


def worker_class():
    """:class:`BatchWorker` as a Ray actor class (give its resources with ``.options``)."""
    return ray.remote(BatchWorker)
