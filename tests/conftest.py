import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


@pytest.fixture
def root() -> Path:
    return ROOT


def run_cli(*args: str, input: str | None = None):
    """Run the real `cnndsl` command in a subprocess, as a user would."""
    import subprocess

    return subprocess.run([sys.executable, "-m", "cnndsl", *args], capture_output=True, text=True,
                          input=input, cwd=ROOT, timeout=300)
