"""The notes' five seed patterns (specs/examples/) compile as written, and the generated
module agrees with the checker: output shape on a random input, and parameter count."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from cnndsl import CompileError  # noqa: E402
from cnndsl.api import load_generated  # noqa: E402
from cnndsl.compiler import compile_network, generate, load  # noqa: E402
from cnndsl.summary import table  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "specs" / "examples"
SEEDS = {
    "linear.cnn": "INPUT -> FC",
    "conv_relu_fc.cnn": "INPUT -> CONV -> RELU -> FC",
    "two_stage.cnn": "INPUT -> [CONV -> RELU -> POOL]*2 -> FC -> RELU -> FC",
    "three_stage.cnn": "INPUT -> [CONV -> RELU -> CONV -> RELU -> POOL]*3 -> [FC -> RELU]*2 -> FC",
    "pattern.cnn": "INPUT -> [[CONV -> RELU]*N -> POOL?]*M -> [FC -> RELU]*K -> FC",
}


def build_and_run(compiled):
    """Instantiate the generated module and push one random batch of 2 through it."""
    module = load_generated(generate(compiled))
    model = getattr(module, compiled.network.name)()
    model.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        y = model(torch.randn(2, *compiled.network.input))
    return model, y


def summary_params(compiled) -> int:
    match = re.search(r"^parameters: ([\d,]+)$", table(compiled.network), re.M)
    assert match, "the summary has a parameters line"
    return int(match.group(1).replace(",", ""))


def test_the_examples_are_the_five_seed_patterns_and_the_notes_nonsquare_conv():
    # nonsquare.cnn: seed 004's nn.Conv2d(16, 33, (3, 5), stride=(2, 1), padding=(4, 2)) (tests/test_per_axis.py)
    assert sorted(p.name for p in EXAMPLES.glob("*.cnn")) == sorted([*SEEDS, "nonsquare.cnn"])


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seed_pattern_is_written_as_in_the_notes(name):
    """The pattern line of the spec is the notes' pattern, with the last FC spelt fc(classes)."""
    text = (EXAMPLES / name).read_text()
    pattern = SEEDS[name]
    head, _, last = pattern.rpartition("-> ")
    assert last == "FC"
    assert f"{head}-> fc(classes)" in text


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seed_pattern_generated_module_agrees_with_checker(name):
    compiled = compile_network(load(EXAMPLES / name))
    assert compiled.warnings == []
    model, y = build_and_run(compiled)
    stats = compiled.network.body.stats
    assert tuple(y.shape) == (2, *stats.out_shape)
    assert stats.out_shape == (10,)
    numel = sum(p.numel() for p in model.parameters())
    assert numel == stats.params == summary_params(compiled)


PATTERN_SETTINGS = [
    {},
    {"POOL": False},
    {"N": 3, "M": 2},
    {"N": 1, "M": 4, "K": 0},
    {"N": 0, "M": 2, "K": 2, "POOL": True},
    {"M": 0, "K": 3, "classes": 5},
    {"N": 2, "M": 2, "K": 2, "POOL": False, "classes": 7},
]


def expected_pattern(N=2, M=3, K=1, classes=10, POOL=True):
    """The pattern's parameters and output by hand: 3x32x32, 32 filters 3x3 pad 1, 2x2 pools, fc(128)."""
    c, hw, params = 3, 32, 0
    for _ in range(M):
        for _ in range(N):
            params += 32 * c * 9 + 32
            c = 32
        if POOL:
            hw //= 2
    features = c * hw * hw
    for _ in range(K):
        params += features * 128 + 128
        features = 128
    params += features * classes + classes
    return params


@pytest.mark.parametrize("settings", PATTERN_SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "defaults")
def test_pattern_with_settings(settings):
    compiled = compile_network(load(EXAMPLES / "pattern.cnn"), dict(settings))
    model, y = build_and_run(compiled)
    stats = compiled.network.body.stats
    classes = settings.get("classes", 10)
    assert tuple(y.shape) == (2, classes) == (2, *stats.out_shape)
    numel = sum(p.numel() for p in model.parameters())
    assert numel == stats.params == summary_params(compiled) == expected_pattern(**settings)
    kinds = [type(m).__name__ for m in model.modules()]
    pools_expected = settings.get("M", 3) if settings.get("POOL", True) else 0
    assert kinds.count("MaxPool2d") == pools_expected
    assert kinds.count("Conv2d") == settings.get("N", 2) * settings.get("M", 3)
    assert kinds.count("Linear") == settings.get("K", 1) + 1


def test_pool_switch_off_is_recorded_in_the_network():
    off = compile_network(load(EXAMPLES / "pattern.cnn"), {"POOL": False}).network
    on = compile_network(load(EXAMPLES / "pattern.cnn")).network
    assert dict(off.switches) == {"POOL": False}
    assert dict(on.switches) == {"POOL": True}
    assert "POOL=off" in generate(compile_network(load(EXAMPLES / "pattern.cnn"), {"POOL": False}))


@pytest.mark.parametrize("settings, needle", [
    ({"POOL": 3}, "POOL"),
    ({"N": -1}, "negative"),
    ({"N": 1.5}, "whole number"),
    ({"NN": 2}, "did you mean 'N'"),
])
def test_pattern_bad_settings_are_compile_errors(settings, needle):
    with pytest.raises(CompileError) as info:
        compile_network(load(EXAMPLES / "pattern.cnn"), settings)
    text = " ".join(f"{d.message} {d.hint or ''}" for d in info.value.diagnostics)
    assert needle in text


def test_pattern_switches_on_the_command_line():
    """The notes' example: cnndsl compile pattern.cnn --set N=3 --set M=2 --set POOL=false."""
    from conftest import run_cli

    result = run_cli("compile", "specs/examples/pattern.cnn", "--set", "N=3", "--set", "M=2", "--set", "POOL=false")
    assert result.returncode == 0, result.stderr
    code = result.stdout
    assert "nn.MaxPool2d" not in code
    assert "POOL=off" in code
    module = load_generated(code)
    model = module.Pattern()
    kinds = [type(m).__name__ for m in model.modules()]
    assert kinds.count("Conv2d") == 6 and kinds.count("MaxPool2d") == 0
    assert sum(p.numel() for p in model.parameters()) == expected_pattern(N=3, M=2, POOL=False)
    on = run_cli("compile", "specs/examples/pattern.cnn", "--set", "POOL=true", "--set", "M=2")
    assert on.stdout.count("nn.MaxPool2d(2)") == 2
