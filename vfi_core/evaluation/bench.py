"""Benchmarking: score an interpolator (or a folder of its predictions) on a dataset, time it.

Definitions, identical to the peers' evaluation script (``eval_triplets.py``) so that figures compare:

- images are read as RGB uint8 (OpenCV, BGR swapped to RGB); a model's prediction is converted with
  :func:`vfi_core.frames.to_numpy_uint8` (rounded) before scoring;
- PSNR and SSIM are :func:`vfi_core.evaluation.metrics.psnr_uint8` and :func:`vfi_core.evaluation.metrics.ssim_uint8`
  (8-bit RGB, full frame; SSIM with an 11x11 Gaussian window, sigma 1.5, as scikit-image);
- the perceptual distance, when asked for, is :func:`vfi_core.evaluation.perceptual.perceptual_distance`;
- per set and overall figures are means over items; seconds per item are medians.

Speed (:func:`measure_speed`) is seconds per interpolated frame at 854x480, 1280x720 and 1920x1080
(a real frame pair resized, or a synthetic pair), median of a few timed runs after warm-up. Memory
is the peak resident set size of the process and, on CUDA, ``torch.cuda.max_memory_allocated``.

A report is a JSON-serialisable dict::

    {"name", "source": {"model", "params", "device", "dtype"} or {"predictions"},
     "dataset", "layout", "items": [{"set", "key", "t", "psnr", "ssim", ["perceptual"], ["sec"]}],
     "sets": {set: {"n", "psnr", "ssim", ["perceptual"], ["sec"]}}, "overall": {...},
     ["speed": {"854x480": s, ...}], "memory": {"peak_rss_mb", ["cuda_peak_mb"]}}
"""
from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..errors import InputError
from .eval_sets import EvalItem
from .metrics import psnr_uint8, ssim_uint8

SPEED_SIZES = ((854, 480), (1280, 720), (1920, 1080))
METRICS = ("psnr", "ssim", "perceptual")


def read_rgb(path: Path) -> np.ndarray:
    """Read an image file as an ``(H,W,3)`` RGB uint8 array; :class:`InputError` if unreadable."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"cannot read image {path}" if Path(path).exists() else f"image {path} does not exist")
    return np.ascontiguousarray(image[:, :, ::-1])


def write_rgb(path: Path, image: np.ndarray) -> None:
    """Write an ``(H,W,3)`` RGB uint8 array as an image file (format from the suffix)."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(image[:, :, ::-1])):
        raise InputError(f"cannot write image {path}")


def score_images(prediction: np.ndarray, truth: np.ndarray,
                 perceptual: Callable[[np.ndarray, np.ndarray], float] | None = None) -> dict[str, float]:
    """PSNR, SSIM (and the perceptual distance if ``perceptual`` is given) of two ``(H,W,3)`` uint8 images."""
    if prediction.shape != truth.shape:
        raise InputError(f"prediction is {prediction.shape[1]}x{prediction.shape[0]} "
                         f"but the ground truth is {truth.shape[1]}x{truth.shape[0]}")
    scores = {"psnr": psnr_uint8(prediction, truth), "ssim": ssim_uint8(prediction, truth)}
    if perceptual is not None:
        scores["perceptual"] = perceptual(prediction, truth)
    return scores


def _progress(items: list[EvalItem], show: bool, desc: str):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="frame", disable=not show, file=sys.stderr)


def predict_item(model, item: EvalItem) -> tuple[np.ndarray, np.ndarray, float]:
    """Run ``model`` on ``item``: the ``(H,W,3)`` uint8 prediction, the truth and the seconds taken.

    The time covers ``model.interpolate`` and the conversions around it, not the image reading.
    """
    import torch

    from ..frames import from_numpy, to_numpy_uint8

    frame0, frame1, truth = read_rgb(item.frame0), read_rgb(item.frame1), read_rgb(item.gt)
    if frame0.shape != frame1.shape or frame0.shape != truth.shape:
        raise InputError(f"{item.key}: frame0, frame1 and the ground truth differ in size "
                         f"({frame0.shape[:2]}, {frame1.shape[:2]}, {truth.shape[:2]})")
    start = time.perf_counter()
    prediction = model.interpolate(from_numpy(frame0), from_numpy(frame1), torch.tensor([item.t]))
    prediction = to_numpy_uint8(prediction)[0]
    return prediction, truth, time.perf_counter() - start


def reconstruct_item(model, item: EvalItem) -> tuple[np.ndarray, np.ndarray]:
    """An autoencoder's ``(H,W,3)`` uint8 reconstruction of ``item``'s truth (``model.reconstruct(frame0,
    frame1, t, truth)``) and the truth: what a training run's dev figures score for such a stage."""
    import torch

    from ..frames import from_numpy, to_numpy_uint8

    frame0, frame1, truth = read_rgb(item.frame0), read_rgb(item.frame1), read_rgb(item.gt)
    prediction = model.reconstruct(from_numpy(frame0), from_numpy(frame1), torch.tensor([item.t]), from_numpy(truth))
    return to_numpy_uint8(prediction)[0], truth


def predict_window(model, items: list[EvalItem]) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Run a window model once on items that share ``frame0`` and ``frame1`` (e.g. frames 2..6 of
    the 7-frame protocol): ``model.interpolate_times(frame0, frame1, [t...])`` gives every frame in
    one pass. Returns :func:`predict_item`'s triple per item; the seconds are the pass's share."""
    from ..frames import from_numpy, to_numpy_uint8

    frame0, frame1 = read_rgb(items[0].frame0), read_rgb(items[0].frame1)
    truths = [read_rgb(item.gt) for item in items]
    for item, truth in zip(items, truths):
        if frame0.shape != frame1.shape or frame0.shape != truth.shape:
            raise InputError(f"{item.key}: frame0, frame1 and the ground truth differ in size "
                             f"({frame0.shape[:2]}, {frame1.shape[:2]}, {truth.shape[:2]})")
    start = time.perf_counter()
    frames = model.interpolate_times(from_numpy(frame0), from_numpy(frame1), [item.t for item in items])
    predictions = to_numpy_uint8(frames[0])
    seconds = (time.perf_counter() - start) / len(items)
    return [(predictions[k], truths[k], seconds) for k in range(len(items))]


def _windows(items: list[EvalItem]) -> list[list[EvalItem]]:
    """Consecutive items that share ``frame0`` and ``frame1``, grouped."""
    groups: list[list[EvalItem]] = []
    for item in items:
        if groups and (groups[-1][0].frame0, groups[-1][0].frame1) == (item.frame0, item.frame1):
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


def evaluate_model(model, items: list[EvalItem], perceptual=None, save_dir: Path | None = None,
                   show_progress: bool = True) -> list[dict]:
    """Score ``model`` (an :class:`~vfi_core.interpolator.Interpolator`) on ``items``.

    Returns one record per item: ``{"set", "key", "t", "psnr", "ssim", ["perceptual"], "sec"}``.
    ``save_dir`` keeps the predictions as ``<save_dir>/<key>.png`` (a predictions folder).
    A model with an ``interpolate_times(frame0, frame1, times)`` method (window models such as
    ``mivid``) is called once per run of items sharing their input frames (:func:`predict_window`).
    """
    from tqdm import tqdm

    windowed = callable(getattr(model, "interpolate_times", None))
    groups = _windows(items) if windowed else [[item] for item in items]
    records = []
    with tqdm(total=len(items), desc=f"bench {model.name}", unit="frame", disable=not show_progress,
              file=sys.stderr) as bar:
        for group in groups:
            results = predict_window(model, group) if windowed else [predict_item(model, group[0])]
            for item, (prediction, truth, seconds) in zip(group, results):
                if save_dir is not None:
                    write_rgb(Path(save_dir) / f"{item.key}.png", prediction)
                records.append({"set": item.set, "key": item.key, "t": item.t,
                                **score_images(prediction, truth, perceptual), "sec": seconds})
            bar.update(len(group))
    return records


def evaluate_predictions(predictions: Path, items: list[EvalItem], perceptual=None,
                         show_progress: bool = True) -> list[dict]:
    """Score a folder holding each item's prediction at ``<predictions>/<key>.png``.

    Returns one record per item: ``{"set", "key", "t", "psnr", "ssim", ["perceptual"]}``.
    """
    predictions = Path(predictions)
    if not predictions.is_dir():
        raise InputError(f"predictions folder {predictions} does not exist")
    records = []
    for item in _progress(items, show_progress, f"bench {predictions.name}"):
        path = predictions / f"{item.key}.png"
        if not path.is_file():
            raise InputError(f"no prediction for {item.key}: expected {path}")
        records.append({"set": item.set, "key": item.key, "t": item.t,
                        **score_images(read_rgb(path), read_rgb(item.gt), perceptual)})
    return records


def summarize(records: Iterable[dict]) -> tuple[dict[str, dict], dict]:
    """Per-set and overall figures: ``n``, mean of each metric present, median ``sec``.

    Sets keep the order in which they first appear. An infinite PSNR (identical images) makes the
    mean infinite, as it does in the peers' script.
    """
    records = list(records)

    def figures(group: list[dict]) -> dict:
        out = {"n": len(group)}
        for metric in METRICS:
            if metric in group[0]:
                out[metric] = statistics.fmean(r[metric] for r in group)
        if "sec" in group[0]:
            out["sec"] = statistics.median(r["sec"] for r in group)
        return out

    by_set: dict[str, list[dict]] = {}
    for record in records:
        by_set.setdefault(record["set"], []).append(record)
    return {name: figures(group) for name, group in by_set.items()}, figures(records)


def _resized_pair(frame0: np.ndarray, frame1: np.ndarray, size: tuple[int, int]):
    import cv2

    from ..frames import from_numpy

    return tuple(from_numpy(cv2.resize(f, size, interpolation=cv2.INTER_AREA if f.shape[1] > size[0]
                                       else cv2.INTER_CUBIC)) for f in (frame0, frame1))


def synthetic_pair(width: int = 640, height: int = 360, shift: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random ``(H,W,3)`` uint8 texture and the same texture shifted ``shift`` pixels right."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.random((height // 8 + 1, (width + shift) // 8 + 1, 3), dtype=np.float32)
    texture = cv2.resize(noise, (width + shift, height), interpolation=cv2.INTER_CUBIC)
    texture = (np.clip(texture, 0, 1) * 255).astype(np.uint8)
    return np.ascontiguousarray(texture[:, shift:]), np.ascontiguousarray(texture[:, :width])


def measure_speed(model, frame0: np.ndarray, frame1: np.ndarray, sizes=SPEED_SIZES, warmup: int = 1,
                  repeats: int = 3) -> dict[str, float]:
    """Median seconds per interpolated frame (t = 0.5) at each ``(width, height)`` in ``sizes``.

    ``frame0``/``frame1`` are ``(H,W,3)`` uint8 RGB, resized to each size; ``warmup`` untimed runs
    come first; every other run swaps the two frames (a new pair each call: nothing cached counts).
    On a GPU each run is synchronised so that the time is the GPU's too.
    """
    import torch

    from ..device import synchronize

    device = getattr(model, "device", torch.device("cpu"))
    speed = {}
    for width, height in sizes:
        x0, x1 = _resized_pair(frame0, frame1, (width, height))
        times = []
        for run in range(warmup + repeats):
            # the pair alternates direction, so that no model reuses work from its previous call
            # (flow-asb keeps the last pair's flows for the other t of that pair)
            first, second = (x0, x1) if run % 2 == 0 else (x1, x0)
            start = time.perf_counter()
            model.interpolate(first, second, 0.5)
            synchronize(device)
            if run >= warmup:
                times.append(time.perf_counter() - start)
        speed[f"{width}x{height}"] = statistics.median(times)
    return speed


def peak_memory(device=None) -> dict[str, float]:
    """Peak resident set size of this process in MiB, and the CUDA peak allocation when on CUDA."""
    import torch

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mb = rss / 2**20 if sys.platform == "darwin" else rss / 2**10   # bytes on macOS, KiB on Linux
    memory = {"peak_rss_mb": round(rss_mb, 1)}
    if device is not None and torch.device(device).type == "cuda":
        memory["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return memory


def build_report(name: str, source: dict, dataset: str, layout: str, records: list[dict],
                 speed: dict[str, float] | None = None, memory: dict | None = None) -> dict:
    """Assemble a report dict (see the module docstring) from per-item records."""
    sets, overall = summarize(records)
    report = {"name": name, "source": source, "dataset": dataset, "layout": layout,
              "sets": sets, "overall": overall}
    if speed is not None:
        report["speed"] = speed
    if memory is not None:
        report["memory"] = memory
    report["items"] = records
    return report


def write_report(report: dict, out_dir: Path) -> tuple[Path, Path]:
    """Write ``<out_dir>/<name>.json`` and ``<name>.md``; return both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{report['name']}.json", out_dir / f"{report['name']}.md"
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    md_path.write_text(markdown_report(report) + "\n")
    return json_path, md_path


def load_report(path: str | Path) -> dict:
    """Read a report JSON written by :func:`write_report`; :class:`InputError` if it is not one."""
    path = Path(path)
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"report {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"report {path} is not valid JSON: {exc}") from None
    if not isinstance(report, dict) or not {"name", "sets", "overall"} <= report.keys():
        raise InputError(f"{path} is not a vfi bench report (no name/sets/overall)")
    return report


def _fmt(metric: str, value: float) -> str:
    if metric == "psnr":
        return f"{value:.2f}"
    if metric == "sec":
        return f"{value:.3f}"
    return f"{value:.4f}"


def _columns(groups: Iterable[dict]) -> list[str]:
    present = set().union(*(g.keys() for g in groups))
    return [m for m in (*METRICS, "sec") if m in present]


def markdown_report(report: dict) -> str:
    """Markdown: a table of n / PSNR / SSIM / [perceptual] / [s/frame] per set and overall, then speed."""
    rows = [*report["sets"].items(), ("**overall**", report["overall"])]
    columns = _columns(g for _, g in rows)
    headings = {"psnr": "PSNR (dB)", "ssim": "SSIM", "perceptual": "perceptual ↓", "sec": "s/frame (median)"}
    lines = [f"### {report['name']}", "",
             "| set | n | " + " | ".join(headings[c] for c in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for name, group in rows:
        cells = [_fmt(c, group[c]) if c in group else "–" for c in columns]
        lines.append(f"| {name} | {group['n']} | " + " | ".join(cells) + " |")
    if "speed" in report:
        lines += ["", "| resolution | " + " | ".join(report["speed"]) + " |",
                  "|---|" + "---|" * len(report["speed"]),
                  "| s/frame | " + " | ".join(f"{s:.3f}" for s in report["speed"].values()) + " |"]
    if "memory" in report:
        lines += ["", "Peak memory: " + ", ".join(f"{k} {v}" for k, v in report["memory"].items())]
    return "\n".join(lines)


def compare_reports(reports: list[dict]) -> str:
    """Markdown comparing reports side by side per set, with each one's difference to the first.

    A difference is ``other - first``: for PSNR and SSIM higher is better, for the perceptual
    distance and seconds lower is better.
    """
    if len(reports) < 2:
        raise InputError("--compare needs at least two reports")
    names = [r["name"] for r in reports]
    if len(set(names)) != len(names):
        names = [f"{n} ({i + 1})" for i, n in enumerate(names)]
    set_names = list(dict.fromkeys(s for r in reports for s in r["sets"]))
    columns = _columns([*(r["overall"] for r in reports)])
    header = ["set", "metric", *names, *(f"{n} − {names[0]}" for n in names[1:])]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for set_name in [*set_names, "overall"]:
        groups = [r["overall"] if set_name == "overall" else r["sets"].get(set_name) for r in reports]
        ns = "/".join(str(g["n"]) if g else "–" for g in groups)
        for metric in columns:
            values = [g.get(metric) if g else None for g in groups]
            cells = [_fmt(metric, v) if v is not None else "–" for v in values]
            diffs = []
            for v in values[1:]:
                if v is None or values[0] is None:
                    diffs.append("–")
                else:
                    diffs.append(f"{v - values[0]:+.{2 if metric == 'psnr' else 3 if metric == 'sec' else 4}f}")
            label = f"**{set_name}**" if set_name == "overall" else set_name
            lines.append(f"| {label} (n {ns}) | {metric} | " + " | ".join(cells + diffs) + " |")
    speeds = [r.get("speed", {}) for r in reports]
    resolutions = list(dict.fromkeys(k for s in speeds for k in s))
    for res in resolutions:
        values = [s.get(res) for s in speeds]
        cells = [f"{v:.3f}" if v is not None else "–" for v in values]
        diffs = ["–" if v is None or values[0] is None else f"{v - values[0]:+.3f}" for v in values[1:]]
        lines.append(f"| speed {res} | s/frame | " + " | ".join(cells + diffs) + " |")
    return "\n".join(lines)
