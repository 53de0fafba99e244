"""Generated versus hand-written PyTorch for the mobile and modern families (issue 11's bar:
"stays at 1.00 within noise"): MobileNetV2, EfficientNet-B0 and ConvNeXt-T.

    nice -n 10 .venv/bin/python benchmarks/family_ratios.py [--quick] [--threads 2]

Each hand-written module (benchmarks/reference_models.py, written as torchvision writes
these models) first loads the generated module's state_dict, after a check that both list
the same keys with the same shapes in the same order, and gives the same output; then
forward (eval, no grad) and forward+backward (train) are timed in alternating blocks, as
benchmarks/run.py times the classics. Prints the table and writes it, with the machine and
its load, to benchmarks/results/family_ratios.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from run import RESULTS, family_cases, machine, speed_ratios, speed_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small batches, short timings (a smoke run)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=16, help="alternating blocks per side and mode")
    parser.add_argument("--size", type=int, default=64, help="input height and width")
    parser.add_argument("--batch", type=int, default=4)
    opts = parser.parse_args(argv)

    import torch

    torch.manual_seed(0)
    torch.set_num_threads(opts.threads)
    m = machine()
    before = os.getloadavg()
    rows = speed_ratios(opts.quick, 0.05 if opts.quick else 0.25, 6 if opts.quick else opts.rounds,
                        cases=family_cases(opts.quick, opts.size, opts.batch))
    after = os.getloadavg()
    text = "\n".join([
        "# Generated vs hand-written: MobileNetV2, EfficientNet-B0, ConvNeXt-T", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} on {m['threads']} threads, "
        f"Python {m['python']}; {m['date']}.",
        f"Load average (1, 5, 15 min) before: {before[0]:.2f}, {before[1]:.2f}, {before[2]:.2f}; "
        f"after: {after[0]:.2f}, {after[1]:.2f}, {after[2]:.2f}.",
        "Command: `nice -n 10 .venv/bin/python benchmarks/family_ratios.py"
        + (" --quick" if opts.quick else "") + (f" --threads {opts.threads}" if opts.threads != 2 else "")
        + (f" --rounds {opts.rounds}" if opts.rounds != 16 else "")
        + (f" --size {opts.size}" if opts.size != 64 else "") + (f" --batch {opts.batch}" if opts.batch != 4 else "")
        + "`", "",
        *speed_table(rows, m["threads"])])
    print(text)
    if not opts.quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "family_ratios.md").write_text(text)
        print("written: benchmarks/results/family_ratios.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
