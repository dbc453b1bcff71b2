"""PNG plots drawn with PIL (no plotting dependency): a run's training loss and dev PSNR, and
quality against seconds for a sweep of benchmark reports."""
from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

_W, _H, _PAD = 420, 280, 44


def _panel(draw: ImageDraw.ImageDraw, x0: int, title: str, xs: list[float], ys: list[float],
           colour: tuple[int, int, int], log: bool, x_label: str = "step", labels: list[str] | None = None) -> None:
    """One panel: ``ys`` against ``xs`` (a line, or a dot per point when ``labels`` name them)."""
    left, top, right, bottom = x0 + _PAD, _PAD // 2 + 14, x0 + _W - 12, _H - _PAD
    draw.rectangle((left, top, right, bottom), outline=(160, 160, 160))
    draw.text((left, 4), title, fill=(0, 0, 0))
    kept = [k for k, y in enumerate(ys) if y == y and (y > 0 or not log) and abs(y) != math.inf]
    points = [(xs[k], math.log10(ys[k]) if log else ys[k]) for k in kept]
    if not points:
        draw.text((left + 8, top + 8), "no data yet", fill=(120, 120, 120))
        return
    x_lo, x_hi = min(p[0] for p in points), max(p[0] for p in points)
    y_lo, y_hi = min(p[1] for p in points), max(p[1] for p in points)
    x_hi, y_hi = (x_hi if x_hi > x_lo else x_lo + 1), (y_hi if y_hi > y_lo else y_lo + 1e-6)

    def at(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x_lo) / (x_hi - x_lo) * (right - left),
                bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top))

    for value, label_y in ((y_lo, bottom), (y_hi, top)):
        shown = 10 ** value if log else value
        draw.text((x0 + 2, label_y - 6), f"{shown:.3g}", fill=(80, 80, 80))
    draw.text((left, bottom + 4), f"{x_lo:g}", fill=(80, 80, 80))
    draw.text((right - 30, bottom + 4), f"{x_hi:g}", fill=(80, 80, 80))
    draw.text(((left + right) // 2 - 3 * len(x_label), bottom + 18), x_label, fill=(80, 80, 80))
    if labels is not None:
        for (x, y), label in zip(points, [labels[k] for k in kept]):
            cx, cy = at(x, y)
            draw.ellipse((cx - 3, cy - 3, cx + 3, cy + 3), fill=colour)
            draw.text((min(cx + 5, right - 6 * len(label)), cy - 12 if cy > top + 14 else cy + 2), label, fill=(0, 0, 0))
    elif len(points) == 1:
        cx, cy = at(*points[0])
        draw.ellipse((cx - 2, cy - 2, cx + 2, cy + 2), fill=colour)
    else:
        draw.line([at(x, y) for x, y in points], fill=colour, width=2)


def plot_run(path: Path, steps: list[int], losses: list[float], dev_steps: list[int],
             dev_psnr: list[float]) -> None:
    """Write ``path``: training loss (log scale) and dev PSNR against the step, side by side."""
    image = Image.new("RGB", (2 * _W, _H), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    _panel(draw, 0, "training loss (log)", steps, losses, (200, 60, 40), log=True)
    _panel(draw, _W, "dev PSNR (dB, EMA weights)", dev_steps, dev_psnr, (40, 90, 200), log=False)
    image.save(path)


def plot_sweep(path: Path, labels: list[str], seconds: list[float], panels: dict[str, list[float]]) -> None:
    """Write ``path``: one panel per metric (``panels``: title -> a value per point) against seconds,
    each point named by its label (e.g. a steps sweep: quality against seconds per frame)."""
    image = Image.new("RGB", (len(panels) * _W, _H), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    colours = ((40, 90, 200), (200, 60, 40), (40, 150, 70))
    for k, (title, values) in enumerate(panels.items()):
        _panel(draw, k * _W, title, seconds, values, colours[k % 3], log=False, x_label="seconds per frame",
               labels=labels)
    image.save(path)
