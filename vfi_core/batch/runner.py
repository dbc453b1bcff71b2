"""Run a batch job on Ray: a local runtime it starts itself, or a cluster it joins.

The driver (the process that runs :func:`run_batch`) plans the work: it skips items the job state
records as done, reads each video's header, and splits a long video into parts at keyframes
(:func:`~vfi_core.batch.plan.split_points`); loop and dedup need a whole video and never split. It
then hands tasks to Ray actors, each a worker process holding its loaded model
(:mod:`vfi_core.batch.work`); Ray places the actors by their CPU and GPU needs, and restarts a
worker that dies and retries its task (once). When the last part of a video is done, its join is
handed out. Workers report frames to a small progress actor, which also carries the stop request.

Job state: ``OUTDIR/.vfi-batch/state.jsonl`` gains a line for each finished item (its key, paths
and frame count), written and flushed when the item is done; parts of split videos wait in
``OUTDIR/.vfi-batch/parts/`` until joined. Rerunning the same command skips finished items (whose
output is still there) and reuses finished parts.

Stopping: on Ctrl-C (or SIGTERM) the driver asks every worker to stop; each removes what it was
writing, so only whole outputs remain; a second Ctrl-C stops at once.

On a cluster every node needs the suite installed (the same version) and must see the input and
output folders at the same paths (a shared file system).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import InputError, Terminated, VFIError
from .plan import BatchItem, Part, split_points
from .work import JoinTask, PartTask, Task, TaskResult, WholeTask

STATE_DIR = ".vfi-batch"
DEFAULT_PART_SECONDS = 60.0
STOP_GRACE_SECONDS = 60.0  # how long stopping waits for workers to remove their partial files


@dataclass
class BatchSummary:
    """What a batch job did. ``failures`` maps an item's input to its one-line reason."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    frames: int = 0
    source_frames: int = 0
    seconds: float = 0.0
    workers: int = 0
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclass
class BatchProgress:
    """Items finished (done, skipped or failed) and source frames read, with the planned totals."""

    items: int = 0
    items_total: int = 0
    frames: int = 0
    frames_total: int = 0


class JobState:
    """The finished items of a job: ``state.jsonl`` under ``OUTDIR/.vfi-batch``, one JSON line each."""

    def __init__(self, outdir: Path):
        self.folder = Path(outdir) / STATE_DIR
        self.path = self.folder / "state.jsonl"
        self.done: dict[str, dict] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a crash: that item runs again
                    continue
                if isinstance(record, dict) and "key" in record:
                    self.done[record["key"]] = record

    def is_done(self, item: BatchItem) -> bool:
        record = self.done.get(item.key)
        return record is not None and item.output.exists()

    def record(self, item: BatchItem, frames: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {"key": item.key, "input": str(item.input), "output": str(item.output), "frames": frames}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.done[item.key] = record

    def part_folder(self, item: BatchItem, part: Part) -> Path:
        return self.folder / "parts" / item.key / f"{part.index:04d}"


@dataclass(frozen=True)
class ItemPlan:
    """The tasks to run first for an item, all its parts (a split video) and the source frames those
    tasks read."""

    tasks: list[Task]
    parts: list[PartTask]
    source_frames: int


def plan_item(item: BatchItem, state: JobState, part_seconds: float) -> ItemPlan:
    """Plan ``item``: the whole item, or its parts (those not already finished, whose folders are not
    there) or, when all are, their join. Raises :class:`VFIError` for a source that cannot run."""
    from ..io import open_reader

    options = item.settings.options()
    reader = open_reader(item.input, item.settings.folder_fps())
    options.validate(reader.fps, reader.count)
    whole = ItemPlan([WholeTask(item)], [], reader.count)
    if item.input.is_dir() or options.loop or options.dedup or part_seconds <= 0:
        return whole
    split = split_points(reader.count, reader.keyframes, max(2, math.ceil(part_seconds * reader.fps)))
    if len(split) == 1:
        return whole
    # the scanned reader goes with the tasks, so that no worker scans the file again
    parts = [PartTask(item, part, part.index == len(split) - 1, state.part_folder(item, part), reader)
             for part in split]
    left = [t for t in parts if not t.folder.is_dir()]
    # source frames to read: a part's last frame is counted with the next part
    frames = sum(t.part.stop - t.part.start - (0 if t.last else 1) for t in left)
    return ItemPlan(left or [join_task(item, parts)], parts, frames)


def classify(item: BatchItem, state: JobState, part_seconds: float) -> tuple[str, str | ItemPlan | None]:
    """``("skip", None)`` for a finished item, ``("fail", reason)`` for one that cannot run, else
    ``("run", plan)``: what both :func:`run_batch` and :func:`describe_plan` do with it."""
    if state.is_done(item):
        return "skip", None
    if item.error is not None:
        return "fail", item.error
    try:
        return "run", plan_item(item, state, part_seconds)
    except VFIError as exc:
        return "fail", str(exc).splitlines()[0]


def describe_plan(items: list[BatchItem], outdir: str | Path, part_seconds: float = DEFAULT_PART_SECONDS
                  ) -> list[tuple[BatchItem, str]]:
    """What :func:`run_batch` would do with each item, without running anything (``vfi batch
    --dry-run``): ``"skip: ..."``, ``"fail: reason"`` or ``"run: N source frames[, K parts]"``."""
    state = JobState(Path(outdir))
    rows = []
    for item in items:
        kind, detail = classify(item, state, part_seconds)
        if kind == "skip":
            rows.append((item, "skip: done in an earlier run"))
        elif kind == "fail":
            rows.append((item, f"fail: {detail}"))
        else:
            parts = sum(isinstance(t, PartTask) for t in detail.tasks)
            split = f", split into {len(detail.parts)} parts ({parts} left to run)" if detail.parts else ""
            rows.append((item, f"run: {detail.source_frames} source frames{split}"))
    return rows


def join_task(item: BatchItem, parts: list[PartTask]) -> JoinTask:
    return JoinTask(item, tuple(t.folder for t in sorted(parts, key=lambda t: t.part.index)), parts[0].source)


def run_batch(items: list[BatchItem], outdir: str | Path, *, address: str | None = None, workers: int | None = None,
              cpus_per_worker: float = 1, gpus_per_worker: float = 0, part_seconds: float = DEFAULT_PART_SECONDS,
              progress: Callable[[BatchProgress], None] | None = None,
              on_failure: Callable[[BatchItem, str], None] | None = None) -> BatchSummary:
    """Interpolate ``items`` on Ray (see the module docstring) and return the summary.

    Args:
        address: a Ray cluster to join (``ray://host:10001`` or ``auto``); None starts a local runtime
            (unless this process already has one), using every CPU of this machine.
        workers: how many worker actors (default: as many as the resources allow).
        cpus_per_worker, gpus_per_worker: what each worker reserves; with GPUs each worker uses CUDA.
        part_seconds: videos longer than this split into parts of about this length (0: never).
        progress: called with the items and frames done and planned, often.
        on_failure: called with an item and its one-line reason when it fails.
    On Ctrl-C (``KeyboardInterrupt``) or SIGTERM (:class:`~vfi_core.errors.Terminated`) the workers
    are stopped and have removed their partial files before it propagates.
    """
    started = time.perf_counter()
    job = _Job(JobState(Path(outdir)), len(items), on_failure)
    for item in items:
        job.plan(item, part_seconds)
    if progress is not None:
        progress(job.progress())
    if job.queue:
        remove_leftovers(items, job.state)
        _run_on_ray(job, address, workers, cpus_per_worker, gpus_per_worker, progress)
        remove_leftovers(items, job.state)  # of a worker that died while writing (Ray ran its task again)
    job.summary.seconds = time.perf_counter() - started
    return job.summary


def _run_on_ray(job: "_Job", address, workers, cpus_per_worker, gpus_per_worker, progress) -> None:
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        _start_ray(address)
    try:
        pool = _WorkerPool(workers, cpus_per_worker, gpus_per_worker)
        job.summary.workers = len(pool.actors)
        pool.run(job, progress)
    finally:
        if started_here:
            ray.shutdown()


class _Job:
    """A batch job's bookkeeping on the driver: the task queue, the parts each split video waits for,
    the summary, the frames planned and read, and the job state."""

    def __init__(self, state: JobState, items: int, on_failure: Callable[[BatchItem, str], None] | None):
        self.state = state
        self.summary = BatchSummary()
        self.items = items
        self.frames_total = 0
        self.frames = 0  # source frames the workers have read (their progress reports)
        self.queue: deque[Task] = deque()
        self.parts_of: dict[str, list[PartTask]] = {}
        self.parts_left: dict[str, int] = {}
        self.failed: set[str] = set()
        self.on_failure = on_failure

    def progress(self) -> BatchProgress:
        s = self.summary
        return BatchProgress(s.done + s.skipped + s.failed, self.items, self.frames, self.frames_total)

    def plan(self, item: BatchItem, part_seconds: float) -> None:
        """Skip a finished item, fail one that cannot run, or queue its first tasks."""
        kind, detail = classify(item, self.state, part_seconds)
        if kind == "skip":
            self.summary.skipped += 1
        elif kind == "fail":
            self.fail(item, detail)
        else:
            self.frames_total += detail.source_frames
            if detail.parts:
                self.parts_of[item.key] = detail.parts
                self.parts_left[item.key] = sum(isinstance(t, PartTask) for t in detail.tasks)
            self.queue.extend(detail.tasks)

    def fail(self, item: BatchItem, reason: str) -> None:
        self.summary.failed += 1
        self.summary.failures[str(item.input)] = reason
        self.failed.add(item.key)
        if self.on_failure is not None:
            self.on_failure(item, reason)

    def finish(self, result: TaskResult) -> None:
        """Account for one task's result; queue an item's join when its last part is done."""
        task, item = result.task, result.task.item
        self.summary.source_frames += result.source_frames
        if result.status == "cancelled" or item.key in self.failed:
            return
        if result.status == "failed":
            self.fail(item, result.reason or "failed")
            return
        if isinstance(task, PartTask):
            self.parts_left[item.key] -= 1
            if self.parts_left[item.key] == 0:
                self.queue.appendleft(join_task(item, self.parts_of[item.key]))
            return
        self.summary.done += 1
        self.summary.frames += result.frames
        self.state.record(item, result.frames)


def remove_leftovers(items: list[BatchItem], state: JobState) -> None:
    """Delete the temporary files a killed worker left beside the outputs (``.NAME.*.partial*``) and
    among the parts. Run when no worker of this job is writing: one job per output folder at a time."""
    for item in items:
        folder = item.output.parent
        if folder.is_dir():
            for path in folder.glob(f".{item.output.stem if item.output.suffix else item.output.name}.*.partial*"):
                _remove(path)
    parts = state.folder / "parts"
    if parts.is_dir():
        for path in parts.glob("*/.*.partial"):
            _remove(path)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _start_ray(address: str | None) -> None:
    import logging

    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs = dict(logging_level=logging.ERROR, log_to_driver=False, configure_logging=True)
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, **kwargs)
    except ConnectionError as exc:
        raise InputError(f"cannot reach the Ray cluster at {address}: {str(exc).splitlines()[0]}") from None


class _WorkerPool:
    """Worker actors, each running one task at a time; Ray restarts a dead one and retries its task."""

    def __init__(self, workers: int | None, cpus: float, gpus: float):
        import ray

        from .actors import Reporter, worker_class

        if cpus <= 0 or gpus < 0:
            raise InputError("--cpus-per-worker must be > 0 and --gpus-per-worker >= 0")
        resources = ray.cluster_resources()
        fit = resources.get("GPU", 0) // gpus if gpus else resources.get("CPU", 0) // cpus
        if workers is None:
            workers = int(fit)
        if workers < 1 or workers > fit:
            have = f"{resources.get('GPU', 0):g} GPU(s)" if gpus else f"{resources.get('CPU', 0):g} CPU(s)"
            raise InputError(f"{workers} worker(s) of {gpus:g} GPU(s) and {cpus:g} CPU(s) do not fit the "
                             f"{have} Ray has; ask for fewer workers or smaller ones")
        self.reporter = Reporter.remote()
        actor = worker_class().options(num_cpus=cpus, num_gpus=gpus, max_restarts=1, max_task_retries=1)
        device = "cuda" if gpus else "cpu"
        threads = max(1, int(cpus))
        self.actors = [actor.remote(self.reporter, device, threads) for _ in range(workers)]

    def run(self, job: _Job, progress: Callable[[BatchProgress], None] | None) -> None:
        """Hand out ``job``'s queued tasks (the queue grows as parts finish) until all are done; a queued
        task of a failed item (the other parts of a broken video) is dropped."""
        import ray

        idle = list(self.actors)
        running: dict = {}  # future -> (actor, task)
        try:
            while job.queue or running:
                while job.queue and idle:
                    task = job.queue.popleft()
                    if task.item.key in job.failed:
                        continue
                    actor = idle.pop()
                    running[actor.run.remote(task)] = (actor, task)
                ready, _ = ray.wait(list(running), num_returns=1, timeout=0.25)
                job.frames = ray.get(self.reporter.frames.remote())
                for future in ready:
                    actor, task = running.pop(future)
                    idle.append(actor)
                    job.finish(self._result(future, task))
                if progress is not None:
                    progress(job.progress())
        except BaseException:  # Ctrl-C, SIGTERM or a failure: the workers stop and remove partial files
            self._stop(running)
            raise

    @staticmethod
    def _result(future, task: Task) -> TaskResult:
        import ray

        try:
            return ray.get(future)
        except ray.exceptions.RayError as exc:  # the worker died twice, or an unexpected error in it
            cause = getattr(exc, "cause", None) or exc
            text = str(cause).strip().splitlines()
            return TaskResult(task, "failed", reason=f"{type(cause).__name__}: {text[-1] if text else 'no message'}")

    def _stop(self, running: dict) -> None:
        import ray

        self.reporter.stop.remote()
        if not running:
            return
        try:
            ray.wait(list(running), num_returns=len(running), timeout=STOP_GRACE_SECONDS)
        except (KeyboardInterrupt, Terminated):  # a second Ctrl-C: stop now
            pass
