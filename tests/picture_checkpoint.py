"""A small trained LeNet-5 checkpoint for the pictures' tests (viz, serve), trained once
per test session by the real `cnndsl train` command on the embedded digits."""

from __future__ import annotations

import functools
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@functools.lru_cache(maxsize=None)
def lenet_checkpoint() -> Path:
    out = Path(tempfile.mkdtemp(prefix="cnndsl-pictures-")) / "run"
    done = subprocess.run([sys.executable, "-m", "cnndsl", "train", "lenet5", "--data", "digits", "--epochs", "2",
                           "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=240)
    assert done.returncode == 0, done.stderr
    return out / "best.safetensors"
