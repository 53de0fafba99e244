"""Training-loop overhead: `cnndsl train` against a minimal hand-written loop.

Both train the same model (`cnndsl.build`, the same seed), on the same in-memory data
(the uint8 images, normalized per batch), with the same batch size, optimizer (its
weight-decay groups included) and loss; augmentation is off for both (--crop-padding 0,
--flip off). The hand loop is what one writes in ten lines: no schedule, no accuracy,
no NaN check, no checkpoints. Each round runs the two back to back in fresh processes,
alternating which goes first, so that the machine's load falls on both alike; the hand loop runs with the threads and the
OpenMP wait policy the cnndsl run chose (run.json records them), so that the ratio is the
loop's own overhead. The ratio is of training images per second (epoch time without
validation) and of whole-process wall time. Higher than 1.0 for images/s means cnndsl
is faster. The absolute rates of the variants show what the threading choice is worth.

Variants show what OpenMP's wait policy does (the reason `cnndsl train` no longer sets
OMP_WAIT_POLICY=PASSIVE unless the machine is busy): `default` (the command's own
choice), `PASSIVE` and `ACTIVE` forced through the environment, for the command only.

    .venv/bin/python benchmarks/train_overhead.py                      # both cases, 3 rounds
    .venv/bin/python benchmarks/train_overhead.py --cases lenet5 --rounds 5 --variants default PASSIVE
    .venv/bin/python benchmarks/train_overhead.py --in-process --threads 1   # no process noise
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

CASES = {
    "lenet5": {"spec": "lenet5", "data": "digits", "args": ["--epochs", "4"]},
    "resnet20": {"spec": "resnet20", "data": "synthetic:1024", "args": ["--epochs", "2", "--batch-size", "128",
                                                                       "--optimizer", "sgd", "--lr", "0.05"]},
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


def hand_loop(name: str, threads: int) -> dict:
    """The minimal loop, with the settings `cnndsl train` would use for the case."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    import cnndsl
    from cnndsl.data import open_dataset
    from cnndsl.data.batches import normalization
    from cnndsl.data.fit import FitRequest

    case = CASES[name]
    r = recipe_of(case)
    compiled = cnndsl.compile_spec(case["spec"])
    shape = tuple(int(d) for d in compiled.network.input)
    dataset = open_dataset(case["data"], FitRequest(shape), int(compiled.network.body.stats.out_shape[-1]),
                           r.val_fraction)
    mean, std = normalization(dataset.train, dataset.scale)
    x, y = torch.from_numpy(dataset.train.x), torch.from_numpy(dataset.train.y)
    mean, std = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)
    torch.manual_seed(r.seed)
    model = cnndsl.build(case["spec"])
    groups = [{"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": r.weight_decay},
              {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0}]
    if r.optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=r.lr, momentum=r.momentum, nesterov=r.nesterov)
    else:
        opt = torch.optim.Adam(groups, lr=r.lr)
    rates = []
    for _ in range(r.epochs):
        model.train()
        start = time.perf_counter()
        for index in torch.randperm(len(y)).split(r.batch_size):
            inputs = (x[index].float() / dataset.scale - mean) / std
            loss = F.cross_entropy(model(inputs), y[index], label_smoothing=r.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        rates.append(len(y) / (time.perf_counter() - start))
    return {"images_per_second": statistics.mean(rates), "threads": torch.get_num_threads()}


def measure(name: str, rounds: int, variants: list[str]) -> dict:
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


def in_process(name: str, rounds: int, threads: int) -> dict:
    """Both loops in this one process, alternating round by round: no process start-up
    and no import in the figures, the machine's load spread over both alike."""
    import torch

    import cnndsl

    torch.set_num_threads(threads)
    case = CASES[name]
    r = recipe_of(case)
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            history = cnndsl.fit(case["spec"], case["data"], out=Path(tmp) / "run", threads=threads,
                                 **{k: getattr(r, k) for k in ("epochs", "batch_size", "optimizer", "lr",
                                                               "crop_padding", "flip")})
            ours = statistics.mean(m["images_per_second"] for m in history.metrics)
            hand = hand_loop(name, threads)["images_per_second"]
            ratios.append(ours / hand)
            print(f"  {name} in one process, {threads} thread(s), round {i + 1}: cnndsl {ours:8,.0f} img/s, "
                  f"hand {hand:8,.0f} img/s: {ours / hand:.3f}x", flush=True)
    return {"threads": threads, "median_ratio": statistics.median(ratios), "ratios": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=["default", "PASSIVE", "ACTIVE"])
    parser.add_argument("--hand", choices=list(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help="threads for --in-process (and the hand loop)")
    parser.add_argument("--in-process", action="store_true", help="both loops in this process, alternating")
    args = parser.parse_args()
    if args.hand:
        print(json.dumps(hand_loop(args.hand, args.threads)))
        return
    load = os.getloadavg()[0]
    print(f"load average {load:.2f} on {os.cpu_count()} CPUs", flush=True)
    results = {"load_average_before": load, "cpus": os.cpu_count()}
    if args.in_process:
        for name in args.cases:
            results[name] = in_process(name, args.rounds, args.threads)
        results["load_average_after"] = os.getloadavg()[0]
        print(json.dumps({n: results[n]["median_ratio"] for n in args.cases}))
        (RESULTS / "train_overhead_in_process.json").write_text(json.dumps(results, indent=2) + "\n")
        return
    for name in args.cases:
        results[name] = measure(name, args.rounds, args.variants)
    results["load_average_after"] = os.getloadavg()[0]
    print("\nmedian cnndsl/hand images per second (and whole-process wall time):")
    for name in args.cases:
        for variant, r in results[name].items():
            print(f"  {name:<9} {variant:<8} {r['median_ratio']:.3f}x img/s   wall {r['median_wall_ratio']:.3f}x")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "train_overhead.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
