"""Modules from `cnndsl.build` are ones PyTorch's tools accept: their class lives in a
real module (`cnndsl.built.<name>_<hash>`, a file in the cache), so they pickle,
`torch.save` and load (in a new process too), deep-copy, `torch.jit.script`,
`torch.export` and `torch.compile(fullgraph=True)`. Each is checked on every distinct
program among the built-ins cheap enough on a CPU (under 12M parameters): the smallest of
each family for each set of block classes it generates (a variant that differs from another
only by its numbers, widths and depths, is the same program to these tools), the slow tools
on the smallest."""

from __future__ import annotations

import copy
import functools
import io
import os
import pickle
import subprocess
import sys
import re
import textwrap

import pytest

torch = pytest.importorskip("torch")

import cnndsl  # noqa: E402
from cnndsl.compiler import builtins, compile_network, generate, load  # noqa: E402
from cnndsl.resources import catalog  # noqa: E402

SMALL = ["lenet5", "resnet20"]  # export takes seconds a model on a CPU, compile more


@functools.cache
def params() -> dict[str, int]:
    """Each built-in's parameter count: found by the first test that asks, not at collection,
    which every worker of the suite repeats."""
    return {name: cnndsl.compile_spec(name).network.body.stats.params for name in builtins()}


def cheap() -> list[str]:
    return [name for name, count in params().items() if count < 12_000_000]


@functools.cache
def distinct() -> list[str]:
    """One cheap built-in for each (family, block classes), the smallest (SMALL's first)."""
    chosen: dict[tuple, str] = {}
    for name in sorted(cheap(), key=lambda n: (params()[n], n not in SMALL)):
        classes = re.findall(r"^class (\w+)", generate(compile_network(load(name))), re.M)[:-1]  # the network's last
        chosen.setdefault((catalog()[name].family, tuple(classes)), name)
    return sorted(chosen.values())


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {name: cnndsl.build(name).eval() for name in distinct()}


def sample(model) -> torch.Tensor:
    return torch.randn(1, *model.cnndsl_input, generator=torch.Generator().manual_seed(1))


_OUTPUTS: dict = {}


def output(model, x):
    """`model(x)`, computed once for each (model, input) pair; a model of the `models`
    fixture is never changed, so its output on its `sample` stays the same."""
    key = (id(model), model.training, x.shape, x.sum().item(), tuple(x.flatten()[:8].tolist()))
    if key not in _OUTPUTS:
        with torch.no_grad():
            _OUTPUTS[key] = (model, model(x))  # the model is kept alive, so its id is never reused
    return _OUTPUTS[key][1]


def same_function(a, b, x) -> bool:
    """Equal outputs, up to the rounding of kernels that split work by thread. `a` is the
    original, whose output is computed once (see `output`)."""
    ya = output(a, x)
    with torch.no_grad():
        yb = b(x)
    if isinstance(ya, dict):  # named outputs (the localizer's scores and box)
        return list(ya) == list(yb) and all(torch.allclose(ya[k], yb[k], rtol=1e-5, atol=1e-6) for k in ya)
    return torch.allclose(ya, yb, rtol=1e-5, atol=1e-6)


def test_the_cheap_built_ins_are_the_ones_expected():
    assert {"lenet5", "resnet20", "resnet56", "resnet18", "googlenet", "preact_resnet18", "localizer"} <= set(cheap())
    assert set(SMALL) | {"googlenet"} <= set(distinct())
    families = {catalog()[name].family for name in cheap()}
    assert families == {catalog()[name].family for name in distinct()}  # every family has its program
    assert {"regnet_x_400mf", "regnet"} <= set(distinct())  # RegNetX's blocks have no squeeze-excitation


def test_the_class_lives_in_an_importable_module(models):
    import importlib

    for name, model in models.items():
        module = type(model).__module__
        assert module.startswith("cnndsl.built.") and module.endswith(f"_{module.rsplit('_', 1)[1]}")
        assert getattr(importlib.import_module(module), type(model).__name__) is type(model)
        assert "import cnndsl" not in open(sys.modules[module].__file__).read()


def test_pickle_round_trip(models):
    for name, model in models.items():
        again = pickle.loads(pickle.dumps(model))
        assert type(again) is type(model) and same_function(model, again, sample(model)), name


def test_deepcopy(models):
    for name, model in models.items():
        twin = copy.deepcopy(model)
        assert twin is not model and same_function(model, twin, sample(model)), name
        with torch.no_grad():
            list(twin.parameters())[-1].add_(1)  # the head's: a deep net can all but ignore its stem's
        assert not same_function(model, twin, sample(model)), f"{name}: the copy shares its parameters"


def test_torch_save_and_load_in_the_same_process(models):
    for name, model in models.items():
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        loaded = torch.load(buffer, weights_only=False)
        assert same_function(model, loaded, sample(model)), name


def test_torch_save_then_load_in_a_new_process(models, tmp_path):
    """A fresh interpreter that never called cnndsl.build unpickles the saved models."""
    for name in SMALL + ["googlenet"]:
        model = models[name]
        torch.save(model, tmp_path / f"{name}.pt")
        torch.save(sample(model), tmp_path / f"{name}.in")
        with torch.no_grad():
            torch.save(model(sample(model)), tmp_path / f"{name}.out")
    script = textwrap.dedent(f"""
        import torch
        for name in {SMALL + ['googlenet']!r}:
            model = torch.load(f"{tmp_path}/{{name}}.pt", weights_only=False)
            x = torch.load(f"{tmp_path}/{{name}}.in")
            with torch.no_grad():
                same = torch.allclose(model(x), torch.load(f"{tmp_path}/{{name}}.out"), rtol=1e-5, atol=1e-6)
            print(name, type(model).__module__, same)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env=os.environ)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    for line, name in zip(lines, SMALL + ["googlenet"]):
        assert line.startswith(f"{name} cnndsl.built.") and line.endswith(" True"), line


def test_jit_script(models):
    for name, model in models.items():
        scripted = torch.jit.script(model)
        assert same_function(model, scripted, sample(model)), name
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(models["resnet20"]), buffer)
    buffer.seek(0)
    assert same_function(models["resnet20"], torch.jit.load(buffer), sample(models["resnet20"]))


def test_googlenet_with_aux_heads_scripts_in_both_modes():
    torch.manual_seed(0)
    model = cnndsl.build("googlenet", aux_logits=True, num_classes=10, size=64)
    scripted = torch.jit.script(model)
    x = torch.randn(2, 3, 64, 64)  # two: batch norm needs more than one value a channel in training
    model.train(), scripted.train()
    torch.manual_seed(2)
    eager = model(x)
    torch.manual_seed(2)
    script = scripted(x)
    assert isinstance(script, tuple) and len(script) == 3 and all(o.shape == (2, 10) for o in script)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(eager, script))
    model.eval(), scripted.eval()
    assert same_function(model, scripted, x)


def test_torch_export(models):
    for name in SMALL + ["googlenet"]:
        model = models[name]
        program = torch.export.export(model, (sample(model),))
        with torch.no_grad():
            assert torch.allclose(program.module()(sample(model)), model(sample(model)), atol=1e-5), name


def test_torch_compile_fullgraph(models):
    model = models["lenet5"]
    compiled = torch.compile(model, fullgraph=True)  # inductor: C++ for the CPU
    with torch.no_grad():
        assert torch.allclose(compiled(sample(model)), model(sample(model)), atol=1e-4)


def test_torch_compile_finds_one_graph_with_blocks_and_branches(models):
    """fullgraph=True fails on any graph break; the eager backend skips code generation."""
    for name in ("resnet20", "googlenet"):
        model = models[name]
        compiled = torch.compile(model, fullgraph=True, backend="eager")
        with torch.no_grad():
            assert torch.allclose(compiled(sample(model)), model(sample(model)), atol=1e-5), name
