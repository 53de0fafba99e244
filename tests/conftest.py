import os
import sys
from pathlib import Path

import pytest

# Under pytest-xdist (`-n 2`), each worker's PyTorch gets its share of the cores, so two
# workers on two cores do not each start two busy threads. Set before torch is imported.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"

# The files that take most of the suite's time, slowest first (pytest --durations=0 on 2
# cores). pytest-xdist hands whole files to the workers in collection order (`--dist loadfile
# --no-loadscope-reorder`, the Makefile's), so these start first and the short files fill in
# behind them; a long file handed out last would keep one core busy while the other waits.
SLOWEST_FIRST = ("test_families.py", "test_package.py", "test_modules.py", "test_train.py", "test_zoo.py",
                 "test_checkpoint_robustness.py", "test_fuzz.py", "test_dense_train.py", "test_export.py",
                 "test_cli.py", "test_gpu_benchmark.py", "test_train_reproducers.py", "test_train_features.py",
                 "test_codegen.py")


def pytest_collection_modifyitems(items) -> None:
    rank = {name: place for place, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file's tests keep their order


@pytest.fixture
def root() -> Path:
    return ROOT


def run_cli(*args: str, input: str | None = None):
    """Run the real `cnndsl` command in a subprocess, as a user would."""
    import subprocess

    return subprocess.run([sys.executable, "-m", "cnndsl", *args], capture_output=True, text=True,
                          input=input, cwd=ROOT, timeout=300)


def run_cli_in_process(*args: str):
    """Run `cnndsl.cli.main` (the `cnndsl` command's entry point, its error handling and exit
    codes included) in this process, from the repository root: what `run_cli` gives, without
    a new interpreter's start and imports. For the tests that ask what the command prints; the
    ones about the process itself (no torch imported, the installed script) keep `run_cli`."""
    import contextlib
    import io
    import subprocess

    from cnndsl.cli import main

    out, err = io.StringIO(), io.StringIO()
    previous = os.getcwd()
    try:
        os.chdir(ROOT)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.chdir(previous)
    return subprocess.CompletedProcess(["cnndsl", *args], code, out.getvalue(), err.getvalue())
