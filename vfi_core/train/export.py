"""``vfi export``: a run's EMA weights as the fp16 safetensors file and JSON model card the registry loads.

The card (``<name>.json`` beside ``<name>.safetensors``) records::

    {"name", "model", "architecture": {"class", "config"}, "parameters", "dtype": "float16",
     "training": {"config", "commands", "hardware", "data", "steps", "wall_time_s",
                  "legs": [{"command", "hardware", "from_step", "to_step", "wall_time_s", "steps_per_hour"}],
                  "init_from": null or {"file", "training": that file's card's training record}},
     "dev": the last dev evaluation of the run (step, dev_loss, dev_psnr, dev_ssim, dev set),
     ["note": free text], ["bench": overall and per-set figures of `vfi bench` on --bench DATASET],
     "exported": date}
"""
from __future__ import annotations

import csv
import datetime
import json
import os
from pathlib import Path

import torch

from ..errors import InputError
from ..files import publish
from ..registry import WEIGHTS_DIR
from .checkpoint import read_checkpoint
from .recipes import get_recipe

MAX_BYTES = 25 * 1024 * 1024


def lineage(init_from: str | dict | None, card: dict | None = None) -> dict | None:
    """Where a run started: ``{"file": the weight file, "training": its model card's training record}``
    (so a card keeps the whole history of runs continued from one another). The trainer captures it
    when the run starts, from the ``card`` it has read; a resume state that recorded only the file's
    path is read as the card there says now, when it is still there."""
    if init_from is None or isinstance(init_from, dict):
        return init_from
    if card is None:
        from ..weights import read_model_card

        card = read_model_card(init_from)
    return {"file": _portable(init_from), "training": card.get("training")}


def _legs(info: dict) -> list[dict]:
    """Each session of the run: its command, hardware, steps and seconds (and steps per hour)."""
    sessions, legs = info["sessions"], []
    for i, session in enumerate(sessions):
        last = i + 1 == len(sessions)
        to_step = info["step"] if last else sessions[i + 1]["from_step"]
        start_wall = session.get("from_wall_time_s")
        end_wall = info["wall_time_s"] if last else sessions[i + 1].get("from_wall_time_s")
        leg = {"command": session["command"], "hardware": session["hardware"],
               "from_step": session["from_step"], "to_step": to_step}
        if start_wall is not None and end_wall is not None:
            seconds = end_wall - start_wall
            leg["wall_time_s"] = round(seconds, 1)
            if seconds > 0:
                leg["steps_per_hour"] = round(3600 * (to_step - session["from_step"]) / seconds)
        if to_step > session["from_step"]:
            legs.append(leg)
    return legs


def _portable(path: str) -> str:
    """A shipped weight file as ``vfi_core/weights/<file>``, so a card names no machine's path."""
    resolved = Path(path).resolve()
    if resolved.parent == WEIGHTS_DIR:
        return resolved.relative_to(WEIGHTS_DIR.parents[1]).as_posix()
    return path


def export_run(run_dir: str | Path, out_dir: str | Path = WEIGHTS_DIR, name: str | None = None,
               bench_dataset: str | Path | None = None, bench_layout: str = "auto",
               bench_limit: int | None = None, note: str | None = None,
               bench_sets: list[str] | None = None) -> tuple[Path, Path]:
    """Write ``<out_dir>/<name>.safetensors`` (EMA weights in float16) and ``<name>.json``.

    Args:
        run_dir: a run directory written by :class:`~vfi_core.train.trainer.Trainer`.
        out_dir: where to write (default: the shipped ``vfi_core/weights``).
        name: file stem (default: the stem of the model's declared weight file, e.g. ``svmv``).
        bench_dataset: also score the exported weights on this benchmark and record the figures
            (``bench_layout``, ``bench_sets``, ``bench_limit`` as in :func:`~vfi_core.evaluation.eval_sets.load_eval_set`).
        note: free text kept in the card (``"note"``), e.g. what the run history alone does not say.
    Returns:
        the weight file and model card paths. Raises :class:`InputError` above 25 MB.
    """
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    info, tensors = read_checkpoint(run_dir)
    recipe = get_recipe(info["model"])
    name = name or recipe.weight_stem()
    weights = {k[len("ema."):]: v.to(torch.float16) if v.is_floating_point() else v
               for k, v in tensors.items() if k.startswith("ema.")}
    weights, architecture, parameters = recipe.export(weights, info["architecture"])
    parameters = info["parameters"] if parameters is None else parameters
    config = json.loads((run_dir / "config.json").read_text())
    dev = None
    if (run_dir / "dev.csv").is_file():
        with (run_dir / "dev.csv").open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= info["step"]]
        if rows:
            dev = {k: float(v) for k, v in rows[-1].items() if k != "seconds"}
            dev["step"] = int(dev["step"])
            dev["set"] = config["eval"]["dev"]
    card = {"name": name, "model": info["model"], "architecture": architecture,
            "parameters": parameters, "dtype": "float16",
            "training": {"config": config, "commands": [s["command"] for s in info["sessions"]],
                         "hardware": sorted({s["hardware"] for s in info["sessions"]}), "data": info["data"],
                         "steps": info["step"], "wall_time_s": round(info["wall_time_s"], 1),
                         "legs": _legs(info),
                         "init_from": lineage(info.get("init_from"))},
            **recipe.card_extras(config), "dev": dev, **({"note": note} if note else {}),
            "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    weight_path, card_path = out_dir / f"{name}.safetensors", out_dir / f"{name}.json"
    tmp = out_dir / f".{name}.{os.getpid()}.safetensors"
    save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp), metadata={"format": "pt"})
    if tmp.stat().st_size > MAX_BYTES:
        size = tmp.stat().st_size
        tmp.unlink()
        raise InputError(f"the weights take {size / 2**20:.1f} MiB, over the 25 MB limit of shipped weights")
    publish(tmp, weight_path)
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    if bench_dataset is not None:
        from ..evaluation import bench
        from ..evaluation.eval_sets import load_eval_set

        layout, items = load_eval_set(Path(bench_dataset), bench_layout, bench_limit, bench_sets)
        model = recipe.load_exported(weight_path)
        report = bench.build_report(f"{name}-export", {"model": name}, str(bench_dataset), layout,
                                    bench.evaluate_model(model, items))
        card["bench"] = {"dataset": str(bench_dataset), "layout": layout, **({"only": bench_sets} if bench_sets else {}),
                         "overall": report["overall"], "sets": report["sets"]}
        card_path.write_text(json.dumps(card, indent=1) + "\n")
    return weight_path, card_path
