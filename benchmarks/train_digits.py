"""The README's main job, measured: `cnndsl train lenet5 --data digits` (`make demo`) must
reach at least 98% test accuracy in under 8 s of wall time, whole process, on 2 cores.

Runs the real command (a fresh process, so the seconds include starting Python and
importing torch), once per seed, and prints each run's test accuracy, wall-clock
seconds and CPU seconds (user + system, the process and its children), then the worst
of each. The machine's load average is printed too: other
processes on the same two cores slow the run down.

    .venv/bin/python benchmarks/train_digits.py                 # seed 0, as `make demo`
    .venv/bin/python benchmarks/train_digits.py --seeds 0 1 2   # spread over seeds
    .venv/bin/python benchmarks/train_digits.py --seeds 0 1 2 --against old.train.toml
                                        # paired: each seed alternates with another recipe file
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_ACCURACY = 0.98
TARGET_SECONDS = 8.0


def run_once(seed: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "lenet5"
        command = [sys.executable, "-m", "cnndsl", "train", "lenet5", "--data", "digits", "--out", str(out),
                   "--seed", str(seed), "--no-progress", *extra]
        start, used = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - used.ru_utime) + (after.ru_stime - used.ru_stime)
        if done.returncode != 0:
            sys.exit(f"seed {seed}: cnndsl train failed ({done.returncode}):\n{done.stderr}")
        result = json.loads((out / "result.json").read_text())
    return {"seed": seed, "test_accuracy": result["test_accuracy"], "wall_seconds": seconds, "cpu_seconds": cpu,
            "training_seconds": result["seconds"], "best_epoch": result["best_epoch"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--json", action="store_true", help="print the runs as JSON")
    parser.add_argument("--against", type=Path, help="another recipe file, run alternately for comparison")
    parser.add_argument("extra", nargs="*", help="more options for cnndsl train (after --)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    runs = []
    for i, seed in enumerate(args.seeds):
        other = None
        if args.against and i % 2:
            other = run_once(seed, args.extra + ["--recipe", str(args.against)])
        run = run_once(seed, args.extra)
        if args.against and not i % 2:
            other = run_once(seed, args.extra + ["--recipe", str(args.against)])
        runs.append(run)
        print(f"seed {seed}: test accuracy {100 * run['test_accuracy']:.2f}%  {run['wall_seconds']:.1f} s "
              f"wall, {run['cpu_seconds']:.1f} s user+sys ({run['training_seconds']:.1f} s in epochs, best epoch "
              f"{run['best_epoch']}); load {os.getloadavg()[0]:.2f}", flush=True)
        if other:
            print(f"   against {args.against.name}: {100 * other['test_accuracy']:.2f}%  "
                  f"{other['wall_seconds']:.1f} s wall: {run['wall_seconds'] / other['wall_seconds']:.2f}x", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    worst_accuracy = min(r["test_accuracy"] for r in runs)
    worst_seconds = max(r["wall_seconds"] for r in runs)
    ok = worst_accuracy >= TARGET_ACCURACY and worst_seconds < TARGET_SECONDS
    worst_cpu = max(r["cpu_seconds"] for r in runs)
    print(f"worst: {100 * worst_accuracy:.2f}% in {worst_seconds:.1f} s ({worst_cpu:.1f} s user+sys) "
          f"(target >= {100 * TARGET_ACCURACY:.0f}% in < {TARGET_SECONDS:.0f} s): {'met' if ok else 'MISSED'}")
    if args.json:
        print(json.dumps(runs, indent=2))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
