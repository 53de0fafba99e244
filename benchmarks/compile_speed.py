"""Compile speed: parse + check + generate for each built-in, a 150-layer network, and
the wall time of `cnndsl check vgg16`, from the wheel installed in a fresh virtual
environment, beside that of `python -c "import torch"`, both measured in this run.

    .venv/bin/python benchmarks/compile_speed.py [--repeat N]

Prints a table and ratios; writes the same to benchmarks/results/compile_speed.txt.
Goals (issue 2): check vgg16 under a tenth of importing torch; 150 layers under 20 ms.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cnndsl.compiler import builtins, compile_network, generate, load, source_from_text  # noqa: E402
from cnndsl.parse import parser  # noqa: E402

DEEP = """
network Deep150(classes = 10) {
    input 3x32x32
    [conv(16, 3, pad=1) -> relu]*74 -> global_avgpool -> fc(classes)
}
"""


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def check_vs_import_torch(repeat: int) -> tuple[float, float]:
    """Median wall seconds of `cnndsl check vgg16` and of `python -c "import torch"`.

    `cnndsl` is the wheel built from this checkout, installed (not editable, bytecode
    compiled by pip) into a fresh virtual environment without torch, run from a folder
    outside the checkout; torch is this interpreter's, installed by pip. The two are
    timed alternately, so that a load on the machine weighs on both alike.
    """
    with tempfile.TemporaryDirectory(prefix="cnndsl-bench-") as tmp:
        cnndsl = installed_wheel(Path(tmp))
        checks, imports = [], []
        for _ in range(repeat):
            checks.append(wall([str(cnndsl), "check", "vgg16"], Path(tmp)))
            imports.append(wall([sys.executable, "-c", "import torch"], Path(tmp)))
    return statistics.median(checks), statistics.median(imports)


def installed_wheel(tmp: Path) -> Path:
    """Build the wheel from a copy of the package files and install it into tmp/venv."""
    source = tmp / "src"
    shutil.copytree(ROOT / "cnndsl", source / "cnndsl", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    quiet = {"check": True, "capture_output": True}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp / "dist"), str(source)], **quiet)
    subprocess.run([sys.executable, "-m", "venv", str(tmp / "venv")], **quiet)
    (wheel,) = (tmp / "dist").glob("cnndsl-*.whl")
    subprocess.run([str(tmp / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], **quiet)
    return tmp / "venv" / "bin" / "cnndsl"


def wall(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=cwd)
    return time.perf_counter() - start


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--repeat", type=int, default=7)
    opts = args.parse_args()
    parser()  # build (or load) the LALR tables once, as a long-lived process would
    lines = [f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}",
             "", f"{'spec':<20}{'layers':>8}{'parse+check+codegen ms':>26}"]
    for name in builtins():
        source = load(name)
        layers = len(list(_layers(compile_network(source).network)))
        ms = median_ms(lambda: generate(compile_network(source)), opts.repeat)
        lines.append(f"{name:<20}{layers:>8}{ms:>26.2f}")
    deep = source_from_text(DEEP, "deep150.cnn")
    deep_layers = len(list(_layers(compile_network(deep).network)))
    deep_ms = median_ms(lambda: generate(compile_network(deep)), opts.repeat)
    lines.append(f"{'deep150 (generated)':<20}{deep_layers:>8}{deep_ms:>26.2f}   goal < 20 ms: "
                 f"{'met' if deep_ms < 20 else 'NOT met'}")
    check, torch = check_vs_import_torch(opts.repeat)
    lines += ["", f"cnndsl check vgg16, installed wheel (wall, median of {opts.repeat}): {check * 1000:.0f} ms",
              f"python -c 'import torch' (wall, median of {opts.repeat}): {torch * 1000:.0f} ms",
              f"ratio check/import torch: {check / torch:.3f}   goal < 0.100: {'met' if check / torch < 0.1 else 'NOT met'}"]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    out = ROOT / "benchmarks" / "results" / "compile_speed.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


def _layers(network):
    from cnndsl.summary import rows

    return rows(network)


if __name__ == "__main__":
    main()
