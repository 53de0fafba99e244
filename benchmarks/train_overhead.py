"""Training-loop overhead: `cnndsl train` against a minimal hand-written loop.

Both train the same model (`cnndsl.build`, the same seed), on the same in-memory data
(the uint8 images, normalized per batch), with the same batch size, optimizer (its
weight-decay groups included) and loss; augmentation is off for both (--crop-padding 0,
--flip off). The hand loop is what one writes in ten lines (torch.optim.SGD, no
schedule, no accuracy, no NaN check, no checkpoints).

Paired (the default): one process runs `cnndsl.fit` (the `Run` that `cnndsl train`
drives, with the command's own choice of threads and OpenMP wait policy) and, from its
end-of-epoch callback, one epoch of the hand loop: the two alternate epoch by epoch in
the same process, threads and wait policy, so that the machine's load falls on both
alike. The ratio is of training images per second (epoch time without validation;
higher than 1.0 means cnndsl is faster), the median over the epoch pairs after the first;
beside it the same ratio per CPU second of the process (on a machine other processes
load, wall-clock rates follow the scheduler; CPU time, with one thread, hardly does).

Threading variants, each its own process (OpenMP reads its wait policy once): `auto`
is what `cnndsl train` chooses (threads from the network's size, the wait policy from
the machine's load: `cnndsl.train.cli.choose_wait_policy`); `1` / `2` threads with the
policy unset (libgomp's default: spin a while, then sleep), `PASSIVE` or `ACTIVE`. Their
absolute rates show what the threading choice is worth; variants alternate round by
round.

    .venv/bin/python benchmarks/train_overhead.py                       # both cases, every variant
    .venv/bin/python benchmarks/train_overhead.py --cases lenet5 --rounds 3 --variants auto 2:default
    .venv/bin/python benchmarks/train_overhead.py --processes           # whole processes, alternating
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

CASES = {  # args: for --processes (whole runs); epochs: for the paired runs
    "lenet5": {"spec": "lenet5", "data": "digits", "args": ["--epochs", "4"], "epochs": 12},
    "resnet20": {"spec": "resnet20", "data": "synthetic:512", "args": ["--epochs", "2", "--batch-size", "128",
                                                                      "--optimizer", "sgd", "--lr", "0.05"],
                 "epochs": 6},
}
COMMON = ["--crop-padding", "0", "--flip", "off", "--no-progress", "--checkpoint-minutes", "0"]


def run_cnndsl(case: dict, out: Path, policy: str) -> dict:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    command = [sys.executable, "-m", "cnndsl", "train", case["spec"], "--data", case["data"], "--out", str(out),
               *case["args"], *COMMON]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"cnndsl train failed:\n{done.stderr[-3000:]}")
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    run = json.loads((out / "run.json").read_text())
    return {"images_per_second": statistics.mean(m["images_per_second"] for m in metrics), "wall": wall,
            "threads": run.get("threads"), "policy": json.loads((out / "run.json").read_text()).get("wait_policy")}


def run_hand(name: str, policy: str | None, threads: int) -> dict:
    """The hand loop in the environment the cnndsl run had: its wait policy, its threads."""
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--hand", name, "--threads", str(threads)], cwd=ROOT,
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"the hand loop failed:\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout), "wall": wall}


def recipe_of(case: dict):
    """The recipe `cnndsl train` resolves for this case: its file beside the spec, then the options."""
    from cnndsl.train.recipe import FIELDS, build_recipe, read_recipe_file, recipe_file_for

    args, overrides = case["args"] + COMMON, {}
    for flag, value in zip(args, args[1:]):
        name = flag[2:].replace("-", "_")
        if flag.startswith("--") and name in FIELDS and not value.startswith("--"):
            kind = type(FIELDS[name].default)
            overrides[name] = value if kind is str else kind(value)
    path = recipe_file_for(case["spec"])
    return build_recipe(read_recipe_file(path) if path else {}, overrides)


class HandLoop:
    """The minimal loop, with the settings `cnndsl train` would use for the case, one
    epoch per call of `epoch()` (its images per second)."""

    def __init__(self, name: str) -> None:
        import torch

        import cnndsl
        from cnndsl.data import open_dataset
        from cnndsl.data.batches import normalization
        from cnndsl.data.fit import FitRequest

        case = CASES[name]
        r = self.recipe = recipe_of(case)
        compiled = cnndsl.compile_spec(case["spec"])
        shape = tuple(int(d) for d in compiled.network.input)
        dataset = open_dataset(case["data"], FitRequest(shape), int(compiled.network.body.stats.out_shape[-1]),
                               r.val_fraction)
        mean, std = normalization(dataset.train, dataset.scale)
        self.x, self.y = torch.from_numpy(dataset.train.x), torch.from_numpy(dataset.train.y)
        self.mean, self.std = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)
        self.scale = dataset.scale
        torch.manual_seed(r.seed)
        self.model = model = cnndsl.build(case["spec"])
        groups = [{"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": r.weight_decay},
                  {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0}]
        if r.optimizer == "sgd":
            self.opt = torch.optim.SGD(groups, lr=r.lr, momentum=r.momentum, nesterov=r.nesterov)
        else:
            self.opt = torch.optim.Adam(groups, lr=r.lr)

    def epoch(self) -> float:
        import torch
        import torch.nn.functional as F

        x, y, model, opt, r = self.x, self.y, self.model, self.opt, self.recipe
        model.train()
        start = time.perf_counter()
        for index in torch.randperm(len(y)).split(r.batch_size):
            inputs = (x[index].float() / self.scale - self.mean) / self.std
            loss = F.cross_entropy(model(inputs), y[index], label_smoothing=r.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return len(y) / (time.perf_counter() - start)


def hand_loop(name: str, threads: int) -> dict:
    """A whole hand-loop run (for --processes): the recipe's epochs, their mean rate."""
    import torch

    torch.set_num_threads(threads)
    loop = HandLoop(name)
    rates = [loop.epoch() for _ in range(loop.recipe.epochs)]
    return {"images_per_second": statistics.mean(rates), "threads": torch.get_num_threads()}


def cpu_clocked(run_class, marks: list) -> None:
    """Note the process's CPU time where cnndsl's epochs start and where their training
    ends (`Run._epoch`, `Run._epoch_record`: the interval its images/s is timed over), by
    wrapping the two methods, once per epoch each, for CPU-time rates beside wall-time ones."""
    epoch, record = run_class._epoch, run_class._epoch_record

    def timed_epoch(self, *args):
        marks.append(time.process_time())
        return epoch(self, *args)

    def timed_record(self, *args):
        marks.append(time.process_time())
        return record(self, *args)

    run_class._epoch, run_class._epoch_record = timed_epoch, timed_record


def paired(name: str, epochs: int, threads: int | None) -> dict:
    """cnndsl's epochs and the hand loop's, alternating in this process (see the module's doc).
    Rates per wall second and per CPU second of this process (on a loaded machine the
    first depend on the scheduler, the second much less)."""
    import torch

    import cnndsl
    from cnndsl.train.loop import Run

    case = CASES[name]
    r = recipe_of(case)
    hand = HandLoop(name)
    rates, cpu_rates, marks = [], [], []
    cpu_clocked(Run, marks)

    class Alternate:
        def on_epoch_end(self, run, record):
            started = time.process_time()
            rates.append(hand.epoch())
            cpu_rates.append(len(hand.y) / (time.process_time() - started))

    fields = ("batch_size", "optimizer", "lr", "crop_padding", "flip")
    with tempfile.TemporaryDirectory() as tmp:
        history = cnndsl.fit(case["spec"], case["data"], out=Path(tmp) / "run", threads=threads,
                             callbacks=[Alternate()], epochs=epochs, **{k: getattr(r, k) for k in fields})
    ours = [m["images_per_second"] for m in history.metrics]
    seen = len(hand.y)  # the same training split, every epoch
    ours_cpu = [seen / (end - start) for start, end in zip(marks[::2], marks[1::2])]
    ratios = [a / b for a, b in zip(ours[1:], rates[1:])]  # the first epoch of each warms up
    cpu_ratios = [a / b for a, b in zip(ours_cpu[1:], cpu_rates[1:])]
    return {"threads": torch.get_num_threads(), "policy": os.environ.get("OMP_WAIT_POLICY"),
            "cnndsl": ours, "hand": rates, "ratios": ratios, "median_ratio": statistics.median(ratios),
            "cnndsl_median": statistics.median(ours[1:]), "hand_median": statistics.median(rates[1:]),
            "cnndsl_cpu": ours_cpu, "hand_cpu": cpu_rates, "cpu_ratios": cpu_ratios,
            "median_cpu_ratio": statistics.median(cpu_ratios)}


VARIANTS = ("auto", "1:default", "2:default", "2:PASSIVE", "2:ACTIVE")  # threads:OMP_WAIT_POLICY


def run_variant(name: str, variant: str, epochs: int) -> dict:
    """`paired` in a fresh process with the variant's threads and wait policy."""
    from cnndsl.train.cli import choose_wait_policy

    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    threads, _, policy = variant.partition(":")
    if variant == "auto":
        choose_wait_policy(env)  # what `cnndsl train` does before it imports torch
    elif policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    command = [sys.executable, __file__, "--paired", name, "--epochs", str(epochs)]
    if threads != "auto":
        command += ["--threads", threads]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    if done.returncode:
        sys.exit(f"the paired run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def measure_paired(name: str, rounds: int, variants: list[str], epochs: int) -> dict:
    rows = {v: [] for v in variants}
    for i in range(rounds):
        for variant in (variants if i % 2 == 0 else variants[::-1]):
            row = run_variant(name, variant, epochs)
            rows[variant].append(row)
            print(f"  {name} {variant:<10} round {i + 1}: cnndsl {row['cnndsl_median']:8,.0f} img/s, hand "
                  f"{row['hand_median']:8,.0f} img/s ({row['threads']} threads, OMP_WAIT_POLICY "
                  f"{row['policy'] or 'unset'}): {row['median_ratio']:.3f}x "
                  f"[{', '.join(f'{x:.2f}' for x in row['ratios'])}]; per CPU second {row['median_cpu_ratio']:.3f}x "
                  f"[{', '.join(f'{x:.2f}' for x in row['cpu_ratios'])}]; load {os.getloadavg()[0]:.1f}", flush=True)
    return {v: {"median_ratio": statistics.median(r["median_ratio"] for r in rs),
                "median_cpu_ratio": statistics.median(r["median_cpu_ratio"] for r in rs),
                "cnndsl_median": statistics.median(r["cnndsl_median"] for r in rs),
                "hand_median": statistics.median(r["hand_median"] for r in rs), "rounds": rs}
            for v, rs in rows.items()}


def measure(name: str, rounds: int, variants: list[str]) -> dict:
    """--processes: whole `cnndsl train` processes against whole hand-loop processes."""
    case = CASES[name]
    rows = {v: [] for v in variants}
    for i in range(rounds):
        for variant in variants:
            with tempfile.TemporaryDirectory() as tmp:
                # cnndsl, then the hand loop in the threads and policy it chose: the two alternate
                ours = run_cnndsl(case, Path(tmp) / "run", variant)
                hand = run_hand(name, ours["policy"], ours["threads"])
            ratio = ours["images_per_second"] / hand["images_per_second"]
            rows[variant].append({"ratio": ratio, "wall_ratio": ours["wall"] / hand["wall"], "cnndsl": ours,
                                  "hand": hand})
            print(f"  {name} {variant:<8} round {i + 1}: cnndsl {ours['images_per_second']:8,.0f} img/s "
                  f"({ours['threads']} threads), hand {hand['images_per_second']:8,.0f} img/s "
                  f"({hand['threads']} threads): {ratio:.3f}x img/s, wall {ours['wall']:.1f} vs "
                  f"{hand['wall']:.1f} s", flush=True)
    return {v: {"median_ratio": statistics.median(r["ratio"] for r in rs),
                "median_wall_ratio": statistics.median(r["wall_ratio"] for r in rs), "rounds": rs}
            for v, rs in rows.items()}


def processes_main(args, results: dict) -> None:
    variants = [v for v in args.variants if v in ("default", "PASSIVE", "ACTIVE")] or ["default"]
    for name in args.cases:
        results[name] = measure(name, args.rounds, variants)
    results["load_average_after"] = os.getloadavg()[0]
    print("\nmedian cnndsl/hand images per second (and whole-process wall time):")
    for name in args.cases:
        for variant, r in results[name].items():
            print(f"  {name:<9} {variant:<8} {r['median_ratio']:.3f}x img/s   wall {r['median_wall_ratio']:.3f}x")
    (RESULTS / "train_overhead_processes.json").write_text(json.dumps(results, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS),
                        help="auto, or THREADS:POLICY (POLICY: default, PASSIVE, ACTIVE); with --processes: "
                             "default, PASSIVE, ACTIVE")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per paired run (default: per case)")
    parser.add_argument("--processes", action="store_true", help="whole processes, alternating, instead")
    parser.add_argument("--paired", choices=list(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--hand", choices=list(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.paired:
        print(json.dumps(paired(args.paired, args.epochs or CASES[args.paired]["epochs"], args.threads)))
        return
    if args.hand:
        print(json.dumps(hand_loop(args.hand, args.threads or 1)))
        return
    load = os.getloadavg()[0]
    print(f"load average {load:.2f} on {os.cpu_count()} CPUs", flush=True)
    results = {"load_average_before": load, "cpus": os.cpu_count()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.processes:
        processes_main(args, results)
        return
    for name in args.cases:
        results[name] = measure_paired(name, args.rounds, args.variants, args.epochs or CASES[name]["epochs"])
    results["load_average_after"] = os.getloadavg()[0]
    print(f"\nload average after {results['load_average_after']:.2f}; median cnndsl/hand images per second, "
          "the two alternating epoch by epoch in one process:")
    for name in args.cases:
        for variant, r in results[name].items():
            print(f"  {name:<9} {variant:<10} {r['median_ratio']:.3f}x   (cnndsl {r['cnndsl_median']:8,.0f} img/s, "
                  f"hand {r['hand_median']:8,.0f} img/s);  per CPU second {r['median_cpu_ratio']:.3f}x")
    (RESULTS / "train_overhead.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
