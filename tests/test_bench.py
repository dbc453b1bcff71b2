"""vfi bench: layouts, scores (SSIM against scikit-image), model and predictions paths, reports, CLI."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vfi_core.evaluation import bench
from vfi_core.cli import main
from vfi_core.errors import InputError
from vfi_core.evaluation.eval_sets import load_eval_set
from vfi_core.interpolator import Interpolation, Interpolator
from vfi_core.registry import ModelDescriptor

H, W = 24, 32


def image(seed: int, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rgb[:, :, ::-1])
    return path


class Blend(Interpolator):
    """(1-t)*frame0 + t*frame1: a model whose output the tests can predict."""

    def _interpolate(self, frame0, frame1, t):
        t = t.view(-1, 1, 1, 1).to(frame0.dtype)
        return Interpolation((1 - t) * frame0 + t * frame1)


def blend_model() -> Blend:
    desc = ModelDescriptor(name="test-blend", summary="blend", arbitrary_t=True, size_multiple=1, supports_half=False)
    return Blend(descriptor=desc, device=torch.device("cpu"), dtype=torch.float32, params={})


def make_manifest(root: Path) -> Path:
    rows = ["set,frame0,frame1,gt,t"]
    for i in range(3):
        for k in range(3):
            write(root / f"seq{i}" / f"{k}.png", image(10 * i + k))
        rows.append(f"{'a' if i < 2 else 'b'},seq{i}/0.png,seq{i}/2.png,seq{i}/1.png,0.5")
    (root / "triplets.csv").write_text("\n".join(rows) + "\n")
    return root / "triplets.csv"


# ----------------------------------------------------------------------------- layouts
def test_triplets_csv(tmp_path):
    layout, items = load_eval_set(make_manifest(tmp_path), "auto")
    assert layout == "triplets-csv"
    assert [(i.set, i.key, i.t) for i in items] == [("a", "a/seq0/1", 0.5), ("a", "a/seq1/1", 0.5), ("b", "b/seq2/1", 0.5)]
    assert items[0].frame0 == tmp_path / "seq0/0.png" and items[0].gt == tmp_path / "seq0/1.png"


def test_triplets_csv_with_paths_outside_its_folder(tmp_path):
    data = tmp_path / "data"
    make_manifest(data)
    manifest = tmp_path / "lists" / "subset.csv"
    manifest.parent.mkdir()
    manifest.write_text(f"set,frame0,frame1,gt,t\nb,{data}/seq2/0.png,{data}/seq2/2.png,{data}/seq2/1.png,0.5\n"
                        "a,../data/seq0/0.png,../data/seq0/2.png,../data/seq0/1.png,0.5\n")
    _, items = load_eval_set(manifest)
    assert items[0].key == "b/" + (data / "seq2/1").as_posix().lstrip("/")
    assert items[1].key == "a/../data/seq0/1" and items[1].gt.is_file()


@pytest.mark.parametrize("names", [("frame_00.png", "frame_01_gt.png", "frame_02.png"),
                                   ("frame0.png", "frame1.png", "frame2.png")])
def test_ucf101(tmp_path, names):
    for seq in ("1", "2"):
        for k, name in enumerate(names):
            write(tmp_path / seq / name, image(k))
    layout, items = load_eval_set(tmp_path)
    assert layout == "ucf101" and len(items) == 2
    assert items[0].frame0.name == names[0] and items[0].gt.name == names[1] and items[0].frame1.name == names[2]


def test_middlebury(tmp_path):
    for seq in ("Beanbags", "Dimetrodon"):
        write(tmp_path / "input" / seq / "frame10.png", image(0))
        write(tmp_path / "input" / seq / "frame11.png", image(1))
    write(tmp_path / "gt" / "Dimetrodon" / "frame10i11.png", image(2))
    layout, items = load_eval_set(tmp_path)
    assert layout == "middlebury"
    assert [(i.set, i.key) for i in items] == [("middlebury", "middlebury/gt/Dimetrodon/frame10i11")]


def test_vimeo_triplet_uses_test_list(tmp_path):
    for folder in ("00001/0001", "00001/0002", "00002/0001"):
        for k in (1, 2, 3):
            write(tmp_path / "sequences" / folder / f"im{k}.png", image(k))
    layout, items = load_eval_set(tmp_path)
    assert layout == "vimeo-triplet" and len(items) == 3
    assert items[0].key == "vimeo_triplet/00001/0001/im2"
    (tmp_path / "tri_testlist.txt").write_text("00002/0001\n\n")
    _, items = load_eval_set(tmp_path, "vimeo-triplet")
    assert [i.key for i in items] == ["vimeo_triplet/00002/0001/im2"]


def test_vimeo_septuplet(tmp_path):
    for k in range(1, 8):
        write(tmp_path / "00001" / "0001" / f"im{k}.png", image(k))
    layout, items = load_eval_set(tmp_path)
    assert layout == "vimeo-septuplet"
    got = [(i.set, i.frame0.name, i.frame1.name, i.gt.name, round(i.t, 4)) for i in items]
    assert got == [("vimeo_gap1", "im3.png", "im5.png", "im4.png", 0.5), ("vimeo_gap3", "im1.png", "im7.png", "im4.png", 0.5),
                   ("vimeo_t1of3", "im1.png", "im7.png", "im3.png", 0.3333)]


def test_gap_and_seven(tmp_path):
    for k in range(13):
        write(tmp_path / "clipA" / f"{k:03d}.png", image(k))
    _, items = load_eval_set(tmp_path, "gap:2")
    assert [(i.frame0.stem, i.gt.stem, i.frame1.stem) for i in items] == [("000", "002", "004"), ("004", "006", "008"),
                                                                            ("008", "010", "012")]
    assert {i.set for i in items} == {"clipA"}
    _, items = load_eval_set(tmp_path, "seven")
    assert len(items) == 10
    assert [(i.frame0.stem, i.gt.stem, i.frame1.stem) for i in items[:5]] == [("000", f"00{k}", "006") for k in range(1, 6)]
    assert [i.t for i in items[:5]] == pytest.approx([k / 6 for k in range(1, 6)])
    _, items = load_eval_set(tmp_path / "clipA", "gap:1", limit=2)       # a single sequence folder
    assert [i.key for i in items] == ["clipA/001", "clipA/003"]


def test_sets_keep_only_the_named_sets(tmp_path):
    manifest = make_manifest(tmp_path)
    _, items = load_eval_set(manifest, sets=["b"])
    assert [i.key for i in items] == ["b/seq2/1"]
    _, items = load_eval_set(manifest, sets=["b", "a"], limit=2)       # dataset order, then the limit
    assert [i.key for i in items] == ["a/seq0/1", "a/seq1/1"]
    with pytest.raises(InputError, match="has no set c.*its sets: a, b"):
        load_eval_set(manifest, sets=["a", "c"])


@pytest.mark.parametrize("layout, message", [("bogus", "unknown layout"), ("gap:0", "positive integer"),
                                             ("gap:x", "positive integer"), ("auto", "cannot tell the layout")])
def test_layout_errors(tmp_path, layout, message):
    write(tmp_path / "clip" / "0.png", image(0))
    with pytest.raises(InputError, match=message):
        load_eval_set(tmp_path, layout)


def test_missing_and_empty_datasets(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_eval_set(tmp_path / "nothing")
    (tmp_path / "empty.csv").write_text("set,frame0,frame1,gt,t\n")
    with pytest.raises(InputError, match="no items"):
        load_eval_set(tmp_path / "empty.csv")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="missing column"):
        load_eval_set(tmp_path / "bad.csv")


# ----------------------------------------------------------------------------- scores
def test_ssim_agrees_with_scikit_image():
    from skimage.metrics import structural_similarity

    truth = cv2.GaussianBlur(image(1, 40, 50), (5, 5), 1.0)
    noisy = np.clip(truth.astype(int) + np.random.default_rng(2).integers(-25, 26, truth.shape), 0, 255).astype(np.uint8)
    scores = bench.score_images(noisy, truth)
    expected = structural_similarity(noisy, truth, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=255, channel_axis=-1)
    assert abs(scores["ssim"] - expected) < 1e-4
    mse = np.mean((noisy.astype(float) - truth) ** 2)
    assert scores["psnr"] == pytest.approx(10 * np.log10(255 ** 2 / mse))


def test_score_size_mismatch():
    with pytest.raises(InputError, match="ground truth is"):
        bench.score_images(image(0), image(1, H + 2, W))


def test_model_scores_match_its_rounded_prediction(tmp_path):
    _, items = load_eval_set(make_manifest(tmp_path))
    records = bench.evaluate_model(blend_model(), items, save_dir=tmp_path / "pred", show_progress=False)
    for item, record in zip(items, records):
        f0, f1, gt = (bench.read_rgb(p) for p in (item.frame0, item.frame1, item.gt))
        expected = np.round((f0.astype(np.float64) + f1) / 2)            # ties: the prediction is checked below
        saved = bench.read_rgb(tmp_path / "pred" / f"{item.key}.png")
        assert np.abs(saved.astype(int) - expected).max() <= 1
        assert record["psnr"] == pytest.approx(bench.score_images(saved, gt)["psnr"])
        assert record["sec"] >= 0 and record["set"] == item.set
    # the saved folder scores the same through the predictions path
    again = bench.evaluate_predictions(tmp_path / "pred", items, show_progress=False)
    assert [r["psnr"] for r in again] == pytest.approx([r["psnr"] for r in records])
    assert [r["ssim"] for r in again] == pytest.approx([r["ssim"] for r in records])


def test_model_input_size_mismatch(tmp_path):
    write(tmp_path / "0.png", image(0))
    write(tmp_path / "1.png", image(1, H, W + 2))
    write(tmp_path / "2.png", image(2))
    (tmp_path / "m.csv").write_text("set,frame0,frame1,gt,t\ns,0.png,2.png,1.png,0.5\n")
    _, items = load_eval_set(tmp_path / "m.csv")
    with pytest.raises(InputError, match="differ in size"):
        bench.evaluate_model(blend_model(), items, show_progress=False)


def test_missing_prediction(tmp_path):
    _, items = load_eval_set(make_manifest(tmp_path))
    (tmp_path / "pred").mkdir()
    with pytest.raises(InputError, match="no prediction for a/seq0/1"):
        bench.evaluate_predictions(tmp_path / "pred", items, show_progress=False)


def test_speed_never_times_the_same_pair_twice_in_a_row():
    """Models may reuse work for a repeated pair (flow-asb keeps its flows): timing must not."""
    calls = []

    class Recorder:
        def interpolate(self, frame0, frame1, t):
            calls.append((frame0, frame1))

    f0, f1 = image(1), image(2)
    bench.measure_speed(Recorder(), f0, f1, sizes=((40, 24),), warmup=1, repeats=3)
    assert len(calls) == 4
    for (a0, a1), (b0, b1) in zip(calls, calls[1:]):
        assert not (torch.equal(a0, b0) and torch.equal(a1, b1))


def test_summary_means_per_set_and_overall():
    records = [{"set": "a", "psnr": 30.0, "ssim": 0.9, "sec": 1.0}, {"set": "a", "psnr": 20.0, "ssim": 0.7, "sec": 3.0},
               {"set": "b", "psnr": 40.0, "ssim": 1.0, "sec": 2.0}]
    sets, overall = bench.summarize(records)
    assert sets == {"a": {"n": 2, "psnr": 25.0, "ssim": pytest.approx(0.8), "sec": 2.0},
                    "b": {"n": 1, "psnr": 40.0, "ssim": 1.0, "sec": 2.0}}
    assert overall == {"n": 3, "psnr": 30.0, "ssim": pytest.approx(0.8667, abs=1e-4), "sec": 2.0}


def test_speed_and_memory():
    f0, f1 = bench.synthetic_pair(64, 48)
    speed = bench.measure_speed(blend_model(), f0, f1, sizes=((40, 24), (64, 36)), warmup=1, repeats=2)
    assert list(speed) == ["40x24", "64x36"] and all(s >= 0 for s in speed.values())
    assert bench.peak_memory()["peak_rss_mb"] > 10


# ----------------------------------------------------------------------------- CLI and reports
def test_cli_predictions_report_and_compare(tmp_path, capsys):
    manifest = make_manifest(tmp_path / "data")
    _, items = load_eval_set(manifest)
    for name, shift in (("good", 0), ("worse", 1)):
        for item in items:
            gt = bench.read_rgb(item.gt)
            write(tmp_path / name / f"{item.key}.png", np.clip(gt.astype(int) + 8 * shift + 2, 0, 255).astype(np.uint8))
        assert main(["bench", "--predictions", str(tmp_path / name), "--dataset", str(manifest),
                     "--out", str(tmp_path / "out"), "--name", name]) == 0
    out = capsys.readouterr().out
    assert "| **overall** | 3 |" in out
    report = json.loads((tmp_path / "out" / "good.json").read_text())
    assert report["layout"] == "triplets-csv" and len(report["items"]) == 3 and set(report["sets"]) == {"a", "b"}
    assert (tmp_path / "out" / "good.md").read_text().startswith("### good")
    assert main(["bench", "--compare", str(tmp_path / "out" / "good.json"), str(tmp_path / "out" / "worse.json")]) == 0
    table = capsys.readouterr().out
    assert "worse − good" in table
    row = next(line for line in table.splitlines() if line.startswith("| **overall**") and "| psnr |" in line)
    good, worse = report["overall"]["psnr"], json.loads((tmp_path / "out" / "worse.json").read_text())["overall"]["psnr"]
    assert f"{worse - good:+.2f}" in row


def test_cli_model_run(tmp_path, capsys):
    manifest = make_manifest(tmp_path / "data")
    assert main(["bench", "--model", "flow-asb", "--dataset", str(manifest), "--sets", "b,a", "--limit", "1",
                 "--out", str(tmp_path / "out"), "--name", "run"]) == 0
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert report["source"]["model"] == "flow-asb" and report["overall"]["n"] == 1
    # the manifest's frames are independent noise, so SSIM is near 0 and of either sign
    assert -1 <= report["overall"]["ssim"] <= 1 and report["memory"]["peak_rss_mb"] > 0


@pytest.mark.parametrize("argv, message", [
    (["bench"], "needs --dataset"),
    (["bench", "--dataset", "/no/such/dataset.csv"], "does not exist"),
    (["bench", "--predictions", "p", "--model", "flow-asb", "--dataset", "x"], "takes no --model"),
    (["bench", "--dataset", "x", "--sets", ","], "takes one or more set names"),
])
def test_cli_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_compare_rejects_non_reports(tmp_path):
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="not a vfi bench report"):
        bench.load_report(tmp_path / "x.json")


def test_sweep_plot_draws_a_point_per_report(tmp_path, capsys):
    import importlib.util

    from PIL import Image

    spec = importlib.util.spec_from_file_location("sweep_plot", Path(__file__).parents[1] / "tools" / "sweep_plot.py")
    sweep_plot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep_plot)
    paths = []
    for steps, (psnr, sec) in {10: (30.0, 1.0), 50: (31.5, 4.0)}.items():
        paths.append(tmp_path / f"steps-{steps}.json")
        paths[-1].write_text(json.dumps({"name": f"steps-{steps}", "sets": {},
                                         "overall": {"psnr": psnr, "ssim": 0.9, "sec": sec}}))
    out = tmp_path / "sweep.png"
    assert sweep_plot.main([*map(str, paths), "--labels", "10", "50", "--out", str(out)]) == 0
    assert "| 50 | 4.000 | 31.5000 | 0.9000 |" in capsys.readouterr().out
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape == (280, 2 * 420, 3)                        # PSNR and SSIM panels (no perceptual)
    psnr_dots = np.all(image[:, :420] == (40, 90, 200), axis=-1)
    assert psnr_dots.any() and not np.all(image[:, 420:] == (40, 90, 200), axis=-1).any()
    with pytest.raises(SystemExit):
        sweep_plot.main([str(paths[0]), "--labels", "a", "b", "--out", str(out)])
