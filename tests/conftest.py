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


# The commands that import torch: `run_cli_in_process` imports it before running one, so that
# what the command sets in torch for the process (threads, the global seed) can be put back.
TORCH_COMMANDS = frozenset({"train", "eval", "predict", "export", "viz"})


def run_cli_in_process(*args: str, cwd: Path = ROOT):
    """Run `cnndsl.cli.main` (the `cnndsl` command's entry point, its error handling and exit
    codes included) in this process, from `cwd` (the repository root unless given): what
    `run_cli` gives, without a new interpreter's start and imports. For the tests that ask
    what the command prints or writes; the ones about the process itself (no torch imported,
    the installed script, a kill, signals, torchrun, a fresh interpreter) keep `run_cli`.

    What a command sets for its whole process is put back afterwards, so that it cannot
    leak into the later tests of this pytest worker: the environment (`train` may set
    OMP_WAIT_POLICY), sys.argv (set to the command's, which `train` records in run.json),
    the cwd, and torch's thread count, global RNG and default dtype (`train` sets the
    threads and seeds the global generator). Signal handlers are the training loop's own
    to restore (`StopRequest`)."""
    import contextlib
    import io
    import subprocess

    from cnndsl.cli import main

    torch = None
    if args and args[0] in TORCH_COMMANDS:
        import torch
    saved_torch = (torch.get_num_threads(), torch.random.get_rng_state(), torch.get_default_dtype()) if torch else None
    out, err = io.StringIO(), io.StringIO()
    previous, environ, argv = os.getcwd(), dict(os.environ), sys.argv
    try:
        os.chdir(cwd)
        sys.argv = [str(ROOT / "cnndsl" / "__main__.py"), *args]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.chdir(previous)
        sys.argv = argv
        os.environ.clear()
        os.environ.update(environ)
        if saved_torch:
            torch.set_num_threads(saved_torch[0])
            torch.random.set_rng_state(saved_torch[1])
            torch.set_default_dtype(saved_torch[2])
    return subprocess.CompletedProcess(["cnndsl", *args], code, out.getvalue(), err.getvalue())
