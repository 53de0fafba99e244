"""A small trained LeNet-5 checkpoint for the pictures' tests (viz, serve), trained once
per test session by the `cnndsl train` command's entry point on the embedded digits (in
this process: what the tests need is the checkpoint, not a new interpreter's start)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from conftest import run_cli_in_process


@functools.lru_cache(maxsize=None)
def lenet_checkpoint() -> Path:
    out = Path(tempfile.mkdtemp(prefix="cnndsl-pictures-")) / "run"
    done = run_cli_in_process("train", "lenet5", "--data", "digits", "--epochs", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out / "best.safetensors"
