"""`vfi interpolate`: output line, exit codes, one-line errors, Ctrl-C leaves no file."""
from __future__ import annotations


import av
import numpy as np
import pytest

from vfi_core.cli import main


def write_clip(path, frames=6, size=(64, 48), fps=25):
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height = size
        s.pix_fmt = "yuv420p"
        s.options = {"preset": "ultrafast"}
        for i in range(frames):
            img = np.full((size[1], size[0], 3), 60, np.uint8)
            img[8:24, 4 + 4 * i:20 + 4 * i] = 230
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


@pytest.fixture
def clip(tmp_path):
    return write_clip(tmp_path / "in.mp4")


def test_multiplier_writes_video_and_reports_it(clip, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    assert main(["interpolate", str(clip), str(out), "--multiplier", "2", "--preset", "ultrafast"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line == f"wrote {out}: 11 frames at 50 fps"
    with av.open(str(out)) as c:
        assert c.streams.video[0].average_rate == 50 and len(list(c.decode(video=0))) == 11


def test_ntsc_decimal_fps_and_png_folder(clip, tmp_path, capsys):
    out = tmp_path / "frames"
    assert main(["interpolate", str(clip), str(out), "--fps", "59.94", "--no-scene-detect"]) == 0
    assert "at 60000/1001 (~59.940) fps" in capsys.readouterr().out
    assert len(list(out.glob("*.png"))) == 15  # ceil(6/25 * 60000/1001)


def test_user_errors_are_one_line(clip, tmp_path, capsys):
    assert main(["interpolate", str(clip), str(tmp_path / "o.mp4"), "--fps", "20"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vfi: error:") and "lower than the source" in err and "\n" not in err
    assert main(["interpolate", str(tmp_path / "nope.mp4"), str(tmp_path / "o.mp4"), "-m", "2"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert list(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_ctrl_c_leaves_no_partial_file(clip, tmp_path, monkeypatch, capsys):
    from vfi_core.pipeline import InterpolatedStream

    def interrupt(self, done):
        if done >= 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(InterpolatedStream, "_report", interrupt)
    assert main(["interpolate", str(clip), str(tmp_path / "o.mp4"), "-m", "2"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert list(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_sigterm_cancels_a_real_process_cleanly(tmp_path):
    """A separate `vfi` process killed with SIGTERM mid-run exits 143 and leaves only its input."""
    import signal
    import subprocess
    import sys
    import time

    clip = write_clip(tmp_path / "in.mp4", frames=400, size=(160, 120))
    proc = subprocess.Popen([sys.executable, "-m", "vfi_core", "interpolate", str(clip), str(tmp_path / "o.mp4"),
                             "-m", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not any(".partial" in p.name for p in tmp_path.iterdir()) and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "terminated" in err
    assert [p.name for p in tmp_path.iterdir()] == ["in.mp4"]
