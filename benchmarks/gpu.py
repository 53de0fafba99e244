"""The GPU check: the CUDA paths of `cnndsl train` run once each, and cnndsl's models and
training loop timed against torchvision's, in one command of under 8 minutes.

On the device machine (one H200; Python 3.12, torch 2.11 with CUDA, torchvision 0.26;
lark is not installed there and travels as a wheel in .whl/, see docs/training.md):

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    PYTHONPATH=/tmp/site:$PWD python3 benchmarks/gpu.py --out $OUT

Sections, each recorded as passed, failed (with the error's last lines) or skipped:
1. paths: `cnndsl train resnet20 --data synthetic` with bf16 autocast, fp16 with the
   GradScaler, channels_last on and off, `--compile`, and a single-node NCCL run through
   torchrun (a process group of one: CNNDSL_PROCESS_GROUP=1);
2. models: the generated resnet50 and efficientnet_b0 against torchvision's (a model
   cnndsl has no built-in of is skipped, saying so), forward+backward in bf16 channels_last, eager and under
   `torch.compile(fullgraph=True)`: milliseconds per step and the ratio;
3. loop: `cnndsl train resnet50 --data synthetic` images per second against a
   hand-written torchvision loop with the same settings (batch, SGD, bf16,
   channels_last, data on the device), and both as a fraction of the GPU's bf16 peak
   (ResNet-50: about 4.1 GMACs an image forward, so 3 x 2 x 4.1 GFLOP a trained image;
   anchor: NVIDIA's ResNet-50 v1.5 recipe trains 2,470 img/s on one A100 80GB with AMP).

On a machine without CUDA it runs the CPU-safe subset: the same code paths where they
exist on a CPU (bf16 autocast, channels_last, a gloo process group of one through
torchrun; `--compile` unless --quick), the models at a small size, the loop on LeNet-5;
the GPU rows are marked pending. `--quick` is what the test suite runs.
Results: OUT/gpu.json and OUT/gpu.md (default benchmarks/results/).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESNET50_GMACS = 4.1
A100_ANCHOR = {"images_per_second": 2470, "peak_bf16_tflops": 312.0}
MODELS = ("resnet50", "efficientnet_b0")  # cnndsl built-in = torchvision name
PEAKS_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}  # dense bf16, the vendors' figures


def env_for_child() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def cnndsl_train(args: list[str], out: Path, timeout: float, launcher: list[str] | None = None,
                 extra_env: dict | None = None) -> dict:
    command = (launcher or [sys.executable, "-m"]) + ["cnndsl", "train", *args, "--out", str(out), "--no-progress"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**env_for_child(), **(extra_env or {})})
    wall = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"exit {done.returncode}: {done.stderr.strip()[-1500:]}")
    result = json.loads((out / "result.json").read_text())
    run = json.loads((out / "run.json").read_text())
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {"wall_seconds": round(wall, 2), "images_per_second": metrics[-1]["images_per_second"],
            "precision": run["precision"], "channels_last": run["channels_last"], "device": run["device"],
            "world_size": run["world_size"], "test_loss": result["test_loss"]}


def section(results: dict, name: str, fn, *args) -> None:
    started = time.perf_counter()
    try:
        value = fn(*args)
        entry = {"status": "passed", **(value if isinstance(value, dict) else {"value": value})}
    except Skip as exc:
        entry = {"status": "skipped", "why": str(exc)}
    except Exception as exc:  # a check that fails is a row of the report, not the end of it
        entry = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[-2000:],
                 "where": traceback.format_exc().strip().splitlines()[-3:]}
    entry["seconds"] = round(time.perf_counter() - started, 2)
    results[name] = entry
    shown = {k: v for k, v in entry.items() if k not in ("where",)}
    print(f"{name}: {json.dumps(shown)[:400]}", flush=True)


class Skip(Exception):
    pass


# ---------------------------------------------------------------- 1. the CUDA paths
def path_checks(results: dict, cuda: bool, quick: bool, timeout: float) -> None:
    small = ["resnet20", "--data", "synthetic:512" if cuda else "synthetic:64", "--epochs", "1",
             "--batch-size", "128" if cuda else "32", "--device", "cuda" if cuda else "cpu"]
    if not cuda:
        small[0] = "lenet5"
    checks = {
        "path_bf16_autocast": ["--precision", "bf16"],
        "path_fp16_gradscaler": ["--precision", "fp16"],
        "path_channels_last_on": ["--precision", "bf16", "--channels-last", "on"],
        "path_channels_last_off": ["--precision", "bf16", "--channels-last", "off"],
        "path_compile": ["--precision", "bf16", "--compile"],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in checks.items():
            if name == "path_fp16_gradscaler" and not cuda:
                results[name] = {"status": "pending", "why": "fp16 with a GradScaler is CUDA-only"}
                continue
            if name == "path_compile" and quick:
                results[name] = {"status": "skipped", "why": "--quick: torch.compile takes minutes on a CPU"}
                continue
            section(results, name, cnndsl_train, small + extra, Path(tmp) / name, timeout)
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1", "-m"]
        section(results, "path_nccl_torchrun" if cuda else "path_gloo_torchrun", cnndsl_train,
                small + ["--precision", "bf16"], Path(tmp) / "ddp", timeout, launcher, {"CNNDSL_PROCESS_GROUP": "1"})
        if not cuda:
            results["path_nccl_torchrun"] = {"status": "pending", "why": "NCCL needs CUDA"}


# ---------------------------------------------------------------- 2. the models
def step_ms(model, x, steps: int, device) -> float:
    import torch

    for _ in range(3):
        model(x).float().sum().backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        model(x).float().sum().backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - started) / steps


def model_ratio(spec: str, torchvision_name: str, cuda: bool, compiled: bool) -> dict:
    import torch

    import cnndsl

    device = torch.device("cuda" if cuda else "cpu")
    try:
        import torchvision
    except Exception as exc:  # missing, or a build that does not match torch
        raise Skip(f"torchvision cannot be imported here ({type(exc).__name__})") from None
    batch, size, steps = (128, 224, 20) if cuda else (2, 64, 2)
    ours = cnndsl.build(spec).to(device, memory_format=torch.channels_last)
    theirs = getattr(torchvision.models, torchvision_name)().to(device, memory_format=torch.channels_last)
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    times = {}
    with torch.autocast(device.type, dtype=torch.bfloat16):
        for label, model in (("cnndsl", ours), ("torchvision", theirs)):
            if compiled:
                model = torch.compile(model, fullgraph=True)
            times[label] = step_ms(model, x, steps, device)
    return {"batch": batch, "image": size, "cnndsl_ms": round(times["cnndsl"], 3),
            "torchvision_ms": round(times["torchvision"], 3), "ratio": round(times["cnndsl"] / times["torchvision"], 4)}


def has_builtin(name: str) -> bool:
    """Whether cnndsl has a built-in of this name (efficientnet_b0 arrives with the mobile family)."""
    import cnndsl
    from cnndsl.errors import CnndslError

    try:
        cnndsl.check(name)
    except (CnndslError, FileNotFoundError, ValueError):
        return False
    return True


def model_checks(results: dict, cuda: bool, quick: bool) -> None:
    """The generated models against torchvision's, eager and (on a GPU) compiled."""
    for name in MODELS:
        if not has_builtin(name):
            for mode in ("eager", "compiled"):
                results[f"model_{name}_{mode}"] = {"status": "skipped", "why": f"no {name} built-in in cnndsl yet"}
            continue
        if quick and not cuda:
            results[f"model_{name}_eager"] = {"status": "skipped", "why": "--quick"}
        else:
            section(results, f"model_{name}_eager", model_ratio, name, name, cuda, False)
        if cuda:
            section(results, f"model_{name}_compiled", model_ratio, name, name, cuda, True)
        else:
            results[f"model_{name}_compiled"] = {"status": "pending", "why": "GPU only"}


# ---------------------------------------------------------------- 3. the loop
def hand_loop(batch: int, steps: int, cuda: bool) -> dict:
    """torchvision's resnet50, trained as one writes it by hand: the same settings as the run."""
    import torch
    import torch.nn.functional as F

    try:
        import torchvision
    except Exception as exc:
        raise Skip(f"torchvision cannot be imported here ({type(exc).__name__})") from None
    device = torch.device("cuda" if cuda else "cpu")
    model = torchvision.models.resnet50().to(device, memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-5)
    data = torch.randint(0, 256, (batch * 4, 3, 224, 224), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 1000, (batch * 4,), device=device)

    def step(i: int) -> None:
        index = torch.randint(0, len(labels), (batch,), device=device)
        x = (data[index].float() / 255 - 0.5) / 0.25
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)), labels[index])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(5):
        step(i)
    if cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    for i in range(steps):
        step(i)
    if cuda:
        torch.cuda.synchronize()
    return {"images_per_second": batch * steps / (time.perf_counter() - started)}


def peak_tflops(cuda: bool) -> float | None:
    if not cuda:
        return None
    import torch

    name = torch.cuda.get_device_name()
    return next((tf for key, tf in PEAKS_TFLOPS.items() if key in name), None)


def loop_check(cuda: bool, timeout: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        if not cuda:
            ours = cnndsl_train(["lenet5", "--data", "synthetic:256", "--epochs", "2", "--batch-size", "64",
                                 "--precision", "bf16", "--device", "cpu"], Path(tmp) / "run", timeout)
            return {"cnndsl": ours, "torchvision": "pending (GPU only)", "fraction_of_peak": "pending"}
        ours = cnndsl_train(["resnet50", "--data", "synthetic:12288", "--epochs", "2", "--batch-size", "256",
                             "--precision", "bf16", "--device", "cuda", "--optimizer", "sgd", "--lr", "0.1",
                             "--crop-padding", "0", "--flip", "off", "--checkpoint-minutes", "0"],
                            Path(tmp) / "run", timeout)
    theirs = hand_loop(256, 30, cuda)
    flops = 3 * 2 * RESNET50_GMACS * 1e9
    peak = peak_tflops(cuda)
    anchor = A100_ANCHOR["images_per_second"] * flops / (A100_ANCHOR["peak_bf16_tflops"] * 1e12)
    return {"cnndsl": ours, "torchvision_images_per_second": round(theirs["images_per_second"], 1),
            "ratio": round(ours["images_per_second"] / theirs["images_per_second"], 4),
            "cnndsl_fraction_of_peak": round(ours["images_per_second"] * flops / (peak * 1e12), 4) if peak else None,
            "torchvision_fraction_of_peak": round(theirs["images_per_second"] * flops / (peak * 1e12), 4)
            if peak else None, "peak_bf16_tflops": peak, "a100_anchor_fraction_of_peak": round(anchor, 4)}


# ---------------------------------------------------------------- the report
def environment(cuda: bool) -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": cuda,
            "machine": platform.machine(), "cpus": os.cpu_count()}
    if cuda:
        info["gpu"] = torch.cuda.get_device_name()
        info["bf16"] = torch.cuda.is_bf16_supported()
    try:
        import torchvision

        info["torchvision"] = torchvision.__version__
    except Exception as exc:
        info["torchvision"] = f"not importable ({type(exc).__name__})"
    info["load_average"] = os.getloadavg()[0]
    return info


def markdown(results: dict) -> str:
    lines = ["# GPU check (benchmarks/gpu.py)", "", f"Environment: `{json.dumps(results['environment'])}`", "",
             "| check | status | figures |", "| --- | --- | --- |"]
    for name, entry in results.items():
        if name == "environment":
            continue
        figures = {k: v for k, v in entry.items() if k not in ("status", "where")}
        lines.append(f"| {name} | {entry['status']} | `{json.dumps(figures)[:300]}` |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--quick", action="store_true", help="the CPU subset without torch.compile (CI)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds for one training run")
    args = parser.parse_args()
    import torch

    cuda = torch.cuda.is_available()
    results = {"environment": environment(cuda)}
    print(f"environment: {json.dumps(results['environment'])}", flush=True)
    path_checks(results, cuda, args.quick, args.timeout)
    model_checks(results, cuda, args.quick)
    section(results, "loop_resnet50" if cuda else "loop_lenet5_cpu", loop_check, cuda, args.timeout)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "gpu" if cuda else "gpu_cpu_subset"
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"{name}.md").write_text(markdown(results))
    failed = [n for n, e in results.items() if isinstance(e, dict) and e.get("status") == "failed"]
    print(f"wrote {args.out / (name + '.json')}; failed: {failed or 'none'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
