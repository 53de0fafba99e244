"""Property tests.

1. Random valid networks: the checker's static shape of every layer equals the shape
   PyTorch produces at run time, and its parameter counts equal `numel`.
2. Random mutations of every spec in specs/ never raise anything but CompileError;
   what still compiles generates valid Python.
3. Limits: huge repetition counts, deep nesting and oversized files fail fast and cleanly.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnndsl import CompileError
from cnndsl.compiler import compile_network, generate, source_from_text
from cnndsl.passes.expand import MAX_LAYERS
from cnndsl.summary import rows

torch = pytest.importorskip("torch")

from cnndsl.api import load_generated  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPEC_FILES = sorted((ROOT / "specs").rglob("*.cnn"))
SPEC_TEXTS = {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8") for p in SPEC_FILES}

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- 1. random valid networks --------------------------------------------------------------------

def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def conv_layer(draw, c: int, h: int, w: int):
    """A conv that fits a c x h x w input; returns its text and output shape (for the generator only)."""
    groups = draw(st.sampled_from([g for g in _divisors(c) if g <= 4]))
    filters = groups * draw(st.integers(1, 4))
    dilation = draw(st.integers(1, 2))
    pad = draw(st.integers(0, 2))
    limit = min(h, w) + 2 * pad
    sizes = [k for k in (1, 2, 3, 5) if dilation * (k - 1) + 1 <= limit]
    size = draw(st.sampled_from(sizes))
    stride = draw(st.integers(1, 3))
    mode = draw(st.sampled_from(["zeros", "zeros", "replicate", "circular", "reflect"]))
    if (mode == "circular" and pad > min(h, w)) or (mode == "reflect" and pad >= min(h, w)):
        mode = "zeros"  # PyTorch refuses these, and so does the checker (test_diagnostics)
    bias = draw(st.booleans())
    extent = dilation * (size - 1) + 1
    ho = (h + 2 * pad - extent) // stride + 1
    wo = (w + 2 * pad - extent) // stride + 1
    text = (f"conv({filters}, {size}, stride={stride}, pad={pad}, dilation={dilation}, groups={groups}, "
            f"bias={'true' if bias else 'false'}, padding_mode=\"{mode}\")")
    return text, (filters, ho, wo)


@st.composite
def pool_layer(draw, c: int, h: int, w: int):
    kind = draw(st.sampled_from(["maxpool", "avgpool", "minpool"]))
    size = draw(st.integers(1, min(3, h, w)))
    stride = draw(st.integers(1, 3))
    pad = draw(st.integers(0, size // 2))
    ceil = draw(st.booleans())
    span_h, span_w = h + 2 * pad - size, w + 2 * pad - size

    def out(n, span):
        if not ceil:
            return span // stride + 1
        o = -(-span // stride) + 1
        return o - 1 if (o - 1) * stride >= n + pad else o

    text = f"{kind}({size}, stride={stride}, pad={pad}, ceil={'true' if ceil else 'false'})"
    return text, (c, out(h, span_h), out(w, span_w))


@st.composite
def same_branch(draw, c: int, h: int, w: int):
    """A concat branch that keeps HxW."""
    choice = draw(st.sampled_from(["conv", "conv2", "pool"]))
    if choice == "pool":
        return "maxpool(3, stride=1, pad=1)", c
    k = draw(st.sampled_from([1, 3]))
    f = draw(st.integers(1, 6))
    if choice == "conv":
        return f"conv({f}, {k}, pad={k // 2})", f
    return f"conv({f}, 1) -> relu -> conv({f + 1}, {k}, pad={k // 2})", f + 1


@st.composite
def random_network(draw):
    """The text of a network valid by construction."""
    c = draw(st.integers(1, 6))
    h = draw(st.integers(6, 20))
    w = draw(st.integers(6, 20)) if draw(st.booleans()) else h
    input_line = f"input {c}x{h}x{w}"
    shape = (c, h, w)
    lines = []
    for index in range(draw(st.integers(1, 6))):
        c, h, w = shape
        kind = draw(st.sampled_from(["conv", "conv", "pool", "act", "bn", "concat", "residual", "projection",
                                     "adaptive", "lrn", "maxout"]))
        if kind == "conv":
            text, shape = draw(conv_layer(c, h, w))
        elif kind == "pool":
            text, shape = draw(pool_layer(c, h, w))
        elif kind == "act":
            text = draw(st.sampled_from(["relu", "tanh", "sigmoid", "elu(alpha=0.5)", "leaky_relu(slope=0.2)",
                                         "dropout(0.25)", "identity", "softmax"]))
        elif kind == "bn":
            text = "batchnorm(eps=0.001)"
        elif kind == "lrn":
            text = "lrn(size=3)"
        elif kind == "maxout":
            if c % 2:
                text, shape = f"conv({2 * c}, 1) -> maxout(2)", (c, h, w)
            else:
                text, shape = "maxout(2)", (c // 2, h, w)
        elif kind == "adaptive":
            size = draw(st.integers(1, min(h, w)))
            text = draw(st.sampled_from([f"adaptive_avgpool({size})", f"adaptive_maxpool({size})",
                                         "global_avgpool"]))
            shape = (c, 1, 1) if text == "global_avgpool" else (c, size, size)
        elif kind == "concat":
            branches = [draw(same_branch(c, h, w)) for _ in range(draw(st.integers(1, 3)))]
            body = "\n".join(f"        b{index}_{i}: {text}" for i, (text, _) in enumerate(branches))
            text = "concat {\n" + body + "\n    }"
            shape = (sum(ch for _, ch in branches), h, w)
        elif kind == "residual":
            text = f"residual {{\n        conv({c}, 3, pad=1) -> relu\n        conv({c}, 3, pad=1)\n    }}"
        else:  # projection: a body that changes channels and maybe halves HxW
            stride = draw(st.integers(1, 2))
            out = draw(st.integers(1, 8))
            text = (f"residual {{\n        conv({out}, 3, stride={stride}, pad=1) -> batchnorm -> relu\n"
                    f"        conv({out}, 3, pad=1)\n    }} shortcut projection")
            shape = (out, (h - 1) // stride + 1, (w - 1) // stride + 1)
        lines.append(text)
    tail = draw(st.sampled_from(["", "fc(10)", "flatten -> fc(7)", "fc(12) -> relu -> batchnorm -> fc(5)"]))
    if tail:
        lines.append(tail)
    body = "\n".join(f"    {line}" for line in lines)
    return f"network Random() {{\n    {input_line}\n{body}\n}}\n"


@PROPERTY
@given(random_network())
def test_static_shapes_equal_runtime_shapes(text):
    compiled = compile_network(source_from_text(text, "random.cnn"))
    network = compiled.network
    model = getattr(load_generated(generate(compiled)), "Random")().eval()
    seen: dict[str, tuple] = {}
    expected = {}
    for row in rows(network):
        module = model.get_submodule(row.path)
        expected[row.path] = row.layer.stats.out_shape
        module.register_forward_hook(lambda m, i, o, path=row.path: seen.__setitem__(path, tuple(o.shape[1:])))
    torch.manual_seed(0)
    with torch.no_grad():
        y = model(torch.randn(2, *network.input))
    assert tuple(y.shape[1:]) == network.body.stats.out_shape, text
    assert seen == expected, text
    assert sum(p.numel() for p in model.parameters()) == network.body.stats.params, text
    for row in rows(network):
        module = model.get_submodule(row.path)
        own = sum(p.numel() for p in module.parameters())
        assert own == row.layer.stats.params, (row.path, text)


# -- 2. mutations ---------------------------------------------------------------------------------

TOKENS = ["->", "[", "]", "(", ")", "{", "}", "*", "?", ":", ",", "=", "x", "#", "\n", "\\\n", '"', "'",
          "0", "-1", "99999999999999999999", "1e308", "1.5", "true", "false", "INPUT", "input", "let",
          "block", "network", "concat", "residual", "shortcut", "projection", "identity", "conv(8, 3)",
          "fc(0)", "relu", "maxpool(2)", "__init__", "class", "self", "training", "é", "\x00", "\t", "\r",
          "*1000000000", "*(2**3)", "//0", "/0", "%0", "(" * 60, ")" * 60, "[" * 60, "]" * 60]


def compiles_cleanly_or_fails_cleanly(text: str) -> None:
    try:
        compiled = compile_network(source_from_text(text, "mutant.cnn"))
    except CompileError as exc:
        assert exc.diagnostics, "a CompileError carries at least one diagnostic"
        for d in exc.diagnostics:
            assert d.span.line >= 1 and d.span.column >= 1
            assert d.message
        return
    code = generate(compiled)
    compile(code, "mutant.py", "exec")


@st.composite
def char_mutation(draw):
    name = draw(st.sampled_from(sorted(SPEC_TEXTS)))
    text = SPEC_TEXTS[name]
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["delete", "insert", "replace"]))
        if op == "delete":
            j = draw(st.integers(i, min(len(text), i + 12)))
            text = text[:i] + text[j:]
        elif op == "insert":
            text = text[:i] + draw(st.sampled_from(TOKENS) | st.characters()) + text[i:]
        else:
            text = text[:i] + draw(st.text(max_size=3)) + text[i + 1:]
    return text


@st.composite
def token_mutation(draw):
    name = draw(st.sampled_from(sorted(SPEC_TEXTS)))
    tokens = re.findall(r"\d+(?:\.\d+)?|[A-Za-z_]\w*|->|//|\s+|.", SPEC_TEXTS[name])
    for _ in range(draw(st.integers(1, 4))):
        if not tokens:
            break
        i = draw(st.integers(0, len(tokens) - 1))
        op = draw(st.sampled_from(["delete", "replace", "duplicate", "swap"]))
        if op == "delete":
            del tokens[i]
        elif op == "replace":
            tokens[i] = draw(st.sampled_from(TOKENS))
        elif op == "duplicate":
            tokens.insert(i, tokens[i])
        else:
            j = draw(st.integers(0, len(tokens) - 1))
            tokens[i], tokens[j] = tokens[j], tokens[i]
    return "".join(tokens)


@st.composite
def line_mutation(draw):
    name = draw(st.sampled_from(sorted(SPEC_TEXTS)))
    lines = SPEC_TEXTS[name].splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["duplicate", "delete", "move", "numbers", "nest", "repeat"]))
        if op == "duplicate":
            lines.insert(i, lines[i] * draw(st.integers(1, 3)))
        elif op == "delete":
            del lines[i]
        elif op == "move":
            lines.insert(draw(st.integers(0, len(lines) - 1)), lines.pop(i))
        elif op == "numbers":
            huge = draw(st.sampled_from(["0", "1", "65537", "4294967297", "999999999999999999", "123456789012"]))
            lines[i] = re.sub(r"\d+", huge, lines[i])
        elif op == "nest":
            depth = draw(st.integers(1, 200))
            stripped = lines[i].strip()
            lines[i] = "    " + "[" * depth + stripped + "]" * depth + "\n" if stripped else lines[i]
        else:
            count = draw(st.sampled_from(["*1000", "*100000", "*(1000 * 1000)", "*0", "*N"]))
            lines[i] = lines[i].rstrip("\n") + count + "\n"
        if not lines:
            break
    return "".join(lines)


@PROPERTY
@given(char_mutation())
def test_character_mutations_fail_only_with_compile_error(text):
    compiles_cleanly_or_fails_cleanly(text)


@PROPERTY
@given(token_mutation())
def test_token_mutations_fail_only_with_compile_error(text):
    compiles_cleanly_or_fails_cleanly(text)


@PROPERTY
@given(line_mutation())
def test_line_mutations_fail_only_with_compile_error(text):
    compiles_cleanly_or_fails_cleanly(text)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_fails_only_with_compile_error(text):
    compiles_cleanly_or_fails_cleanly(text)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(SPEC_TEXTS)),
       params=st.dictionaries(st.sampled_from(["num_classes", "classes", "dropout", "in_channels", "size", "N",
                                               "M", "K", "POOL", "width", "aux_logits"]),
                              st.one_of(st.integers(-5, 10 ** 6), st.floats(allow_nan=True), st.booleans(),
                                        st.text(max_size=5)), max_size=3))
def test_random_parameter_values_fail_only_with_compile_error(name, params):
    try:
        compiled = compile_network(source_from_text(SPEC_TEXTS[name], name), params)
    except CompileError:
        return
    compile(generate(compiled), "p.py", "exec")


# -- 3. limits --------------------------------------------------------------------------------------

def compile_error(text: str) -> CompileError:
    with pytest.raises(CompileError) as info:
        compile_network(source_from_text(text, "limits.cnn"))
    return info.value


def test_huge_repetition_count():
    error = compile_error("network N() {\n    input 8x8x8\n    conv(8, 3, pad=1)*1000000000\n}\n")
    (d,) = error.diagnostics
    assert f"more than {MAX_LAYERS:,} layers" in d.message and (d.span.line, d.span.column) == (3, 5)


def test_huge_nested_repetition():
    error = compile_error("network N() {\n    input 8x8x8\n    [[[[[relu*1000]*1000]*1000]*1000]*1000]*1000\n}\n")
    assert any("layers" in d.message for d in error.diagnostics)


def test_huge_repetition_through_a_block():
    text = ("block B() {\n    [relu*1000]*1000\n}\nnetwork N() {\n    input 8x8x8\n    B*100000\n}\n")
    error = compile_error(text)
    assert any("layers" in d.message for d in error.diagnostics)


def test_deep_nesting():
    brackets = "network N() {\n    input 8x8x8\n    " + "[" * 10_000 + "relu" + "]" * 10_000 + "\n}\n"
    parens = "network N() {\n    input 8x8x8\n    conv(" + "(" * 10_000 + "8" + ")" * 10_000 + ", 3)\n}\n"
    for text in (brackets, parens):
        (d,) = compile_error(text).diagnostics
        assert "nested" in d.message and d.span.line == 3


def nested_blocks(depth: int, body: str = "{inner}") -> str:
    """Blocks B0 .. B{depth}, each using the next: deep, but not recursive."""
    blocks = "".join(f"block B{i}() {{\n    {body.format(inner=f'B{i + 1}')}\n}}\n" for i in range(depth))
    return blocks + f"block B{depth}() {{\n    conv(8, 1)\n}}\nnetwork N() {{\n    input 8x8x8\n    B0\n}}\n"


@pytest.mark.parametrize("depth, body", [
    (500, "{inner}"), (200, "[{inner}]"), (100, "s: [{inner}]*1"), (40, "a: [b: [{inner}]]"),
    (60, "residual {{\n        {inner}\n    }}"), (60, "concat {{\n        p: {inner}\n    }}"),
])
def test_deeply_nested_blocks_are_refused_cleanly(depth, body):
    """Each definition is shallow, but the blocks nest hundreds deep when instantiated."""
    error = compile_error(nested_blocks(depth, body))
    assert any("nested more than" in d.message and d.code == "limit" for d in error.diagnostics)


@pytest.mark.parametrize("depth, body", [(30, "{inner}"), (15, "[{inner}]"), (10, "a: [b: [{inner}]]")])
def test_moderately_nested_blocks_compile(depth, body):
    compiled = compile_network(source_from_text(nested_blocks(depth, body), "nested.cnn"))
    assert compiled.network.body.stats.out_shape == (8, 8, 8)
    compile(generate(compiled), "nested.py", "exec")


def test_file_over_one_mebibyte():
    text = "# " + "x" * (1 << 20) + "\nnetwork N() {\n    input 3x8x8\n    relu\n}\n"
    error = compile_error(text)
    assert "over the 1,048,576-byte limit" in error.diagnostics[0].message


def test_long_but_legal_network_compiles():
    text = "network N() {\n    input 8x8x8\n    [conv(8, 3, pad=1) -> relu]*500\n}\n"
    compiled = compile_network(source_from_text(text, "long.cnn"))
    assert compiled.network.body.stats.params == 500 * (8 * 8 * 9 + 8)


def test_a_strided_projection_on_a_1x1_map_applies_as_its_parameters_say():
    """Found by test_static_shapes_equal_runtime_shapes: a residual whose body has stride 2 on
    a 1x1 map changes no shape, but its parameters say the projection applies, and the
    generated code builds it (stride != 1). The checker refused it ("cannot tell from the
    parameters where the projection applies"); it now follows the parameters, counting the
    projection's parameters as the module has them."""
    text = ("network N() {\n    input 1x6x6\n    adaptive_avgpool(1)\n    residual {\n"
            "        conv(1, 3, stride=2, pad=1) -> batchnorm -> relu\n        conv(1, 3, pad=1)\n"
            "    } shortcut projection\n}\n")
    compiled = compile_network(source_from_text(text, "tiny.cnn"))
    module = getattr(load_generated(generate(compiled)), "N")()
    assert sum(p.numel() for p in module.parameters()) == compiled.network.body.stats.params == 25
    assert tuple(module(torch.zeros(2, 1, 6, 6)).shape[1:]) == compiled.network.body.stats.out_shape == (1, 1, 1)
