"""The README's main job (`make demo`), run end to end through the installed `vfi` console script."""
import re
import shlex
import subprocess
import sys
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]


def demo_command() -> list[str]:
    """The `vfi ...` line of the Makefile's demo recipe, which the README documents."""
    recipe = ROOT.joinpath("Makefile").read_text().split("\ndemo:", 1)[1]
    line = next(l.strip() for l in recipe.splitlines() if "/vfi " in l)
    return shlex.split(line.replace("$(BIN)/", ""))


def test_demo_doubles_the_frame_rate_of_the_bundled_clip(tmp_path):
    command = demo_command()
    assert command[:2] == ["vfi", "interpolate"] and "--multiplier" in command
    output = tmp_path / "nested" / Path(command[3]).name  # a folder that does not exist yet
    command[0] = str(Path(sys.executable).with_name("vfi"))
    command[3] = str(output)
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert re.search(rf"wrote {re.escape(str(output))}: 119 frames at 50 fps", done.stdout), done.stdout
    with av.open(str(ROOT / command[2])) as source, av.open(str(output)) as result:
        n_in = sum(1 for _ in source.decode(video=0))
        stream = result.streams.video[0]
        n_out = sum(1 for _ in result.decode(video=0))
        assert (n_in, n_out) == (60, 2 * 60 - 1)
        assert stream.average_rate == 2 * source.streams.video[0].average_rate
    assert [p.name for p in output.parent.iterdir()] == [output.name]  # no temporary file left
