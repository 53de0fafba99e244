"""The code generator: standalone, deterministic, valid Python that reads like
hand-written PyTorch, with the spec's names as attributes and state_dict keys.
`generated/` is the golden set."""

from __future__ import annotations

import ast as pyast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import cnndsl
from cnndsl.compiler import builtins, compile_network, generate, load, source_from_text

from conftest import ROOT, run_cli, run_cli_in_process

torch = pytest.importorskip("torch")

from cnndsl.api import load_generated  # noqa: E402

REFERENCE = Path("/work/shared/reference/torchvision_models.json")
if not REFERENCE.exists():
    REFERENCE = ROOT.parent / "shared" / "reference" / "torchvision_models.json"

BLOCKS = """\
block Stage(out, k = 3, stride = 1) {
    conv: conv(out, k, stride=stride, pad=k // 2, bias=false) -> bn: batchnorm -> relu
}

block Mixed(a, b) {
    concat {
        left: conv(a, 1)
        right: conv(b, 1) -> conv(b, 3, pad=1)
        maxpool(3, stride=1, pad=1)
    }
}

block Basic(planes, stride = 1) {
    residual {
        conv1: conv(planes, 3, stride=stride, pad=1, bias=false) -> bn1: batchnorm -> relu
        conv2: conv(planes, 3, pad=1, bias=false) -> bn2: batchnorm
    } shortcut downsample: projection
    relu
}

network Blocks(classes = 10, width = 16) {
    input 3x32x32
    stem: Stage(width)
    layer1: [Stage(width * 2, k=5) -> Stage(width * 2)]
    mixed: Mixed(8, 8)
    layer2: [Basic(32, stride=2) -> Basic(32)]
    pool: global_avgpool
    head: fc(classes)
}
"""


def code_of(text: str, **params) -> str:
    return cnndsl.compile_source(text, **params)


def module_of(text: str, **params):
    return load_generated(code_of(text, **params))


def test_generated_code_imports_torch_only():
    for name in ("lenet5", "vgg16"):
        tree = pyast.parse(generate(compile_network(load(name))))
        imported = set()
        for node in pyast.walk(tree):
            if isinstance(node, pyast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, pyast.ImportFrom):
                imported.add((node.module or "").split(".")[0])
        assert imported <= {"torch", "collections", "__future__", "typing"}, imported
    tree = pyast.parse(code_of(BLOCKS))
    assert not [n for n in pyast.walk(tree) if isinstance(n, (pyast.Import, pyast.ImportFrom))
                and "cnndsl" in pyast.dump(n)]


def test_generated_code_runs_without_cnndsl(tmp_path):
    """Write the module out and run it in a fresh interpreter where cnndsl cannot be imported."""
    (tmp_path / "blocks_model.py").write_text(code_of(BLOCKS))
    (tmp_path / "lenet_model.py").write_text(generate(compile_network(load("lenet5"))))
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "sys.modules['cnndsl'] = None  # any import of cnndsl now fails\n"
        "import torch, blocks_model, lenet_model\n"
        "m = blocks_model.Blocks()\n"
        "print(tuple(m(torch.randn(2, 3, 32, 32)).shape))\n"
        "print(tuple(lenet_model.LeNet5()(torch.randn(1, 1, 32, 32)).shape))\n"
        "print(sorted(k for k, v in sys.modules.items() if k.startswith('cnndsl') and v is not None))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # -I: no user site, no PYTHONPATH, and not the repository on sys.path
    result = subprocess.run([sys.executable, "-I", "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["(2, 10)", "(1, 10)", "[]"]


def test_generated_code_is_deterministic_in_process():
    for text in (BLOCKS, (ROOT / "specs/examples/pattern.cnn").read_text()):
        assert code_of(text) == code_of(text)
    assert generate(compile_network(load("vgg16"))) == generate(compile_network(load("vgg16")))


def test_generated_code_is_deterministic_across_processes(tmp_path):
    spec = tmp_path / "blocks.cnn"
    spec.write_text(BLOCKS)
    outputs = set()
    for seed in ("0", "1", "12345"):
        result = subprocess.run([sys.executable, "-m", "cnndsl", "compile", str(spec)], capture_output=True,
                                cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": seed}, timeout=300)
        assert result.returncode == 0, result.stderr
        outputs.add(result.stdout)
    assert len(outputs) == 1


@pytest.mark.parametrize("name", sorted(builtins()))
def test_every_builtin_compiles_to_valid_python(name):
    code = generate(compile_network(load(name)))
    compile(code, f"{name}.py", "exec")
    assert code.endswith("\n") and not code.endswith("\n\n\n")
    assert "\t" not in code
    assert not [line for line in code.splitlines() if line != line.rstrip()], "trailing whitespace"


def test_block_classes_take_their_parameters_as_constructor_arguments():
    code = code_of(BLOCKS)
    tree = pyast.parse(code)
    classes = {n.name: n for n in tree.body if isinstance(n, pyast.ClassDef)}
    assert {"Stage", "Mixed", "Basic", "Blocks"} <= set(classes)

    def init_args(cls):
        init = next(n for n in cls.body if isinstance(n, pyast.FunctionDef) and n.name == "__init__")
        names = [a.arg for a in init.args.args][1:]
        defaults = [pyast.unparse(d) for d in init.args.defaults]
        return names, defaults

    names, defaults = init_args(classes["Stage"])
    assert names == ["in_channels", "out", "k", "stride"]
    assert defaults == ["3", "1"]
    names, _ = init_args(classes["Blocks"])
    assert names[:2] == ["classes", "width"]

    module = cnndsl.api.load_generated(code)
    stage = module.Stage(4, 12, k=5, stride=2)
    assert stage.conv.kernel_size == (5, 5) and stage.conv.stride == (2, 2) and stage.conv.in_channels == 4
    assert tuple(stage(torch.randn(1, 4, 16, 16)).shape) == (1, 12, 8, 8)
    basic = module.Basic(8, 16, stride=2)  # a projection where the shapes differ
    assert tuple(basic(torch.randn(1, 8, 8, 8)).shape) == (1, 16, 4, 4)
    assert basic.downsample is not None
    assert module.Basic(16, 16).downsample is None
    model = module.Blocks(classes=7, width=4)
    assert tuple(model(torch.randn(2, 3, 32, 32)).shape) == (2, 7)


def test_spec_names_become_attributes_and_state_dict_keys():
    model = module_of(BLOCKS).Blocks()
    keys = set(model.state_dict())
    for key in ("stem.conv.weight", "stem.bn.running_mean", "layer1.0.conv.weight", "layer1.1.bn.weight",
                "mixed.left.weight", "mixed.right.0.weight", "mixed.right.1.weight",
                "layer2.0.conv1.weight", "layer2.0.bn2.bias", "layer2.0.downsample.0.weight",
                "layer2.0.downsample.1.running_var", "layer2.1.conv2.weight", "head.weight", "head.bias"):
        assert key in keys, key
    assert not any(k.startswith("layer2.1.downsample") for k in keys)
    assert isinstance(model.stem.conv, torch.nn.Conv2d)
    assert isinstance(model.layer1, torch.nn.Sequential)


def test_lenet5_attribute_names_are_the_spec_labels():
    model = load_generated(generate(compile_network(load("lenet5")))).LeNet5()
    names = [name for name, _ in model.named_children()]
    for label in ("c1", "s2", "c3", "s4", "c5", "f6", "output"):
        assert label in names


def reference():
    return json.loads(REFERENCE.read_text())


@pytest.mark.parametrize("name", sorted(set(builtins()) & set(json.loads(REFERENCE.read_text()))))
def test_builtin_state_dict_is_torchvisions(name):
    """Keys, order and shapes of the state_dict, from the reference listing (meta tensors: no memory)."""
    compiled = compile_network(load(name))
    module = load_generated(generate(compiled))
    with torch.device("meta"):
        model = getattr(module, compiled.network.name)()
    got = [[key, list(value.shape)] for key, value in model.state_dict().items()]
    want = reference()[name]["state_dict"]
    assert got == want
    assert compiled.network.body.stats.params == reference()[name]["num_params"]


def test_shape_comments_where_the_shape_changes():
    compiled = compile_network(load("lenet5"))
    code = generate(compiled)
    forward = code[code.index("def forward"):]
    steps = [line.strip() for line in forward.splitlines() if line.strip().startswith("x = ")]
    assert steps, forward
    shapes = [tuple(compiled.network.input)]
    for step in steps:  # every step that changes the shape says the new one; the others say nothing
        found = re.search(r"  # (\d+(?:x\d+)*)$", step)
        if found:
            shape = tuple(int(d) for d in found.group(1).split("x"))
            assert shape != shapes[-1], step
            shapes.append(shape)
    assert "x = self.c1(x)  # 6x28x28" in steps
    assert "x = self.tanh1(x)" in steps
    assert "x = self.s4(x)  # 16x5x5" in steps
    assert "x = torch.flatten(x, 1)  # 400" in steps or "x = torch.flatten(x, 1)  # 120" in steps
    assert "x = self.output(x)  # 10" in steps
    assert shapes[-1] == tuple(compiled.network.body.stats.out_shape)


def test_block_comments_hold_for_every_use():
    """A block class is shared by uses of different sizes: its comments are in its own terms."""
    code = generate(compile_network(load("resnet50")))
    bottleneck = code[code.index("class Bottleneck"):code.index("class ResNet50")]
    assert "x = self.conv1(x)  # (int(planes * (base_width / 64)) * groups) x H x W" in bottleneck
    assert "# (planes * 4) x ((H - 1) // stride + 1) x ((W - 1) // stride + 1)" in bottleneck
    assert "56x56" not in bottleneck and "first use" not in bottleneck
    assert "Block `Bottleneck`: in_channels x H x W to" in bottleneck


@pytest.mark.parametrize("name", ["resnet50", "resnet20", "googlenet", "preact_resnet18"])
def test_block_shape_expressions_give_every_use_its_shape(name):
    """The symbolic shapes behind a block class's comments, evaluated with each use's
    input size and arguments, are the shapes the checker computed for that use."""
    from cnndsl import ir
    from cnndsl.passes.shapes import dim_names

    network = compile_network(load(name), {"aux_logits": True} if name == "googlenet" else {}).network
    checked = 0

    def leaves(node):
        if isinstance(node, ir.Layer):
            yield node
        for child in (getattr(node, "items", None) or getattr(node, "branches", None) or ()):
            yield from leaves(child)
        if isinstance(node, ir.Residual):
            yield from leaves(node.body)
        if isinstance(node, ir.Side):
            yield from leaves(node.node)

    def visit(node):
        nonlocal checked
        if isinstance(node, ir.BlockInstance):
            height, width = dim_names(node)
            env = {k: v.value for k, v in node.args}
            env.update({"in_channels": node.stats.in_shape[0], height: node.stats.in_shape[1],
                        width: node.stats.in_shape[2]})
            for layer in leaves(node.body):
                stats = layer.stats
                assert stats.channels.evaluate(env) == stats.out_shape[0], (layer, stats.channels)
                if stats.dims:
                    assert tuple(d.evaluate(env) for d in stats.dims) == stats.out_shape[1:], (layer, stats.dims)
                    checked += 1
            end = node.body.stats
            assert end.channels.evaluate(env) == node.stats.out_shape[0]
        for child in (getattr(node, "items", None) or getattr(node, "branches", None) or ()):
            visit(child)
        for attr in ("body", "node"):
            if isinstance(getattr(node, attr, None), (ir.Seq, ir.BlockInstance, ir.Residual, ir.Side)):
                visit(getattr(node, attr))

    visit(network.body)
    assert checked > 10


def test_block_comments_of_a_flatten_inside_a_group():
    code = cnndsl.compile_source("block Head(classes) {\n    head: [adaptive_avgpool(2) -> fc(classes)]\n}\n"
                                 "network N() {\n    input 3x8x8\n    conv(4, 3) -> Head(10)\n}\n")
    assert "nn.Flatten(),  # in_channels * 2 * 2\n" in code and "?" not in code
    assert "nn.Linear(in_channels * 2 * 2, classes),  # classes" in code


def test_forward_is_set_out_in_stages():
    code = generate(compile_network(load("resnet50")))
    forward = code[code.index("def forward", code.index("class Bottleneck")):code.index("class ResNet50")]
    assert "identity = x\n\n        x = self.conv1(x)" in forward
    assert "x = self.relu1(x)\n\n        x = self.conv2(x)" in forward
    assert "identity = self.downsample(identity)\n\n        x = x + identity\n        x = self.relu3(x)" in forward
    network = code[code.index("def forward", code.index("class ResNet50")):]
    assert "x = self.relu(x)\n\n        x = self.maxpool(x)" in network
    assert "x = self.layer1(x)  # 256x56x56\n\n        x = self.layer2(x)" in network
    assert "\n\n\n" not in code.replace("\n\n\nclass", "").replace("\n\n\ndef", "")


def test_long_lines_wrap_one_parameter_a_line():
    for name in builtins():
        code = generate(compile_network(load(name)))
        assert max(len(line) for line in code.splitlines()) <= 92, name
    code = generate(compile_network(load("googlenet")))
    assert "    def __init__(\n        self,\n        in_channels: int,\n        out: int,\n" in code


def test_spec_header_comment_becomes_the_class_docstring():
    code = generate(compile_network(load("resnet50")))
    network = code[code.index("class ResNet50"):]
    assert '"""ResNet-50 (He et al. 2015): bottlenecks [3, 4, 6, 3], v1.5' in network
    assert "downsampling bottleneck strides on its 3x3 convolution" in network
    code = cnndsl.compile_source('# Tiny: """ends\\ here\n#\n# why it is so\nnetwork N() {\n    input 3x8x8\n'
                                 '    conv(4, 3)\n}\n')
    assert 'Tiny: \\"\\"\\"ends\\\\ here\n\n    why it is so\n' in code
    assert load_generated(code).N()(torch.zeros(1, 3, 8, 8)).shape == (1, 4, 6, 6)


def test_channel_chains_stay_flat():
    """A DenseNet-like chain: each layer's channels add to the last, without a bracket a level."""
    spec = (
        "block Layer(g) {\n    concat {\n        identity\n        conv(g, 3, pad=1)\n    }\n}\n"
        "block Dense(g) {\n" + "    " + " -> ".join(["Layer(g)"] * 23) + "\n}\n"
        "network N(g = 4) {\n    input 3x8x8\n    Dense(g) -> Dense(g) -> global_avgpool -> fc(10)\n}\n")
    code = cnndsl.compile_source(spec)
    assert "((" not in code.split("class N(")[0].replace("((H", "").replace("((W", "")
    assert "Layer(in_channels + g * 3, g)" in code and "Layer(in_channels + g * 22, g)" in code
    assert "Dense(3 + g * 23, g)" in code and "nn.Linear(3 + g * 46, 10)" in code
    model = load_generated(code).N()
    assert model(torch.zeros(1, 3, 8, 8)).shape == (1, 10)


def test_sequential_children_carry_shape_comments():
    code = generate(compile_network(load("vgg16")))
    assert "nn.Conv2d(in_channels, 64, kernel_size=3, padding=1),  # 64x224x224" in code
    assert "nn.Conv2d(64, 128, kernel_size=3, padding=1),  # 128x112x112" in code
    assert "nn.MaxPool2d(2),  # 512x7x7" in code


def test_generated_module_output_matches_the_checker_for_blocks():
    compiled = compile_network(source_from_text(BLOCKS, "blocks.cnn"))
    model = getattr(load_generated(generate(compiled)), "Blocks")().eval()
    with torch.no_grad():
        y = model(torch.randn(2, 3, 32, 32))
    assert tuple(y.shape[1:]) == compiled.network.body.stats.out_shape
    assert sum(p.numel() for p in model.parameters()) == compiled.network.body.stats.params


@pytest.mark.parametrize("path", sorted((ROOT / "generated").glob("*.py")), ids=lambda p: p.name)
def test_generated_files_are_what_compile_produces_now(path):
    """Golden: `cnndsl compile NAME` gives exactly the committed generated/NAME.py (the
    command's entry point in process; test_generated_golden_through_the_real_command runs
    the command itself for one of them)."""
    assert path.stem in builtins(), f"generated/{path.name} has no spec"
    result = run_cli_in_process("compile", path.stem)
    assert result.returncode == 0, result.stderr
    assert result.stdout == path.read_text(encoding="utf-8")


def test_generated_golden_through_the_real_command():
    result = run_cli("compile", "resnet50")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (ROOT / "generated" / "resnet50.py").read_text(encoding="utf-8")


def test_first_builtins_have_golden_files():
    assert {"lenet5", "vgg16"} <= {p.stem for p in (ROOT / "generated").glob("*.py")}


# -- ReLU(inplace=True) only where its input is a fresh tensor -------------------------

INPLACE_SPEC = """
block Pre(planes) {
    residual {
        bn1: batchnorm -> relu
        conv1: conv(planes, 3, pad=1)
        relu
    }
}
block Mixed(c) {
    concat {
        a: relu -> conv(c, 1)
        b: conv(c, 1) -> relu
        pool: maxpool(3, stride=1, pad=1) -> relu
    }
    relu
}
network Net(classes = 5) {
    input 3x12x12
    stem: conv(8, 3, pad=1) -> relu -> tanh -> relu -> sigmoid -> relu
    a: Pre(8) -> relu
    b: Mixed(4) -> relu
    tap: conv(12, 3, pad=1)
    head: side(tap) [global_avgpool -> fc(classes)]
    relu -> avgpool(2) -> relu -> fc(16) -> relu -> dropout(0.1) -> relu -> fc(classes)
}
"""


def test_inplace_relus_compute_the_same_values_and_gradients_as_plain_ones():
    import torch

    code = cnndsl.compile_source(INPLACE_SPEC)
    assert "inplace=True" in code
    module = cnndsl.api.load_generated(code)
    torch.manual_seed(0)
    fast = module.Net().train()
    plain = module.Net().train()
    plain.load_state_dict(fast.state_dict())
    for m in plain.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False
    x = torch.randn(3, 3, 12, 12)
    outs = []
    for net in (fast, plain):
        torch.manual_seed(1)  # the same dropout mask
        xi = x.clone().requires_grad_(True)
        out, head = net(xi)
        (out.square().sum() + head.sum()).backward()
        outs.append((out, head, xi.grad, [p.grad for p in net.parameters()]))
    (o1, h1, g1, p1), (o2, h2, g2, p2) = outs
    # (oneDNN may pick other kernels for the two, so equal up to float rounding; an aliasing
    # mistake changes values by far more, or makes backward raise)
    close = dict(rtol=1e-4, atol=1e-5)
    assert torch.allclose(o1, o2, **close) and torch.allclose(h1, h2, **close) and torch.allclose(g1, g2, **close)
    assert all(torch.allclose(a, b, **close) for a, b in zip(p1, p2))
    # Where the input is read elsewhere, or its producer's backward reads it, the ReLU is plain.
    assert "self.relu = nn.ReLU()" in code or "nn.ReLU()," in code or "= nn.ReLU()\n" in code


DENSE_SPEC = """\
block Layer(growth) {
    norm: batchnorm -> relu -> conv: conv(growth, 3, pad=1, bias=false)
}

block Dense(layers, growth) {
    concat {
        identity
        "layer{i + 1}": Layer(growth)
    }*layers for i
}

block Chain(n, width) {
    ["unit{2 * i}": Layer(width)]*n for i
}

network Net(growth = 4) {
    input 3x8x8
    stem: conv(8, 3, pad=1)
    a: Dense(3, growth) -> b: Dense(5, growth) -> c: Chain(2, 6)
    pool: global_avgpool
    head: fc(10)
}
"""


def test_a_block_that_is_one_repetition_is_a_loop_as_torchvision_writes_it():
    code = code_of(DENSE_SPEC)
    classes = [n.name for n in pyast.parse(code).body if isinstance(n, pyast.ClassDef)]
    assert classes == ["Layer", "Dense", "Chain", "Net"]  # one Dense for 3 and 5 layers: no Dense2
    assert "class Dense(nn.ModuleDict):" in code
    assert "        for i in range(layers):\n            layer = Layer(in_channels + growth * i, growth)\n" \
           '            self.add_module(f"layer{i + 1}", layer)\n' in code
    assert "        for layer in self.values():\n            x = torch.cat([x, layer(x)], dim=1)\n" in code
    assert 'self.add_module(f"unit{i * 2}", layer)' in code and "            x = layer(x)\n" in code
    assert "in_channels x H x W to (in_channels + growth * layers) x H x W" in code
    assert "self.a = Dense(8, 3, growth)" in code and "self.b = Dense(8 + growth * 3, 5, growth)" in code
    module = load_generated(code)
    model = module.Net()
    assert [k for k in model.state_dict() if k.startswith("b.") and k.endswith("conv.weight")] == \
        [f"b.layer{i}.conv.weight" for i in range(1, 6)]
    assert [k.split(".")[1] for k in model.state_dict() if k.startswith("c.") and k.endswith("conv.weight")] == \
        ["unit0", "unit2"]
    x = torch.randn(2, 3, 8, 8)
    assert tuple(model(x).shape) == (2, 10)
    assert tuple(model.b(torch.randn(1, 20, 4, 4)).shape) == (1, 40, 4, 4)
    built = cnndsl.build(DENSE_SPEC).eval()  # a real module's source, which TorchScript reads
    assert torch.allclose(torch.jit.script(built)(x), built(x))


def test_a_repetition_whose_copies_are_not_one_pattern_is_unrolled():
    spec = DENSE_SPEC.replace('"layer{i + 1}": Layer(growth)', '"layer{i + 1}": Layer(growth * (i + 1) * (i + 1))')
    code = code_of(spec)
    assert "range(layers)" not in code and "self.layer3 = Layer(" in code  # growth * 9: not affine in i
    assert "class Chain(nn.ModuleDict):" in code  # the other block keeps its loop
    module = load_generated(code)
    assert tuple(module.Net()(torch.randn(1, 3, 8, 8)).shape) == (1, 10)


def test_a_loop_index_named_like_the_generated_code_stays_safe():
    spec = DENSE_SPEC.replace("}*layers for i", "}*layers for nn").replace('"layer{i + 1}"', '"layer{nn + 1}"')
    code = code_of(spec)
    assert "for nn in" not in code and "for nn2 in range(layers):" in code  # nn is torch's
    assert tuple(load_generated(code).Net()(torch.randn(1, 3, 8, 8)).shape) == (1, 10)


def test_adaptive_pools_take_a_height_and_a_width():
    spec = "network N() {\n    input 3x32x20\n    conv(8, 3, pad=1) -> adaptive_avgpool((7, 5)) -> adaptive_maxpool((3, 1))" \
           " -> fc(10)\n}\n"
    code = code_of(spec)
    assert "nn.AdaptiveAvgPool2d((7, 5))" in code and "nn.AdaptiveMaxPool2d((3, 1))" in code
    assert "x = self.pool1(x)  # 8x7x5" in code and "x = self.pool2(x)  # 8x3x1" in code
    compiled = compile_network(source_from_text(spec), {})
    assert compiled.network.body.stats.out_shape == (10,)
    model = load_generated(code).N()
    assert tuple(model.pool1(torch.randn(1, 8, 32, 20)).shape) == (1, 8, 7, 5)
    assert tuple(model(torch.randn(2, 3, 32, 20)).shape) == (2, 10)
    assert "adaptive_avgpool 7x5" in cnndsl.summarize(spec)
    with pytest.raises(cnndsl.CompileError, match="at least 1 on the height axis"):
        code_of("network N() {\n    input 3x8x8\n    adaptive_maxpool((0, 2))\n}\n")
    warned = compile_network(source_from_text("network N() {\n    input 3x4x4\n    adaptive_avgpool((7, 2))\n}\n"), {})
    assert [w.message for w in warned.warnings] == ["adaptive_avgpool to 7x2 enlarges a 4x4 input"]


TOGGLE_SPEC = """\
let Body = conv: [conv(inp * 2, 1, bias=false) -> batchnorm -> relu -> conv(out, 3, stride=stride, pad=1, bias=false)
    -> batchnorm]

block Inverted(inp, out, stride) {
    residual { Body }?(stride == 1 and inp == out)
    Body?(stride != 1 or inp != out)
}

network Net() {
    input 3x16x16
    features: [Inverted(3, 8, 2) -> Inverted(8, 8, 1) -> Inverted(8, 16, 1)]
}
"""


def test_uses_that_differ_only_by_the_residuals_condition_share_one_class():
    code = code_of(TOGGLE_SPEC)
    classes = [n.name for n in pyast.parse(code).body if isinstance(n, pyast.ClassDef)]
    assert classes == ["Inverted", "Net"]  # no Inverted2
    assert "        self.use_res_connect = stride == 1 and inp == out\n" in code
    assert "        if self.use_res_connect:\n            x = x + identity" in code
    module = load_generated(code)
    model = module.Net().eval()
    assert [m.use_res_connect for m in model.features] == [False, True, False]
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():  # the residual only where the condition holds: the second block adds its input
        a = model.features[0](x)
        assert torch.allclose(model.features[1](a), model.features[1].conv(a) + a)
        b = model.features[1](a)
        assert torch.allclose(model.features[2](b), model.features[2].conv(b))
    built = cnndsl.build(TOGGLE_SPEC).eval()
    assert torch.allclose(torch.jit.script(built)(x), built(x))


def test_the_generator_is_freed_by_reference_counting():
    """generate() leaves no cycle holding the code generator's tables (recursive closures
    once did: 8,331 objects of efficientnet_v2_l that only the cycle collector freed, and
    scanned first)."""
    import gc

    from cnndsl.codegen.model import Generator
    from cnndsl.compiler import compile_network, generate, load

    compiled = compile_network(load("efficientnet_b0"))
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        generate(compiled)
        left = [o for o in gc.get_objects() if isinstance(o, Generator)]
    finally:
        if enabled:
            gc.enable()
    assert left == []


@pytest.mark.parametrize("name", ["efficientnet_b0", "densenet121", "resnet50", "inception_v3",
                                  "deeplabv3_mobilenet", "shufflenet_v2_x1_0", "convnext_tiny"])
def test_a_compile_leaves_no_garbage_for_the_cycle_collector(name):
    """compile_network and generate free what they drop by reference counting: no cycle is
    left for the collector, which would scan the whole IR first (a self-calling closure in
    receptive._order once left 444 objects of efficientnet_v2_l, a template macro 756)."""
    import gc

    from cnndsl.compiler import compile_network, generate, load

    source = load(name)
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        generate(compile_network(source))
        found = gc.collect()
    finally:
        if enabled:
            gc.enable()
    assert found == 0
