"""Issue 12's training figures, measured: `cnndsl train unet --data shapes` and
`cnndsl train localizer --data placed-digits` on a 2-core CPU, a minute or two each.

Runs the real commands (fresh processes: the seconds include starting Python and
importing torch) with the recipes beside the built-ins (cnndsl/specs/unet.train.toml,
localizer.train.toml, whose [set] tables size the networks for a CPU), and prints each
run's test metrics, wall-clock seconds and CPU seconds (user + sys of the training
process) beside the machine's load average: the two cores are shared, and other
processes on them slow a run down (its metrics do not change: a run is deterministic for
its seed and thread count). The CPU seconds do not depend on the load much, so they say
what an idle 2-core machine would take: a run on 2 threads takes between CPU / 2 (both
cores busy all along) and CPU (one) of wall, plus start-up. The stated figures are the
targets below; the README quotes a measured run.

    .venv/bin/python benchmarks/dense_train.py              # both, seed 0
    .venv/bin/python benchmarks/dense_train.py --only unet  # one of them
    .venv/bin/python benchmarks/dense_train.py --json       # and the runs as JSON
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
RUNS = {
    "unet": (["unet", "--data", "shapes"], {"test_miou": 0.60, "test_pixel_accuracy": 0.93}),
    "localizer": (["localizer", "--data", "placed-digits"], {"test_box_iou": 0.72, "test_box_hits": 0.95,
                                                             "test_accuracy": 0.90}),
}
TARGET_SECONDS = 150.0  # on an idle 2-core machine; the load printed beside each run says how idle it was


def run_once(name: str, seed: int, extra: list[str]) -> dict:
    args, targets = RUNS[name]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / name
        command = [sys.executable, "-m", "cnndsl", "train", *args, "--out", str(out), "--seed", str(seed),
                   "--no-progress", *extra]
        load_before = os.getloadavg()[0]
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - used.ru_utime) + (after.ru_stime - used.ru_stime)
        if done.returncode != 0:
            sys.exit(f"{name}: cnndsl train failed ({done.returncode}):\n{done.stderr}")
        result = json.loads((out / "result.json").read_text())
    measured = {k: result[k] for k in ("test_miou", "test_pixel_accuracy", "test_box_iou", "test_box_hits",
                                       "test_accuracy") if result.get(k) is not None}
    met = all(result.get(k, 0) >= v for k, v in targets.items())  # the seconds depend on the load: printed
    return {"run": name, "command": "cnndsl train " + " ".join(args + extra), "seed": seed, **measured,
            "wall_seconds": seconds, "cpu_seconds": cpu, "training_seconds": result["seconds"],
            "epochs": result["epochs_run"],
            "load_before": load_before, "load_after": os.getloadavg()[0], "targets": targets, "met": met}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(RUNS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the runs as JSON")
    parser.add_argument("extra", nargs="*", help="more options for cnndsl train (after --)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs", flush=True)
    runs = []
    for name in [args.only] if args.only else list(RUNS):
        run = run_once(name, args.seed, args.extra)
        runs.append(run)
        shown = ", ".join(f"{k.removeprefix('test_')} {100 * v:.2f}%" for k, v in run.items()
                          if k.startswith("test_"))
        cpu = run["cpu_seconds"]
        print(f"{run['command']}: {shown}; {run['wall_seconds']:.1f} s wall ({run['training_seconds']:.1f} s in "
              f"{run['epochs']} epochs), {cpu:.1f} s CPU (user + sys), load {run['load_before']:.2f} -> "
              f"{run['load_after']:.2f}; targets {', '.join(f'{k} >= {v:.2f}' for k, v in run['targets'].items())}: "
              f"{'met' if run['met'] else 'MISSED'}; on an idle 2-core machine {cpu / 2:.0f}-{cpu:.0f} s wall "
              f"(CPU / 2 to CPU; target < {TARGET_SECONDS:.0f} s: "
              f"{'yes' if cpu < TARGET_SECONDS else 'at best' if cpu / 2 < TARGET_SECONDS else 'no'})", flush=True)
    if args.json:
        print(json.dumps(runs, indent=2))
    sys.exit(0 if all(r["met"] for r in runs) else 1)


if __name__ == "__main__":
    main()
