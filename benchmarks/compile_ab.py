"""Compile speed, this checkout against another, measured alternately: for a machine whose CPU
time swings between identical runs, so that a before/after ratio from two separate runs of
compile_speed.py means little.

    .venv/bin/python benchmarks/compile_ab.py OTHER_TREE [--rounds 3] [NAME ...]

OTHER_TREE is a checkout or an export of another commit (`git archive REV | tar -x -C DIR`).
Each round runs, in a fresh process per tree and in turn, a cold parse + check + generate
of each built-in (the compiler's memos emptied by compile_speed.cold) seven times and keeps
the minimum CPU time; the table holds each tree's best round. Writes the table to
benchmarks/results/compile_ab.txt as well.

With `--specs DIR`, each NAME is read from DIR/NAME.cnn by both trees: the same text, so the
ratio is the compiler's alone, apart from how the built-ins are written (issue 10's bar is
about the compiler; issue 11 then rewrote the built-ins as one spec per family).

    .venv/bin/python benchmarks/compile_ab.py --specs /tmp/base979/specs /tmp/base979 resnet18
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("resnet152 resnet50 googlenet inception_v3 mobilenet_v2 mobilenet_v3_large efficientnet_b0 "
         "efficientnet_v2_l densenet201 regnet_y_1_6gf convnext_tiny shufflenet_v2_x1_0 "
         "deeplabv3_mobilenet_v3_large").split()

ONE_TREE = """
import gc, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/benchmarks"]
from compile_speed import cold
from cnndsl.compiler import compile_network, generate, load
from cnndsl.parse import parser
parser()
for name in sys.argv[2:]:
    if not name.endswith(".cnn") and name not in __import__("cnndsl.compiler").compiler.builtins():
        print(name, "nan")
        continue
    source = load(name)
    generate(compile_network(source))
    best = float("inf")
    for _ in range(7):
        cold()
        gc.collect()
        start = time.process_time()
        generate(compile_network(source))
        best = min(best, (time.process_time() - start) * 1000)
    print(name, best)
"""


def one_round(tree: Path, names: list[str], specs: Path | None = None) -> dict[str, float]:
    given = [str(specs / f"{name}.cnn") for name in names] if specs else names
    done = subprocess.run([sys.executable, "-c", ONE_TREE, str(tree), *given], check=True,
                          capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    figures = [float(line.split()[-1]) for line in done.stdout.splitlines()]
    return dict(zip(names, figures, strict=True))


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("other", type=Path)
    args.add_argument("names", nargs="*", default=list(NAMES))
    args.add_argument("--rounds", type=int, default=3)
    args.add_argument("--specs", type=Path, help="read each NAME from SPECS/NAME.cnn in both trees")
    opts = args.parse_args()
    best: dict[Path, dict[str, float]] = {opts.other: {}, ROOT: {}}
    for _ in range(opts.rounds):
        for tree in best:
            for name, ms in one_round(tree, opts.names, opts.specs).items():
                best[tree][name] = min(best[tree].get(name, float("inf")), ms)
    load = f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "?"
    lines = [f"cold parse+check+generate, CPU ms, best of {opts.rounds} alternating rounds of min-of-7; "
             f"load average {load} at the end"]
    if opts.specs:
        lines.append(f"both trees compile the files of {opts.specs}")
    lines += [f"{'built-in':<32}{opts.other.name:>12}{'this':>10}{'ratio':>8}"]
    for name in opts.names:
        was, now = best[opts.other][name], best[ROOT][name]
        lines.append(f"{name:<32}{was:>12.1f}{now:>10.1f}{now / was:>8.2f}")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    (ROOT / "benchmarks" / "results" / "compile_ab.txt").write_text(text)


if __name__ == "__main__":
    main()
