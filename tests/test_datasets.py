"""Real-frame datasets on a tiny fake layout: exclusions, windows, triplets, packs, video sources.

Every fake frame is a constant colour that encodes (sequence, frame index), so any crop, flip or
reversal of it still tells where it came from.
"""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import vfi_core
from vfi_core.data import (Exclusions, FolderSource, PackedCropDataset, TripletDataset, VideoSource, WindowDataset,
                           dev_benchmark_exclusions, open_sources, pack_training_crops)
from vfi_core.errors import InputError

SAMPLE_CLIP = Path(vfi_core.__file__).parent / "samples" / "bikes_60.mp4"
SEQUENCES = {"davis2016/blackswan": 1, "davis2016/camel": 2, "clips/seq": 3, "vimeo/00001/0001": 4}
H, W = 16, 20


def _write_frame(path: Path, sequence: int, index: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.empty((H, W, 3), np.uint8)
    rgb[:] = (sequence * 20, index * 10, 128)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shared")
    dev = root / "data" / "dev"
    for name in ("davis2016/blackswan", "davis2016/camel"):
        for i in range(10):
            _write_frame(dev / name / f"{i:05d}.png", SEQUENCES[name], i)
    for i in range(12):
        _write_frame(dev / "clips/seq" / f"{i:03d}.png", SEQUENCES["clips/seq"], i)
    for i in range(1, 8):
        _write_frame(dev / "vimeo/00001/0001" / f"im{i}.png", SEQUENCES["vimeo/00001/0001"], i)
    (dev / "triplets.csv").write_text(
        "set,frame0,frame1,gt,t\n"
        "davis_gap1,davis2016/blackswan/00000.png,davis2016/blackswan/00002.png,davis2016/blackswan/00001.png,0.5\n"
        "clip,clips/seq/004.png,clips/seq/006.png,clips/seq/005.png,0.5\n"
        "vimeo_gap1,vimeo/00001/0001/im3.png,vimeo/00001/0001/im5.png,vimeo/00001/0001/im4.png,0.5\n"
        "vimeo_gap3,vimeo/00001/0001/im1.png,vimeo/00001/0001/im7.png,vimeo/00001/0001/im4.png,0.5\n")
    return root


EXCLUDED = {(1, i) for i in range(10)} | {(3, 4), (3, 5), (3, 6)} | {(4, i) for i in (1, 3, 4, 5, 7)}


def _identity(frame: torch.Tensor) -> tuple[int, int]:
    """(sequence, index) of a constant fake frame ``(3,h,w)``."""
    r, g = (frame[:2].reshape(2, -1) * 255).round().int()
    assert (r == r[0]).all() and (g == g[0]).all()
    return int(r[0]) // 20, int(g[0]) // 10


def test_dev_benchmark_exclusions_list_csv_frames_and_validation_sequences(shared):
    exclusions = dev_benchmark_exclusions(shared)
    dev = shared / "data" / "dev"
    assert (dev / "clips/seq/005.png").resolve() in exclusions.files
    assert (dev / "davis2016/blackswan").resolve() in exclusions.folders
    assert exclusions.excludes(dev / "davis2016/blackswan/00007.png")  # whole validation sequence
    assert not exclusions.excludes(dev / "davis2016/camel/00007.png")
    assert not exclusions.excludes(dev / "clips/seq/007.png")
    with pytest.raises(InputError, match="triplets.csv"):
        dev_benchmark_exclusions(shared / "nowhere")


def test_open_sources_drops_excluded_frames_and_splits_runs(shared):
    sources = open_sources([shared / "data" / "dev"], dev_benchmark_exclusions(shared))
    runs = {Path(s.name).relative_to(shared / "data" / "dev").as_posix(): s.runs for s in sources}
    assert "davis2016/blackswan" not in runs
    assert runs["davis2016/camel"] == [(0, 10)]
    assert runs["clips/seq"] == [(0, 4), (7, 12)]
    assert runs["vimeo/00001/0001"] == [(1, 2), (5, 6)]  # im2 and im6 alone: no window fits


@pytest.mark.parametrize("window, max_stride", [(3, 2), (4, 1)])
def test_windows_never_contain_excluded_frames(shared, window, max_stride):
    data = WindowDataset([shared / "data" / "dev"], window=window, crop=(8, 8), max_stride=max_stride, length=150,
                         seed=3, exclusions=dev_benchmark_exclusions(shared))
    reversed_seen = 0
    for item in data:
        frames = item["frames"]
        assert frames.shape == (window, 3, 8, 8) and frames.dtype == torch.float32
        ids = [_identity(f) for f in frames]
        assert not set(ids) & EXCLUDED
        assert len({s for s, _ in ids}) == 1
        steps = {b[1] - a[1] for a, b in zip(ids, ids[1:])}
        assert len(steps) == 1 and abs(steps.pop()) == int(item["stride"])
        # no window bridges the excluded 004-006 of clips/seq either
        assert not (ids[0][0] == 3 and min(i for _, i in ids) < 4 < max(i for _, i in ids))
        reversed_seen += ids[0][1] > ids[-1][1]
    assert 0 < reversed_seen < len(data)


def test_triplets_have_consistent_t_and_no_excluded_frames(shared):
    data = TripletDataset([shared / "data" / "dev"], crop=8, max_gap=4, length=150, seed=1,
                          exclusions=dev_benchmark_exclusions(shared))
    ts = []
    for item in data:
        (s0, i0), (s1, i1), (sg, ig) = (_identity(item[k]) for k in ("frame0", "frame1", "gt"))
        assert s0 == s1 == sg and not {(s0, i0), (s1, i1), (sg, ig)} & EXCLUDED
        assert 2 <= abs(i1 - i0) <= 4
        assert item["t"].item() == pytest.approx((ig - i0) / (i1 - i0))
        ts.append(item["t"].item())
    assert len(set(np.round(ts, 4))) >= 4  # 1/4, 1/3, 1/2, 2/3, 3/4 all occur
    middle = TripletDataset([shared / "data" / "dev"], crop=8, max_gap=4, random_t=False, length=20, seed=1,
                            exclusions=dev_benchmark_exclusions(shared))
    assert all(item["t"].item() == 0.5 for item in middle)


def test_items_are_deterministic_given_seed_and_index(shared):
    def make(seed):
        return TripletDataset([shared / "data" / "dev" / "clips"], crop=(8, 10), length=6, seed=seed)
    a, b, c = make(5), make(5), make(6)
    assert all(torch.equal(a[i]["gt"], b[i]["gt"]) and a[i]["t"] == b[i]["t"] for i in range(6))
    assert any(not torch.equal(a[i]["gt"], c[i]["gt"]) for i in range(6))
    with pytest.raises(IndexError):
        a[6]


def test_clear_errors_for_bad_input(shared, tmp_path):
    dev = shared / "data" / "dev"
    with pytest.raises(InputError, match="not found"):
        WindowDataset([tmp_path / "missing"], window=3, crop=8)
    with pytest.raises(InputError, match="larger than"):
        TripletDataset([dev / "clips"], crop=(32, 8))
    with pytest.raises(InputError, match="consecutive usable frames"):
        WindowDataset([dev / "clips"], window=9, crop=8, exclusions=dev_benchmark_exclusions(shared))
    with pytest.raises(InputError, match="no image files"):
        FolderSource(tmp_path)
    with pytest.raises(InputError, match="no usable frames"):
        open_sources([dev / "davis2016" / "blackswan"], dev_benchmark_exclusions(shared))
    with pytest.raises(InputError, match="does not exist"):
        Exclusions.from_paths([tmp_path / "missing"])


def test_video_source_decodes_and_caches(tmp_path):
    cached = VideoSource(SAMPLE_CLIP, max_side=64, cache_dir=tmp_path)
    assert cached.size == (27, 64) and cached.runs == [(0, 60)]
    assert len(list(tmp_path.glob("*.npy"))) == 1
    again = VideoSource(SAMPLE_CLIP, max_side=64, cache_dir=tmp_path)  # memory-maps the cache
    assert isinstance(again._frames, np.memmap)
    in_memory = VideoSource(SAMPLE_CLIP, max_side=64)
    assert np.array_equal(again.read(17), in_memory.read(17)) and in_memory.read(17).dtype == np.uint8
    item = WindowDataset([in_memory], window=9, crop=24, max_stride=3, length=2)[1]
    assert item["frames"].shape == (9, 3, 24, 24)


def test_pack_round_trip(shared, tmp_path):
    exclusions = dev_benchmark_exclusions(shared)
    path = pack_training_crops([shared / "data" / "dev"], tmp_path / "pack.npz", crop=8, n=12, seed=0, window=5,
                               exclusions=exclusions)
    with np.load(path) as pack:
        assert pack["frames"].shape == (12, 5, 8, 8, 3) and pack["frames"].dtype == np.uint8
    triplets = PackedCropDataset(path, mode="triplet", crop=6, length=40, seed=2)
    for item in triplets:
        (s0, i0), (s1, i1), (sg, ig) = (_identity(item[k]) for k in ("frame0", "frame1", "gt"))
        assert item["gt"].shape == (3, 6, 6) and not {(s0, i0), (sg, ig), (s1, i1)} & EXCLUDED
        assert item["t"].item() == pytest.approx((ig - i0) / (i1 - i0))
    windows = PackedCropDataset(path, mode="window")
    assert len(windows) == 12 and windows[3]["frames"].shape == (5, 3, 8, 8)
    with pytest.raises(InputError, match="limit"):
        pack_training_crops([shared / "data" / "dev"], tmp_path / "big.npz", crop=8, n=12, window=5,
                            exclusions=exclusions, limit_bytes=100)
    assert not (tmp_path / "big.npz").exists()
