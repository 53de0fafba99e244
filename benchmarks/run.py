"""The benchmark suite, in one run: `make bench` or

    .venv/bin/python benchmarks/run.py [--quick] [--networks N] [--no-peer]

Prints a table and writes it, with the machine it ran on, to benchmarks/results/
(bench.md, bench.json) with plots beside it (bench_ratios.png, bench_compile.png):

1. Compile latency of every built-in, by stage (parse; check = resolve, expand, shapes,
   names; generate), and the wall time of `cnndsl check vgg16` over `python -c "import torch"`.
2. Generated module vs an independent hand-written PyTorch module (benchmarks/
   reference_models.py) for LeNet-5, VGG-11, ResNet-18, MobileNetV2, EfficientNet-B0 and
   ConvNeXt-T (benchmarks/family_ratios.py runs these three alone), forward and forward+backward
   on the CPU with 2 threads: the ratio generated/reference (goal 1.00 or below, within
   noise). The two are first checked to compute the same function (same state_dict, same
   output).
3. Differential testing at scale: N random valid networks, the checker's shapes,
   parameters and MACs against PyTorch (tests/test_differential.py's generator).
4. The peer, side by side: benchmarks/peer_neural_dsl.py.
5. The GPU rows (bf16, channels_last, torch.compile): run only where a GPU is present.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "tests")]

from compile_speed import check_vs_import_torch, median_ms  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def machine() -> dict:
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"host": platform.node(), "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


# -- 1. compile latency ---------------------------------------------------------------------------

def compile_latency(repeat: int) -> list[dict]:
    from cnndsl.codegen import generate_module
    from cnndsl.compiler import builtins, load
    from cnndsl.parse import parse, parser
    from cnndsl.passes import assign_names, expand, infer_shapes, resolve

    parser()
    rows = []
    for name in builtins():
        source = load(name)
        program = parse(source)
        network = assign_names(infer_shapes(expand(resolve(program))))
        rows.append({
            "spec": name,
            "parse_ms": median_ms(lambda: parse(source), repeat),
            "check_ms": median_ms(lambda: assign_names(infer_shapes(expand(resolve(program)))), repeat),
            "generate_ms": median_ms(lambda: generate_module(network), repeat),
            "params": network.body.stats.params,
        })
        rows[-1]["total_ms"] = rows[-1]["parse_ms"] + rows[-1]["check_ms"] + rows[-1]["generate_ms"]
    return rows


# -- 2. generated vs hand-written ---------------------------------------------------------------

def speed_cases(quick: bool):
    import reference_models as ref

    return [
        ("LeNet-5", "lenet5", {}, ref.LeNet5(), (1, 32, 32), 64 if not quick else 16),
        ("VGG-11 (32x32, 10 classes)", "vgg11", {"size": 32, "num_classes": 10}, ref.VGG(num_classes=10),
         (3, 32, 32), 16 if not quick else 4),
        ("ResNet-18 (64x64, 10 classes)", "resnet18", {"size": 64, "num_classes": 10}, ref.ResNet18(num_classes=10),
         (3, 64, 64), 16 if not quick else 4),
        *family_cases(quick),
    ]


def family_cases(quick: bool, size: int = 64, batch: int = 4):
    """The mobile and modern families at a small input with 10 classes: torchvision's layers,
    at a size that two shared cores time in minutes."""
    import reference_models as ref

    batch = batch if not quick else 2
    shape = (3, size, size)
    params = {"size": size, "num_classes": 10}
    return [
        (f"MobileNetV2 ({size}x{size}, 10 classes)", "mobilenet_v2", params, ref.MobileNetV2(num_classes=10),
         shape, batch),
        (f"EfficientNet-B0 ({size}x{size}, 10 classes)", "efficientnet_b0", params,
         ref.EfficientNetB0(num_classes=10), shape, batch),
        (f"ConvNeXt-T ({size}x{size}, 10 classes)", "convnext_tiny", params, ref.ConvNeXtTiny(num_classes=10),
         shape, batch),
    ]


def same_function(label: str, generated, reference, x) -> float:
    """Loads the generated module's state_dict into the reference, after checking that the two
    list the same keys with the same shapes in the same order; returns the largest difference
    of their outputs in eval mode (it must be float noise)."""
    import torch

    mine, theirs = generated.state_dict(), reference.state_dict()
    assert [(k, tuple(v.shape)) for k, v in mine.items()] == [(k, tuple(v.shape)) for k, v in theirs.items()], \
        f"{label}: the generated and hand-written state_dicts differ in their keys or shapes"
    reference.load_state_dict(mine)
    generated.eval(), reference.eval()
    with torch.no_grad():
        difference = (generated(x) - reference(x)).abs().max().item()
    assert difference < 1e-4, f"{label}: generated and reference differ by {difference}"
    return difference


def speed_ratios(quick: bool, block_seconds: float, rounds: int, cases=None) -> list[dict]:
    import torch
    from torch.utils import benchmark

    import cnndsl

    rows = []
    for label, spec, params, reference, shape, batch in (speed_cases(quick) if cases is None else cases):
        generated = cnndsl.build(spec, **params)
        x = torch.randn((batch,) + shape)
        difference = same_function(label, generated, reference, x)
        row = {"network": label, "batch": batch, "max_output_difference": difference,
               "params": sum(p.numel() for p in generated.parameters())}
        for mode in ("forward", "forward+backward"):
            stmt = "with torch.no_grad(): m(x)" if mode == "forward" else "m(x).sum().backward()"
            timers = {}
            for which, model in (("generated", generated), ("reference", reference)):
                model.train(mode != "forward")
                timers[which] = benchmark.Timer(stmt=stmt, globals={"m": model, "x": x, "torch": torch},
                                                num_threads=torch.get_num_threads())
            # Calibrate once, then alternate short blocks of the two many times: other processes on
            # a shared machine slow both sides of a pair alike, and the minimum over blocks is the
            # least disturbed figure of each (torch.utils.benchmark's blocked_autorange, by hand).
            number = max(1, int(block_seconds / max(timers["reference"].timeit(1).mean, 1e-6)))
            samples = {"generated": [], "reference": []}
            pairs = []
            for round_ in range(rounds):
                order = ("generated", "reference") if round_ % 2 == 0 else ("reference", "generated")
                for which in order:
                    samples[which].append(timers[which].timeit(number).mean)
                pairs.append(samples["generated"][-1] / samples["reference"][-1])
            gen, refm = min(samples["generated"]), min(samples["reference"])
            row[mode] = {"generated_ms": gen * 1000, "reference_ms": refm * 1000, "ratio": gen / refm,
                         "median_paired_ratio": statistics.median(pairs),
                         "reference_spread": statistics.median(samples["reference"]) / refm - 1,
                         "blocks": rounds, "iterations_per_block": number}
        rows.append(row)
    return rows


# -- 3. differential testing at scale -------------------------------------------------------------

def differential(networks: int, seed: int = 1) -> dict:
    import torch

    from cnndsl import CompileError
    from test_differential import disagreements, random_network

    torch.manual_seed(0)
    rng = random.Random(seed)
    tried = disagreed = rejected = 0
    examples = []
    start = time.perf_counter()
    for _ in range(networks):
        text, expected = random_network(rng)
        tried += 1
        try:
            problems = disagreements(text, expected)
        except CompileError as exc:
            rejected += 1
            examples.append(f"rejected: {exc}")
            continue
        if problems:
            disagreed += 1
            examples.append("; ".join(problems))
    return {"tried": tried, "disagreed": disagreed, "rejected_valid": rejected, "seed": seed,
            "seconds": time.perf_counter() - start, "examples": examples[:10]}


# -- report ------------------------------------------------------------------------------------

def speed_table(rows: list[dict], threads: int) -> list[str]:
    """The generated-vs-hand-written section of the report: a markdown table, one row a network."""
    out = ["## Generated module vs hand-written PyTorch (CPU, "
           f"{threads} threads; ratio = generated / reference, goal <= 1.00 within noise)", "",
           "Times are the minimum over alternating blocks; the ratio in brackets is the median of the "
           "ratios of neighbouring blocks.", "",
           "| network | batch | forward gen ms | forward ref ms | ratio | fwd+bwd gen ms | fwd+bwd ref ms | ratio |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        f, b = row["forward"], row["forward+backward"]
        out.append(f"| {row['network']} | {row['batch']} | {f['generated_ms']:.2f} | {f['reference_ms']:.2f} | "
                   f"**{f['ratio']:.3f}** ({f['median_paired_ratio']:.3f}) | {b['generated_ms']:.2f} | "
                   f"{b['reference_ms']:.2f} | **{b['ratio']:.3f}** ({b['median_paired_ratio']:.3f}) |")
    out += ["", "Before timing, each reference loads the generated module's state_dict (same keys and shapes, "
            "in the same order) and both give the same output (max difference: "
            + ", ".join(f"{r['max_output_difference']:.1e}" for r in rows) + ").", ""]
    return out


def report(result: dict) -> str:
    m = result["machine"]
    out = [f"# cnndsl benchmarks", "",
           f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} on {m['threads']} threads, "
           f"Python {m['python']}, CUDA: {'yes' if m['cuda'] else 'no'}; {m['date']}.", ""]
    out += ["## Compile latency per built-in (median, in process, LALR tables loaded)", "",
            "| spec | parse ms | check ms | generate ms | total ms |", "|---|---:|---:|---:|---:|"]
    for row in result["compile"]:
        out.append(f"| {row['spec']} | {row['parse_ms']:.2f} | {row['check_ms']:.2f} | {row['generate_ms']:.2f} | "
                   f"{row['total_ms']:.2f} |")
    w = result["wall"]
    out += ["", f"`cnndsl check vgg16`: {w['check_s'] * 1000:.0f} ms wall; `python -c \"import torch\"`: "
                f"{w['torch_s'] * 1000:.0f} ms; ratio **{w['ratio']:.3f}** (goal < 0.100).", ""]
    out += speed_table(result["speed"], m["threads"])
    d = result["differential"]
    out += ["## Differential testing at scale", "",
            f"{d['tried']:,} random valid networks (seed {d['seed']}): **{d['disagreed']} disagreed** with PyTorch on "
            f"output shape, parameter count or MACs; {d['rejected_valid']} valid networks rejected by the checker "
            f"({d['seconds']:.0f} s).", ""]
    out += ["## GPU", "", result["gpu"], ""]
    peer = result.get("peer")
    if peer:
        from peer_neural_dsl import table

        out += ["## Peer: Neural DSL " + peer["neural_dsl_version"], "", "```", table(peer).rstrip(), "```", ""]
    return "\n".join(out) + "\n"


def plots(result: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    speed = result["speed"]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    names = [r["network"].split(" (")[0] for r in speed]
    width = 0.36
    for i, mode in enumerate(("forward", "forward+backward")):
        ratios = [r[mode]["ratio"] for r in speed]
        bars = ax.bar([k + (i - 0.5) * width for k in range(len(names))], ratios, width, label=mode)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("generated / hand-written time")
    ax.set_ylim(0, max(1.3, max(r[m]["ratio"] for r in speed for m in ("forward", "forward+backward")) * 1.15))
    ax.set_title(f"cnndsl generated vs hand-written PyTorch, CPU ({result['machine']['threads']} threads)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "bench_ratios.png", dpi=120)
    plt.close(fig)
    made.append("bench_ratios.png")

    fig, ax = plt.subplots(figsize=(8, 3.8))
    rows = result["compile"]
    bottom = [0.0] * len(rows)
    for stage in ("parse_ms", "check_ms", "generate_ms"):
        values = [r[stage] for r in rows]
        ax.bar([r["spec"] for r in rows], values, bottom=bottom, label=stage.replace("_ms", ""))
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_ylabel("ms (median)")
    ax.set_title("Compile latency per built-in")
    ax.tick_params(axis="x", rotation=70, labelsize=7)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "bench_compile.png", dpi=120)
    plt.close(fig)
    made.append("bench_compile.png")

    peer = result.get("peer")
    if peer:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        names = list(peer["cnndsl"])
        ours = [peer["cnndsl"][n]["compile_ms"] for n in names]
        theirs = [peer["neural_dsl"][n].get("compile_ms") or 0 for n in names]
        ax.bar([k - 0.2 for k in range(len(names))], ours, 0.4, label="cnndsl")
        ax.bar([k + 0.2 for k in range(len(names))], theirs, 0.4, label=f"Neural DSL {peer['neural_dsl_version']}")
        for k, n in enumerate(names):
            if not peer["neural_dsl"][n]["expressed"]:
                ax.text(k + 0.2, (theirs[k] or 1) * 1.1, "not expressed", ha="center", fontsize=7, rotation=90)
        ax.set_yscale("log")
        ax.set_ylabel("compile ms (log)")
        ax.set_xticks(range(len(names)), [n.split(" (")[0] for n in names], fontsize=8)
        ax.set_title("Compile time, and whether each network can be expressed")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(RESULTS / "bench_peer.png", dpi=120)
        plt.close(fig)
        made.append("bench_peer.png")
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the cnndsl benchmark suite.")
    parser.add_argument("--quick", action="store_true", help="small batches, short timings (a smoke run)")
    parser.add_argument("--networks", type=int, default=500, help="random networks for the differential run")
    parser.add_argument("--no-peer", action="store_true", help="skip the Neural DSL comparison")
    parser.add_argument("--threads", type=int, default=2)
    opts = parser.parse_args(argv)

    import torch

    torch.set_num_threads(opts.threads)
    result = {"machine": machine()}
    repeat = 5 if opts.quick else 21
    print("compile latency ...", file=sys.stderr)
    result["compile"] = compile_latency(repeat)
    check, imp = check_vs_import_torch(3 if opts.quick else 7)
    result["wall"] = {"check_s": check, "torch_s": imp, "ratio": check / imp}
    print("generated vs hand-written ...", file=sys.stderr)
    result["speed"] = speed_ratios(opts.quick, 0.05 if opts.quick else 0.25, 6 if opts.quick else 16)
    print("differential ...", file=sys.stderr)
    result["differential"] = differential(50 if opts.quick else opts.networks)
    result["gpu"] = ("Not run: this machine has no GPU (torch.cuda.is_available() is False). The bf16, "
                     "channels_last and torch.compile(fullgraph=True) rows, the synthetic-data training "
                     "throughput and the fraction of peak are measured only on a GPU machine."
                     if not torch.cuda.is_available() else "A GPU is present, but the GPU rows are not written yet.")
    if not opts.no_peer:
        print("peer (Neural DSL) ...", file=sys.stderr)
        from peer_neural_dsl import compare

        try:
            result["peer"] = compare(repeat=5 if opts.quick else 20, log=lambda s: print(s, file=sys.stderr))
        except (subprocess.CalledProcessError, OSError) as exc:
            result["peer_error"] = f"the peer could not be installed or run: {exc}"
    text = report(result)
    if "peer_error" in result:
        text += f"\nPeer: {result['peer_error']}\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench.md").write_text(text)
    (RESULTS / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    made = plots(result)
    print(text, end="")
    print(f"written: benchmarks/results/bench.md, bench.json, {', '.join(made)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
