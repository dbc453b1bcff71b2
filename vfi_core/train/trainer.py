"""The trainer: ``vfi train MODEL --config C.json --data ... [--resume]``, the same on CPU and GPU.

A config is JSON (see ``configs/``); missing keys take the defaults of :data:`DEFAULTS`::

    {"name": run name, "seed": int, "amp": "bf16" | "fp16" | "off" (CUDA only; CPU runs in float32),
     "architecture": {...model config...}, "loss": {...term weights, 0 = off...},
     "data": {"crop", "batch_size", "two_frame_probability", "max_gap", "weights", "max_side",
              "workers": processes making batches ahead (0: in the training process)},
     "optim": {"steps", "lr", "min_lr", "warmup", "weight_decay", "betas", "grad_clip"},
     "ema": {"decay"}, "eval": {"every", "dev", "items", "size", "layout", "limit"},
     "log": {"every", "checkpoint_every", "tensorboard"}}

A run directory (``runs/<name>/``) holds ``config.json``, the resumable checkpoint
(:mod:`vfi_core.train.checkpoint`), ``log.csv`` (one row per logged step), ``dev.csv`` (one row per
dev evaluation, EMA weights), ``plot.png`` and, when TensorBoard is installed, ``tb/``.

Determinism: batch ``s`` and the ensemble size of step ``s`` come from random streams seeded by
``(seed, s)``; the torch generator state is checkpointed. On the same machine a resumed run repeats
the uninterrupted one's losses exactly.
"""
from __future__ import annotations

import copy
import csv
import json
import math
import platform
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from ..config import reject_unknown_keys
from ..errors import Cancelled, InputError
from .checkpoint import has_checkpoint, read_checkpoint, restore, save_checkpoint
from .data import TrainingData
from .export import lineage
from .recipes import count_parameters, get_recipe

DEFAULTS = {
    "name": None, "seed": 0, "amp": "bf16", "architecture": {}, "loss": {},
    "data": {"crop": 128, "batch_size": 8, "two_frame_probability": 0.5, "max_gap": 4, "weights": None,
             "max_side": None, "workers": 0},
    "optim": {"steps": 10000, "lr": 1e-3, "min_lr": 1e-5, "warmup": 200, "weight_decay": 1e-4,
              "betas": [0.9, 0.999], "grad_clip": 1.0},
    "ema": {"decay": 0.999},
    "eval": {"every": 500, "dev": "synthetic", "items": 32, "size": 128, "layout": "auto", "limit": None},
    "log": {"every": 10, "checkpoint_every": 500, "tensorboard": True},
}
_SECTIONS = ("data", "optim", "ema", "eval", "log")


def _merged(base: dict, override: dict) -> dict:
    """``base`` with ``override`` on top: objects merge key by key (recursively), anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else copy.deepcopy(value)
    return out


def _read_config(path: Path, seen: tuple = ()) -> dict:
    """A config file's JSON with its ``"base"`` chain resolved (paths relative to the file)."""
    if not path.is_file():
        raise InputError(f"config {path} does not exist")
    if path.resolve() in seen:
        raise InputError(f"config {path}: its base chain comes back to it")
    try:
        given = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"config {path} is not valid JSON: {exc}") from None
    if not isinstance(given, dict):
        raise InputError(f"config {path} must be a JSON object")
    return _with_base(given, path.parent, (*seen, path.resolve()))


def _with_base(given: dict, folder: Path, seen: tuple = ()) -> dict:
    if "base" not in given:
        return given
    if not isinstance(given["base"], str):
        raise InputError(f"config: base must name a config file, got {given['base']!r}")
    base = _read_config(folder / given["base"], seen)
    return _merged(base, {k: v for k, v in given.items() if k != "base"})


def load_config(path: str | Path | dict) -> dict:
    """Read a JSON config (or take a dict) and fill in :data:`DEFAULTS`; :class:`InputError` if invalid.

    A config may start from another: ``{"base": "svmv.json", ...}`` (a path relative to the file; to
    the working folder for a dict) takes that config and puts its own keys on top, objects merged key
    by key (so an override file states only what differs).
    """
    if isinstance(path, dict):
        given = _with_base(path, Path("."))
    else:
        given = _read_config(Path(path))
    reject_unknown_keys(given, DEFAULTS, "config")
    config = copy.deepcopy(DEFAULTS)
    for key, value in given.items():
        if key in _SECTIONS:
            if not isinstance(value, dict) or set(value) - set(DEFAULTS[key]):
                bad = sorted(set(value) - set(DEFAULTS[key])) if isinstance(value, dict) else value
                raise InputError(f"config: {key!r} must be an object with keys among "
                                 f"{', '.join(DEFAULTS[key])}; got {bad}")
            config[key].update(value)
        else:
            config[key] = value
    if config["amp"] not in ("bf16", "fp16", "off"):
        raise InputError(f"config: amp must be bf16, fp16 or off, got {config['amp']!r}")
    o = config["optim"]
    if o["steps"] < 1 or o["lr"] <= 0 or o["grad_clip"] <= 0 or o["warmup"] < 0:
        raise InputError("config: optim.steps >= 1, optim.lr > 0, optim.grad_clip > 0 and optim.warmup >= 0")
    if not 0 <= config["ema"]["decay"] < 1:
        raise InputError(f"config: ema.decay must lie in [0, 1), got {config['ema']['decay']}")
    if config["eval"]["every"] < 1 or config["log"]["every"] < 1 or config["log"]["checkpoint_every"] < 1:
        raise InputError("config: eval.every, log.every and log.checkpoint_every must be >= 1")
    return config


def learning_rate(config: dict, step: int, leg_start: int = 0) -> float:
    """Linear warm-up to ``lr`` over ``warmup`` steps, then cosine decay to ``min_lr`` at ``steps``.

    ``leg_start``: the step a fresh optimizer started at (a run resumed from its light state): the
    rate is warmed up again over ``warmup`` steps from there.
    """
    o = config["optim"]
    if step <= o["warmup"]:
        return o["lr"] * step / max(o["warmup"], 1)
    progress = min(1.0, (step - o["warmup"]) / max(o["steps"] - o["warmup"], 1))
    rate = o["min_lr"] + 0.5 * (o["lr"] - o["min_lr"]) * (1 + math.cos(math.pi * progress))
    if leg_start:
        rate *= min(1.0, (step - leg_start) / max(o["warmup"], 1))
    return rate


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def _grow_inputs(state: dict, own: dict) -> list[str]:
    """Widen in place the convolution weights of ``state`` that have fewer input channels than the
    network's (a config that appends inputs to a layer), with zeros on the new channels; return
    their names."""
    grown = []
    for key, value in list(state.items()):
        target = own.get(key)
        if target is None or value.shape == target.shape or value.ndim != 4:
            continue
        if value.shape[0] == target.shape[0] and value.shape[2:] == target.shape[2:] \
                and value.shape[1] < target.shape[1]:
            wide = torch.zeros_like(target, dtype=value.dtype)
            wide[:, :value.shape[1]] = value
            state[key] = wide
            grown.append(key)
    return grown


class _CSVLog:
    """Append-only CSV with a fixed header; on resume, rows after the checkpoint's step are dropped."""

    def __init__(self, path: Path, columns: list[str], keep_until: int | None):
        self.path, self.columns = path, columns
        rows = []
        if keep_until is not None and path.is_file():
            with path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= keep_until]
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(rows)
        self.rows = rows

    def append(self, row: dict) -> None:
        row = {k: ("" if row.get(k) is None else row[k]) for k in self.columns}
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.columns).writerow(row)
        self.rows.append({k: str(v) for k, v in row.items()})


class _StepBatches(torch.utils.data.Dataset):
    """Batches ``first..last`` of a trainer as a dataset, for worker processes (item ``i`` = step ``first+i``)."""

    def __init__(self, trainer: "Trainer", first: int, last: int):
        self.data, self.recipe, self.config = trainer.data, trainer.recipe, trainer.net.config
        self.first, self.count = first, last - first + 1

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict:
        return _prepared_batch(self.data, self.recipe, self.config, self.first + index)


def _prepared_batch(data: TrainingData, recipe, architecture, step: int) -> dict:
    """Batch ``step`` as the recipe wants it (e.g. with a motion prior), on the CPU."""
    batch = data.batch(step)
    prepare = getattr(recipe, "prepare_batch", None)
    return prepare(batch, architecture) if prepare is not None else batch


def _quiet_worker(_: int) -> None:
    import cv2  # one OpenCV thread per worker: the workers are the parallelism
    cv2.setNumThreads(1)
    # Ctrl-C (or `timeout -s INT`) reaches the whole process group: the workers ignore it, so that
    # the trainer finishes its step and saves a checkpoint while they keep serving batches
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Trainer:
    """Train ``model`` per ``config`` on ``data`` specs into ``run_dir``.

    Args:
        model: a trainable name (:func:`vfi_core.registry.trainable`).
        config: path or dict (:func:`load_config`).
        data: data specs (:mod:`vfi_core.train.data`).
        run_dir: the run directory (default ``runs/<name>``).
        resume: continue from the checkpoint in ``run_dir`` (its config and data must match).
        init_from: a weight file (exported, with its model card) to start a fresh run from; the config's
            architecture may differ from the card's only where no tensor changes shape (a fine-tune).
        device: ``None``/"auto", "cpu", "cuda"...
        steps: override ``optim.steps`` (e.g. to extend a resumed run).
        workers: override ``data.workers`` (how batches are made does not change them: a run may
            resume with another value).
        shared_dir: the folder holding ``data/dev/triplets.csv``, whose frames training must exclude;
            needed only for video/folder data (``None``: such specs are refused).
        command: the command line, recorded in the checkpoint and the model card.
        show_progress: tqdm progress bar on stderr.
    """

    def __init__(self, model: str, config, data: list[str], run_dir: str | Path | None = None,
                 resume: bool = False, init_from: str | Path | None = None, device=None,
                 steps: int | None = None, workers: int | None = None, shared_dir: str | Path | None = None,
                 command: str = "",
                 show_progress: bool = True):
        from ..device import resolve_device

        self.recipe = get_recipe(model)
        self.config = load_config(config)
        if steps is not None:
            self.config["optim"]["steps"] = int(steps)
        if workers is not None:
            self.config["data"]["workers"] = int(workers)
        name = self.config["name"] or model
        self.run_dir = Path(run_dir) if run_dir is not None else Path("runs") / name
        self.model_name, self.data_specs = model, [str(d) for d in data]
        self.device = resolve_device(device)
        self.show_progress = show_progress
        info = None
        if resume:
            info, tensors = read_checkpoint(self.run_dir)
            saved = json.loads((self.run_dir / "config.json").read_text())
            saved["optim"]["steps"] = self.config["optim"]["steps"]
            saved["data"]["workers"] = self.config["data"]["workers"]
            # compared with every default spelled out: a config that now writes a default it left out,
            # or leaves out one it wrote, is the same run
            same = info["model"] == model and self.recipe.canonical(saved) == self.recipe.canonical(self.config)
            if not same or info["data"] != self.data_specs:
                raise InputError(f"--resume: the config, model or data differ from the run in {self.run_dir} "
                                 f"(it trained {info['model']} on {' '.join(info['data'])}); use its config.json")
            if init_from is not None:
                raise InputError("--resume continues a run: it takes no --init-from")
        elif has_checkpoint(self.run_dir):
            raise InputError(f"{self.run_dir} already holds a run: pass --resume to continue it, or another --run-dir")
        torch.manual_seed(self.config["seed"])
        self.net = self.recipe.build(self.config["architecture"]).to(self.device)
        # where the run started, captured now (the file's portable name and its card's training record),
        # so the resume state and the exported card never depend on that file still being there
        self.init_from = self._init_from(Path(init_from)) if init_from is not None else None
        self.ema = copy.deepcopy(self.net).requires_grad_(False)
        self.loss = self.recipe.loss(self.config["loss"])
        o = self.config["optim"]
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=o["lr"], betas=tuple(o["betas"]),
                                           weight_decay=o["weight_decay"])
        amp = self.config["amp"] if self.device.type == "cuda" else "off"
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[amp]
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
        d = self.config["data"]
        self.data = TrainingData(self.data_specs, d["crop"], d["batch_size"], self.config["seed"], d["weights"],
                                 d["two_frame_probability"], d["max_gap"], shared_dir, d["max_side"],
                                 items=getattr(self.recipe, "items", "quadruplet"))
        self.step, self.wall_time, self.leg_start = 0, 0.0, 0
        self.sessions: list[dict] = []
        if info is not None:
            restore(tensors, info, self.net, self.ema, self.optimizer)
            if info.get("scaler"):
                self.scaler.load_state_dict(info["scaler"])
            self.step, self.wall_time = info["step"], info["wall_time_s"]
            self.sessions, self.init_from = info["sessions"], info.get("init_from")
            if info.get("light"):  # weights only: a fresh optimizer, warmed up again
                self.leg_start = self.step
        self.sessions.append({"command": command, "hardware": hardware(self.device), "from_step": self.step,
                              "from_wall_time_s": round(self.wall_time, 1),
                              **({"fresh_optimizer": True} if self.leg_start else {})})
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.json").write_text(json.dumps(self.config, indent=1) + "\n")
        keep = self.step if resume else None
        self.log = _CSVLog(self.run_dir / "log.csv",
                           ["step", "loss", *self.recipe.terms(), "lr", "grad_norm", "ensemble",
                            *self.recipe.log_extras, "seconds"], keep)
        self.dev_log = _CSVLog(self.run_dir / "dev.csv", ["step", "dev_loss", "dev_psnr", "dev_ssim", "seconds"], keep)
        self._dev_items = None
        self._tb = self._tensorboard()
        self._stop = False

    def _init_from(self, path: Path) -> dict:
        """Load ``path``'s weights into the network; returns the run's :func:`lineage`."""
        from ..weights import load_state_dict, read_model_card

        card = read_model_card(path)
        wanted = self.recipe.architecture(self.net)
        theirs = card.get("architecture") or {}
        # the config may change what does not shape a tensor (e.g. mivid's base estimate): a fine-tune
        state = {k: v.float() for k, v in load_state_dict(path).items()}
        own = self.net.state_dict()
        grown = _grow_inputs(state, own) if theirs.get("class") == wanted["class"] else []
        if theirs.get("class") != wanted["class"] or state.keys() != own.keys() \
                or any(state[k].shape != own[k].shape for k in own):
            raise InputError(f"--init-from {path}: its architecture ({theirs}) does not fit the config's "
                             f"({wanted}); set the config's architecture to the model card's")
        changed = sorted(k for k in wanted["config"] if theirs.get("config", {}).get(k) != wanted["config"][k])
        if changed:
            print(f"vfi train: --init-from {path.name}: the config changes {', '.join(changed)}; "
                  + (f"{', '.join(grown)} gained input channels, started at zero (the network computes "
                     "what the file's did)" if grown else "every tensor fits"), flush=True)
        elif grown:
            raise InputError(f"--init-from {path}: {', '.join(grown)} differ in shape but the config does not")
        self.net.load_state_dict(state)
        return lineage(str(path), card)

    def _tensorboard(self):
        if not self.config["log"]["tensorboard"]:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # TensorBoard is optional, never a dependency
            return None
        return SummaryWriter(str(self.run_dir / "tb"), purge_step=self.step + 1)

    # -- one step -------------------------------------------------------------------------------
    def _batches(self, first: int, last: int):
        """Batches ``first..last`` in order: made here, or by ``data.workers`` processes ahead of use."""
        workers = int(self.config["data"]["workers"])
        if workers <= 0:
            return (_prepared_batch(self.data, self.recipe, self.net.config, step) for step in range(first, last + 1))
        # spawned, not forked: a fork would copy OpenCV's thread pool mid-use and can deadlock
        loader = torch.utils.data.DataLoader(_StepBatches(self, first, last), batch_size=None, num_workers=workers,
                                             prefetch_factor=4, pin_memory=self.device.type == "cuda",
                                             worker_init_fn=_quiet_worker, multiprocessing_context="spawn")
        return iter(loader)

    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def train_step(self, step: int, batch: dict | None = None) -> dict:
        """Run optimizer step ``step`` (1-based) on ``batch`` (made here when ``None``); return its log row."""
        start = time.perf_counter()
        lr = learning_rate(self.config, step, self.leg_start)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if batch is None:
            batch = _prepared_batch(self.data, self.recipe, self.net.config, step)
        batch = self._to_device(batch)
        rng = np.random.default_rng([self.config["seed"], step, 1])
        self.net.train()
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.bfloat16, enabled=self.amp_dtype is not None):
            total, terms, extra = self.recipe.step_loss(self.net, self.loss, batch, rng,
                                                        progress=step / self.config["optim"]["steps"])
        if not torch.isfinite(total):
            raise FloatingPointError(f"loss is {float(total)} at step {step}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.config["optim"]["grad_clip"])
        self.scaler.step(self.optimizer)
        self.scaler.update()
        decay = min(self.config["ema"]["decay"], (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(self.ema.parameters(), self.net.parameters()):
                e.lerp_(p, 1.0 - decay)
            for e, b in zip(self.ema.buffers(), self.net.buffers()):
                e.copy_(b)
        return {"step": step, "loss": float(total.detach()), **terms, "lr": lr, "grad_norm": float(grad_norm),
                **extra, "seconds": time.perf_counter() - start}

    # -- dev evaluation -------------------------------------------------------------------------
    def evaluate(self) -> dict:
        """Score the EMA weights on the dev set: mean absolute error of the 8-bit prediction (``dev_loss``,
        in [0,1] units), PSNR and SSIM as :mod:`vfi_core.evaluation.bench` computes them."""
        from ..evaluation import bench
        from ..frames import to_numpy_uint8

        start = time.perf_counter()
        model = self.recipe.interpolator(self.ema)
        e = self.config["eval"]
        records = []
        if e["dev"] == "synthetic":
            if self._dev_items is None:
                from ..data import SyntheticTripletDataset
                dev = SyntheticTripletDataset(e["size"], length=e["items"], seed=1_000_003 + self.config["seed"])
                self._dev_items = [dev[i] for i in range(len(dev))]
            for item in self._dev_items:
                frames = (item["frame0"][None], item["frame1"][None], item["t"][None])
                # an autoencoder's dev figure is its reconstruction of the truth (it cannot interpolate alone)
                pred = model.reconstruct(*frames, item["gt"][None]) if hasattr(model, "reconstruct") else \
                    model.interpolate(*frames)
                records.append((to_numpy_uint8(pred)[0], to_numpy_uint8(item["gt"][None])[0]))
        else:
            if self._dev_items is None:
                from ..evaluation.eval_sets import load_eval_set
                self._dev_items = load_eval_set(Path(e["dev"]), e["layout"], e["limit"])[1]
            for item in self._dev_items:
                if hasattr(model, "reconstruct"):
                    records.append(bench.reconstruct_item(model, item))
                else:
                    records.append(bench.predict_item(model, item)[:2])
        scores = [bench.score_images(p, t) for p, t in records]
        return {"step": self.step,
                "dev_loss": float(np.mean([np.abs(p.astype(np.float32) - t).mean() / 255.0 for p, t in records])),
                "dev_psnr": float(np.mean([s["psnr"] for s in scores])),
                "dev_ssim": float(np.mean([s["ssim"] for s in scores])), "seconds": time.perf_counter() - start}

    # -- checkpoint, plot -----------------------------------------------------------------------
    def save(self) -> None:
        info = {"model": self.model_name, "data": self.data_specs, "wall_time_s": self.wall_time,
                "sessions": self.sessions, "init_from": self.init_from,
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "architecture": self.recipe.architecture(self.net), "parameters": count_parameters(self.net)}
        save_checkpoint(self.run_dir, self.step, self.net, self.ema, self.optimizer, info)
        self.plot()

    def plot(self) -> None:
        from .plot import plot_run

        rows, dev = self.log.rows, self.dev_log.rows
        plot_run(self.run_dir / "plot.png", [int(r["step"]) for r in rows], [float(r["loss"]) for r in rows],
                 [int(r["step"]) for r in dev], [float(r["dev_psnr"]) for r in dev])

    def _request_stop(self, signum, frame) -> None:
        if self._stop:  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self._stop = True

    # -- the loop -------------------------------------------------------------------------------
    def train(self, stop_after: int | None = None) -> dict:
        """Train until ``optim.steps`` (or until ``stop_after``), checkpointing on the way and at the end.

        Ctrl-C finishes the current step, saves a checkpoint and raises :class:`Cancelled`.
        Returns the last log row.
        """
        from tqdm import tqdm

        total = self.config["optim"]["steps"]
        end = total if stop_after is None else min(total, stop_after)
        log_every, eval_every = self.config["log"]["every"], self.config["eval"]["every"]
        ckpt_every = self.config["log"]["checkpoint_every"]
        handler = None
        if threading.current_thread() is threading.main_thread():
            handler = signal.signal(signal.SIGINT, self._request_stop)
        row = {}
        try:
            with tqdm(total=total, initial=self.step, desc=f"train {self.model_name}", unit="step",
                      disable=not self.show_progress, file=sys.stderr) as bar:
                batches = self._batches(self.step + 1, end)
                while self.step < end:
                    row = self.train_step(self.step + 1, next(batches))
                    self.step += 1
                    self.wall_time += row["seconds"]
                    if self.step % log_every == 0 or self.step == end:
                        self.log.append(row)
                        if self._tb is not None:
                            for key in ("loss", *self.recipe.terms(), "lr", "grad_norm"):
                                if key in row:
                                    self._tb.add_scalar(f"train/{key}", row[key], self.step)
                    if self.step % eval_every == 0 or self.step == total:
                        dev = self.evaluate()
                        self.wall_time += dev["seconds"]
                        self.dev_log.append(dev)
                        if self._tb is not None:
                            for key in ("dev_loss", "dev_psnr", "dev_ssim"):
                                self._tb.add_scalar(f"dev/{key[4:]}", dev[key], self.step)
                    bar.update(1)
                    bar.set_postfix(loss=f"{row['loss']:.4f}")
                    if self.step % ckpt_every == 0 or self.step == end or self._stop:
                        self.save()
                    if self._stop:
                        print(f"vfi train: stopped at step {self.step}; checkpoint in {self.run_dir} "
                              "(continue with --resume)", file=sys.stderr)
                        raise Cancelled(f"training stopped at step {self.step}")
        finally:
            if handler is not None:
                signal.signal(signal.SIGINT, handler)
            if self._tb is not None:
                self._tb.flush()
        return row
