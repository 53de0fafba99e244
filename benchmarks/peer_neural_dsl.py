"""A peer, side by side: the same networks in cnndsl and in Neural DSL (`neural-dsl` on PyPI).

    .venv/bin/python benchmarks/peer_neural_dsl.py          # prints a table, writes JSON

Neural DSL is installed at benchmark time into its own virtual environment
(/tmp/neural-venv; never vendored, never in our .venv). Its code generator imports
torch, so `torch==2.13.0` goes in first (the local CPU wheel), then `neural-dsl==0.2.9`
and `plotly`, which its parser imports without declaring it. Its modules also import
triton, onnx, tensorflow, transformers and huggingface_hub at import time although code
generation uses none of them; the runner stubs those (and torchvision, which the
generated script imports to download MNIST after the model class) so that the comparison
measures the parser and code generator alone. As shipped, Neural DSL's transformer traces
itself with pysnooper to stderr; that is part of its compile time as measured here.

For each network: compile time (parse + check + generate PyTorch source, median of
several runs in a warm process) in each language, and whether the network can be
expressed at all. For Neural DSL a network counts as expressed when its spec parses,
PyTorch code comes out, that code builds a module, the module runs on the input, and
its parameter count equals cnndsl's (which the differential tests tie to PyTorch's).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path("/tmp/neural-venv")
PINS = ("torch==2.13.0", "neural-dsl==0.2.9", "plotly")

# -- the networks, in both languages ------------------------------------------------------

NETWORKS = {
    "LeNet-5": {
        "cnndsl": (ROOT / "specs" / "lenet5.cnn").read_text(encoding="utf-8"),
        "input": (1, 32, 32),
        "neural": """network LeNet5 {
  input: (32, 32, 1)
  layers:
    Conv2D(filters=6, kernel_size=(5,5), padding="valid", activation="tanh")
    AveragePooling2D(pool_size=(2,2))
    Conv2D(filters=16, kernel_size=(5,5), padding="valid", activation="tanh")
    AveragePooling2D(pool_size=(2,2))
    Conv2D(filters=120, kernel_size=(5,5), padding="valid", activation="tanh")
    Flatten()
    Dense(units=84, activation="tanh")
    Output(units=10)
  loss: "sparse_categorical_crossentropy"
  optimizer: Adam(learning_rate=0.001)
}
""",
    },
    "notes' pattern (N=2, M=3, K=1)": {
        "cnndsl": (ROOT / "specs" / "examples" / "pattern.cnn").read_text(encoding="utf-8"),
        "input": (3, 32, 32),
        "neural": """network Pattern {
  input: (32, 32, 3)
  layers:
    Conv2D(filters=32, kernel_size=(3,3), padding="same", activation="relu") * 2
    MaxPooling2D(pool_size=(2,2))
    Conv2D(filters=32, kernel_size=(3,3), padding="same", activation="relu") * 2
    MaxPooling2D(pool_size=(2,2))
    Conv2D(filters=32, kernel_size=(3,3), padding="same", activation="relu") * 2
    MaxPooling2D(pool_size=(2,2))
    Flatten()
    Dense(units=128, activation="relu")
    Output(units=10)
  loss: "sparse_categorical_crossentropy"
  optimizer: Adam(learning_rate=0.001)
}
""",
    },
    "VGG block": {
        "cnndsl": """network VGGBlock() {
    input 3x32x32
    [conv(64, 3, pad=1) -> relu]*2 -> maxpool(2)
    fc(10)
}
""",
        "input": (3, 32, 32),
        "neural": """network VGGBlock {
  input: (32, 32, 3)
  layers:
    Conv2D(filters=64, kernel_size=(3,3), padding="same", activation="relu")
    Conv2D(filters=64, kernel_size=(3,3), padding="same", activation="relu")
    MaxPooling2D(pool_size=(2,2))
    Flatten()
    Output(units=10)
  loss: "sparse_categorical_crossentropy"
  optimizer: Adam(learning_rate=0.001)
}
""",
    },
    "ResNet basic block": {
        "cnndsl": """network ResBlock() {
    input 64x16x16
    residual {
        conv(64, 3, pad=1, bias=false) -> batchnorm -> relu
        conv(64, 3, pad=1, bias=false) -> batchnorm
    }
    relu -> global_avgpool -> fc(10)
}
""",
        "input": (64, 16, 16),
        "neural": """network ResBlock {
  input: (16, 16, 64)
  layers:
    ResidualConnection() {
      Conv2D(filters=64, kernel_size=(3,3), padding="same", use_bias=false)
      BatchNormalization()
      Activation("relu")
      Conv2D(filters=64, kernel_size=(3,3), padding="same", use_bias=false)
      BatchNormalization()
    }
    Activation("relu")
    GlobalAveragePooling2D()
    Output(units=10)
  loss: "sparse_categorical_crossentropy"
  optimizer: Adam(learning_rate=0.001)
}
""",
    },
    "Inception block (3a)": {
        "cnndsl": """network Inception3a() {
    input 192x28x28
    concat {
        conv(64, 1) -> relu
        conv(96, 1) -> relu -> conv(128, 3, pad=1) -> relu
        conv(16, 1) -> relu -> conv(32, 5, pad=2) -> relu
        maxpool(3, stride=1, pad=1) -> conv(32, 1) -> relu
    }
    global_avgpool -> fc(10)
}
""",
        "input": (192, 28, 28),
        "neural": """network Inception3a {
  input: (28, 28, 192)
  layers:
    Inception(filters=[64, 96, 128, 16, 32, 32])
    GlobalAveragePooling2D()
    Output(units=10)
  loss: "sparse_categorical_crossentropy"
  optimizer: Adam(learning_rate=0.001)
}
""",
    },
}

# -- the runner, executed inside the peer's virtual environment -------------------------------

RUNNER = r'''
import importlib.abc, importlib.machinery, json, logging, statistics, sys, time, types
logging.disable(logging.CRITICAL)
STUBS = {"triton", "huggingface_hub", "onnx", "tensorflow", "transformers", "torchvision"}

class Anything:
    def __call__(self, *args, **kwargs):
        return args[0] if len(args) == 1 and callable(args[0]) and not kwargs else Anything()
    def __getattr__(self, attr):
        return Anything()
    def __getitem__(self, key):
        return Anything()

class Stub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in STUBS:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = lambda attr: Anything()
        return module
    def exec_module(self, module):
        pass

sys.meta_path.insert(0, Stub())
import io, contextlib
quiet = io.StringIO()
with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
    from neural.parser.parser import create_parser, ModelTransformer
    from neural.code_generation.code_generator import generate_code
import torch

def compile_once(text):
    tree = create_parser("network").parse(text)
    model = ModelTransformer().transform(tree)
    return generate_code(model, "pytorch")

jobs = json.load(sys.stdin)
out = {}
for name, job in jobs.items():
    result = {"expressed": False, "stage": "parse"}
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            code = compile_once(job["text"])
            times = []
            for _ in range(job["repeat"]):
                start = time.perf_counter()
                compile_once(job["text"])
                times.append((time.perf_counter() - start) * 1000)
        result["compile_ms"] = statistics.median(times)
        result["stage"] = "build"
        namespace = {}
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            # The generated script goes on to download MNIST and train; the model class is all we take.
            exec(compile(code.split("\n# Model instantiation")[0], "<neural-generated>", "exec"), namespace)
        classes = [v for v in namespace.values() if isinstance(v, type) and issubclass(v, torch.nn.Module)
                   and v.__module__ != "torch.nn" and not v.__module__.startswith("torch")]
        model = classes[-1]()
        result["stage"] = "run"
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1,) + tuple(job["input"])))
        result["params"] = sum(p.numel() for p in model.parameters())
        result["stage"] = "params"
        result["expressed"] = result["params"] == job["params"]
        if not result["expressed"]:
            result["error"] = f"{result['params']:,} parameters, cnndsl and PyTorch say {job['params']:,}"
        else:
            result["stage"] = "ok"
    except BaseException as exc:
        result["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
    out[name] = result
print(json.dumps(out))
'''


def ensure_venv(log) -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        log(f"creating {VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    check = subprocess.run([str(python), "-c", "import neural, torch, plotly; print(torch.__version__)"],
                           capture_output=True, text=True)
    if check.returncode != 0:
        log(f"installing {' '.join(PINS)} into {VENV} (torch first, so that neural-dsl never pulls its own)")
        pip = [str(python), "-m", "pip", "install", "-q"]
        subprocess.run(pip + [PINS[0]], check=True)
        subprocess.run(pip + list(PINS[1:]), check=True)
    return python


def ours(repeat: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from cnndsl.compiler import compile_network, generate, source_from_text

    out = {}
    for name, net in NETWORKS.items():
        source = source_from_text(net["cnndsl"], "peer.cnn")
        compiled = compile_network(source)
        generate(compiled)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            generate(compile_network(source))
            times.append((time.perf_counter() - start) * 1000)
        out[name] = {"compile_ms": statistics.median(times), "params": compiled.network.body.stats.params,
                     "expressed": True}
    return out


def compare(repeat: int = 20, log=print) -> dict:
    mine = ours(repeat)
    python = ensure_venv(log)
    jobs = {name: {"text": net["neural"], "input": list(net["input"]), "params": mine[name]["params"],
                   "repeat": repeat} for name, net in NETWORKS.items()}
    version = subprocess.run([str(python), "-m", "pip", "show", "neural-dsl"], capture_output=True,
                             text=True).stdout
    version = next((line.split(":", 1)[1].strip() for line in version.splitlines()
                    if line.startswith("Version:")), "?")
    run = subprocess.run([str(python), "-c", RUNNER], input=json.dumps(jobs), capture_output=True, text=True,
                         timeout=600)
    try:
        theirs = json.loads(run.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        theirs = {name: {"expressed": False, "error": f"the runner failed: {run.stderr[-300:]}"}
                  for name in NETWORKS}
    return {"neural_dsl_version": version, "cnndsl": mine, "neural_dsl": theirs}


def table(result: dict) -> str:
    lines = [f"{'network':<32}{'cnndsl ms':>10}{'Neural DSL ms':>15}{'ratio':>8}  cnndsl  Neural DSL "
             f"{result['neural_dsl_version']}"]
    for name in NETWORKS:
        mine, theirs = result["cnndsl"][name], result["neural_dsl"][name]
        their_ms = theirs.get("compile_ms")
        ratio = f"{their_ms / mine['compile_ms']:.1f}x" if their_ms else "-"
        said = "yes" if theirs["expressed"] else f"no ({theirs.get('stage', '?')}: {theirs.get('error', '')})"
        lines.append(f"{name:<32}{mine['compile_ms']:>10.2f}{their_ms if their_ms else float('nan'):>15.2f}"
                     f"{ratio:>8}  yes     {said}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    outcome = compare()
    print(table(outcome), end="")
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "peer_neural_dsl.json").write_text(json.dumps(outcome, indent=2) + "\n")
