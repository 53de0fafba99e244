"""Code generation under attack: a spec is data, and no spec may make the generated module
run anything but the network.

1. Names and values crafted to escape into the generated source (quotes, newlines,
   backslashes, dunders, keywords, builtins, `self`, `torch`, `nn.Module` attributes,
   very long names, hostile strings in `padding_mode` and in `--set` values) are
   rejected with a diagnostic, wherever in the language a name or value can stand.
2. The proof for everything that is accepted: every built-in, every example, every
   attack that compiles and a few hundred random programs from the fuzz generator give
   modules whose syntax tree holds only imports of torch and collections, `__all__`,
   classes and functions; whose calls go only to `nn.*`, `torch.*`, `super()`, the
   module's own classes and helpers, and the modules it registered on `self`; and that
   name no builtin that could reach the outside (exec, open, __import__, getattr ...).
3. And at run time: building and running the accepted attacks under an audit hook
   shows no process, file, socket or import event beyond torch's own.
"""

from __future__ import annotations

import ast
import functools
import random
import sys
from pathlib import Path

import pytest

import cnndsl
from cnndsl import CompileError
from cnndsl.api import load_generated

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import fuzz_campaign as fc  # noqa: E402

SPECS = sorted((ROOT / "specs").rglob("*.cnn"))

ESCAPES = [
    "exec", "eval", "open", "__import__", "getattr", "setattr", "globals", "compile", "print", "input",
    "breakpoint", "vars", "type", "object", "super", "id", "len", "range", "list", "dict", "set", "int",
    "float", "bool", "str", "min", "max", "sum", "map",  # builtins
    "class", "def", "import", "from", "lambda", "return", "None", "True", "False", "and", "or", "not",
    "if", "else", "for", "while", "try", "with", "yield", "await", "async", "global", "del", "pass",
    "match", "case", "_",  # keywords and soft keywords
    "__init__", "__class__", "__dict__", "__globals__", "__builtins__", "__call__", "__all__",
    "__getattr__", "__reduce__",  # dunders
    "self", "torch", "nn", "x", "identity", "OrderedDict", "Maxout", "MinPool2d", "zero_pad_shortcut",
    "annotations",  # names the generated module uses itself
    "a" * 65, "a" * 1000, "b" * 100_000,  # very long
]
MODULE_ATTRIBUTES = ["forward", "training", "eval", "train", "parameters", "state_dict", "load_state_dict",
                     "to", "cuda", "cpu", "half", "apply", "zero_grad", "register_buffer", "add_module",
                     "modules", "children", "_modules", "_parameters", "_buffers", "_private", "T_destination",
                     "register_forward_hook", "extra_repr", "get_submodule", "named_modules"]
LEXICALLY_BAD = ['a"b', "a'b", "a\nb", "a\\b", "a b", "a;b", "a.b", "a(b)", "a\x00b", "café", "a\u202eb"]

# Every place in the language a name can stand, as a template with {n}.
NAME_PLACES = {
    "network name": "network {n}() {{\n    input 3x8x8\n    relu\n}}\n",
    "block name": "block {n}() {{\n    relu\n}}\nnetwork N() {{\n    input 3x8x8\n    {n}\n}}\n",
    "block parameter": "block B({n} = 4) {{\n    conv({n}, 3)\n}}\nnetwork N() {{\n    input 3x8x8\n    B\n}}\n",
    "network parameter": "network N({n} = 4) {{\n    input 3x8x8\n    conv({n}, 3)\n}}\n",
    "layer label": "network N() {{\n    input 3x8x8\n    {n}: conv(4, 3)\n}}\n",
    "group label": "network N() {{\n    input 3x8x8\n    {n}: [conv(4, 3) -> relu]\n}}\n",
    "block-use label": "block B() {{\n    relu\n}}\nnetwork N() {{\n    input 3x8x8\n    {n}: B\n}}\n",
    "concat branch": "network N() {{\n    input 3x8x8\n    concat {{\n        {n}: conv(4, 1) -> relu\n"
                     "        conv(4, 1)\n    }}\n}}\n",
    "shortcut label": "network N() {{\n    input 3x8x8\n    residual {{\n        conv(8, 3, pad=1)\n"
                      "    }} shortcut {n}: projection\n}}\n",
    "side label": "network N() {{\n    input 3x8x8\n    {n}: side fc(3)\n    relu\n}}\n",
    "repeated label": "network N() {{\n    input 3x8x8\n    {n}: [conv(3, 3, pad=1)]*2\n}}\n",
    "let name": "let {n} = conv(4, 3)\nnetwork N() {{\n    input 3x8x8\n    {n}\n}}\n",
    "switch": "network N() {{\n    input 3x8x8\n    conv(4, 3)?{n}\n}}\n",
    "keyword argument": "network N() {{\n    input 3x8x8\n    conv(4, 3, {n}=1)\n}}\n",
}
# Places where a label is a module attribute, so nn.Module's own attributes are refused too.
ATTRIBUTE_PLACES = ("layer label", "group label", "block-use label", "concat branch", "shortcut label",
                    "side label", "repeated label")


def rejected(text: str, **params) -> list:
    with pytest.raises(CompileError) as info:
        cnndsl.compile_source(text, **params)
    assert info.value.diagnostics, "a CompileError must carry a diagnostic"
    return info.value.diagnostics


# -- 1. names and values that would escape are refused ----------------------------------------

# Places whose name never reaches the generated code: a let is substituted where it is
# used, a switch only decides what is built, a keyword argument must be one of the layer's.
NOT_EMITTED = ("let name", "switch", "keyword argument")


@pytest.mark.parametrize("place", sorted(NAME_PLACES))
@pytest.mark.parametrize("name", ESCAPES + LEXICALLY_BAD, ids=lambda n: repr(n[:20]))
def test_every_escaping_name_is_refused_in_every_place(place, name):
    text = NAME_PLACES[place].format(n=name)
    if place not in NOT_EMITTED:
        rejected(text)
        return
    try:
        code = cnndsl.compile_source(text)
    except CompileError as exc:
        assert exc.diagnostics
        return
    assert_only_the_network(code)
    identifiers = {n.id for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name)}
    identifiers |= {n.attr for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Attribute)}
    assert name not in identifiers - {"self", "torch", "nn", "x", "identity", "super", "__init__", "__all__"}


@pytest.mark.parametrize("place", ATTRIBUTE_PLACES)
@pytest.mark.parametrize("name", MODULE_ATTRIBUTES)
def test_module_attributes_are_refused_as_labels(place, name):
    rejected(NAME_PLACES[place].format(n=name))


HOSTILE_STRINGS = ['zeros\'); import os; os.system("id"); (\'', "zeros\\", 'zeros"', "zeros\n", '"""',
                   "'''", "\\x00", "{{ m }}", "{% for %}", "reflect' + __import__('os').name + '"]


@pytest.mark.parametrize("value", HOSTILE_STRINGS)
def test_hostile_padding_mode_in_the_spec_is_refused(value):
    literal = '"' + value + '"'
    rejected(f"network N() {{\n    input 3x8x8\n    conv(4, 3, padding_mode={literal})\n}}\n")


@pytest.mark.parametrize("value", HOSTILE_STRINGS + ["zeros ", "ZEROS", ""])
def test_hostile_padding_mode_through_set_is_refused(value):
    text = 'network N(mode = "zeros") {\n    input 3x8x8\n    conv(4, 3, pad=1, padding_mode=mode)\n}\n'
    assert "padding_mode=mode" in cnndsl.compile_source(text)  # the parameter is passed on
    rejected(text, mode=value)


@pytest.mark.parametrize("value", HOSTILE_STRINGS + ["4); import os; (4", 'x"', "1\n2", "__import__('os')"])
def test_hostile_strings_where_numbers_belong_are_refused(value):
    text = "network N(width = 4, classes = 10) {\n    input 3x8x8\n    conv(width, 3) -> fc(classes)\n}\n"
    rejected(text, width=value)
    rejected(text, classes=value)


@pytest.mark.parametrize("name", ["x; import os", "__import__", "a\nb", "self", "N=1", ""])
def test_set_with_a_name_the_network_lacks_is_refused(name):
    rejected("network N(width = 4) {\n    input 3x8x8\n    conv(width, 3)\n}\n", **{name: 1})


@pytest.mark.parametrize("value", ['"""; import os; """', "'''; import os; '''", "\\", "a\nimport os\n",
                                   "\"; __import__('os').system('id'); \""])
def test_an_unused_string_parameter_cannot_leave_its_docstring(value):
    """A network parameter no layer uses only shows up in the docstring, escaped."""
    text = 'network N(tag = "plain") {\n    input 3x8x8\n    conv(4, 3)\n}\n'
    try:
        code = cnndsl.compile_source(text, tag=value)
    except CompileError:
        return  # refusing it is as safe
    assert_only_the_network(code)
    module = ast.parse(code)
    docstrings = [ast.get_docstring(n) or "" for n in ast.walk(module)
                  if isinstance(n, (ast.Module, ast.ClassDef))]
    assert any(value.strip() in d or repr(value)[1:-1] in d for d in docstrings)


# -- 2. the proof, on the syntax tree of everything accepted ----------------------------------

ALLOWED_NODES = {
    ast.Module, ast.Expr, ast.Constant, ast.Import, ast.ImportFrom, ast.alias, ast.Assign, ast.Name,
    ast.Store, ast.Load, ast.List, ast.Tuple, ast.ClassDef, ast.FunctionDef, ast.arguments, ast.arg,
    ast.Attribute, ast.Call, ast.keyword, ast.Return, ast.If, ast.Compare, ast.IsNot, ast.NotEq, ast.Eq,
    ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.UnaryOp, ast.USub,
    ast.BoolOp, ast.Or, ast.And, ast.Subscript, ast.Slice,
    ast.BitOr,  # only in annotations: `stride: int | None = None`
    ast.AnnAssign,  # a side output declared before `if self.training:`, as TorchScript needs: `aux1: ... = None`
    ast.Dict,  # named outputs: `return {'out': x, 'aux': aux}`
    ast.IfExp, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Not, ast.Pow,  # a family's rules on its parameters
    ast.Raise,  # a parameter that decides the layers refuses another value: raise ValueError("w: compile ...")
    ast.For, ast.JoinedStr, ast.FormattedValue,  # a loop block: for i in range(n): self.add_module(f"layer{i + 1}", ...)
    ast.Starred,  # a Sequential of the layers a block's arguments keep: nn.Sequential(*layers)
}
ALLOWED_IMPORTS = {"import torch", "from torch import nn", "from collections import OrderedDict", "import math"}
# Pure functions of numbers that a family's rules call on the class's parameters: int(round(w * 0.25))
SAFE_BUILTINS = {"int", "float", "round", "min", "max", "abs", "len", "sum", "range",
                 "isinstance"}  # init { ... }: `if isinstance(m, nn.Conv2d):`
FORBIDDEN_NAMES = {"exec", "eval", "open", "__import__", "getattr", "setattr", "delattr", "globals", "locals",
                   "vars", "compile", "input", "breakpoint", "print", "os", "sys", "subprocess", "builtins",
                   "__builtins__", "importlib", "pickle", "socket", "type", "object"}
METHODS = {"__init__", "unflatten", "amax",  # super().__init__(); the Maxout helper's tensor methods
           "chunk",  # split { ... }: x1, x2 = x.chunk(2, dim=1)
           "permute",  # channels last and back (ConvNeXt)
           "bernoulli_", "div_",  # the StochasticDepth helper's noise
           "modules", "get_submodule"}  # init { ... }: the modules the rules set, a module by its key


def assert_only_the_network(code: str) -> None:
    """Raise AssertionError unless `code` can only define and run the network."""
    tree = ast.parse(code)
    defined = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    modules = set()  # the locals that a loop takes from the class's own modules: for layer in self.values()
    for node in ast.walk(tree):
        if isinstance(node, ast.For):
            loop = ast.unparse(node.iter)
            init = loop.endswith(".modules()") and node.target.id == "m"  # init { ... }: for m in self.modules()
            assert isinstance(node.target, ast.Name) and (loop == "self.values()" or loop.startswith("range(")
                                                          or init), loop
            assert not node.orelse
            if loop == "self.values()":
                modules.add(node.target.id)
    for index, statement in enumerate(tree.body):
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            assert ast.unparse(statement) in ALLOWED_IMPORTS, ast.unparse(statement)
        elif isinstance(statement, ast.Expr):
            assert index == 0 and isinstance(statement.value, ast.Constant) and \
                isinstance(statement.value.value, str), "only the module docstring may stand alone"
        elif isinstance(statement, ast.Assign):
            (target,) = statement.targets
            assert isinstance(target, ast.Name) and target.id == "__all__", ast.unparse(statement)
            assert all(isinstance(e, ast.Constant) and e.value in defined for e in statement.value.elts)
        else:
            assert isinstance(statement, (ast.ClassDef, ast.FunctionDef)), ast.unparse(statement)[:200]
    for node in ast.walk(tree):
        assert type(node) in ALLOWED_NODES, f"{type(node).__name__}: {ast.unparse(node)[:200]}"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            assert node in tree.body, "an import inside a class or function"
        if isinstance(node, ast.ClassDef):
            # nn.Module, or a torch.nn class refined (LayerNorm2d(nn.LayerNorm), as torchvision writes it)
            assert len(node.bases) == 1 and ast.unparse(node.bases[0]).startswith("nn.") and not node.decorator_list
            assert not node.keywords
        if isinstance(node, ast.FunctionDef):
            assert not node.decorator_list
        if isinstance(node, ast.Raise):
            exc = node.exc
            assert isinstance(exc, ast.Call) and ast.unparse(exc.func) == "ValueError" and not exc.keywords and \
                node.cause is None and [type(a) for a in exc.args] == [ast.Constant], ast.unparse(node)[:200]
        if isinstance(node, ast.Name):
            assert node.id not in FORBIDDEN_NAMES, node.id
        if isinstance(node, ast.Attribute):
            assert not (node.attr.startswith("__") and node.attr != "__init__"), node.attr
        if isinstance(node, ast.Call):
            _check_call(node, defined | modules)


def _check_call(node: ast.Call, defined: set[str]) -> None:
    func = node.func
    if isinstance(func, ast.Name):
        assert func.id in defined | {"super", "OrderedDict", "ValueError"} | SAFE_BUILTINS, f"call to {func.id}"
        return
    if _registered(func):
        return  # self.backbone.layer3(x), self.convs[0](x): a registered module's member, by name or place
    assert isinstance(func, ast.Attribute), ast.unparse(node)[:200]
    root = func
    while isinstance(root, ast.Attribute):
        root = root.value
    if isinstance(root, ast.Name) and root.id in ("nn", "torch", "math"):
        return  # nn.Conv2d(...), torch.cat(...), nn.functional.pad(...)
    if isinstance(func.value, ast.Name) and func.value.id == "self":
        return  # self.conv1(x): a module registered in __init__
    if isinstance(func.value, ast.Name) and func.attr == "append":
        return  # layers.append(nn.Conv2d(...)): a local list of the layers a block's arguments keep
    assert func.attr in METHODS, f"call to .{func.attr} on {ast.unparse(func.value)[:80]}"


def _registered(func) -> bool:
    """`self.a.b[4].c`: attributes and whole-number indices below self, two levels or more."""
    depth = 0
    while isinstance(func, (ast.Attribute, ast.Subscript)):
        if isinstance(func, ast.Subscript) and not (isinstance(func.slice, ast.Constant)
                                                    and type(func.slice.value) is int):
            return False
        func, depth = func.value, depth + 1
    return depth >= 2 and isinstance(func, ast.Name) and func.id == "self"


EXTRAS = ("fcn, aux on", "googlenet, aux on", "pattern, no pool", "keyed group")
RANDOM_NETWORKS = 150
RANDOM_PROGRAMS = 300


@functools.cache
def corpus() -> dict[str, str]:
    """Generated code for every spec, 150 random valid networks (the differential tests'
    generator) and the random programs of the fuzz generator that compile: made once, by the
    first test that reads it (not at collection, which every worker of the suite repeats)."""
    from test_differential import random_network

    found = {}
    for spec in SPECS:
        found[spec.stem] = cnndsl.compile_source(spec.read_text(encoding="utf-8"))
    found["fcn, aux on"] = cnndsl.compile_source((ROOT / "specs/fcn.cnn").read_text(), aux_loss=True)
    found["googlenet, aux on"] = cnndsl.compile_source((ROOT / "specs/googlenet.cnn").read_text(), aux_logits=True)
    found["pattern, no pool"] = cnndsl.compile_source((ROOT / "specs/examples/pattern.cnn").read_text(),
                                                      N=3, M=2, POOL=False)
    found["keyed group"] = cnndsl.compile_source(
        "network N() {\n    input 3x8x8\n    features: [c1: conv(4, 3) -> r1: relu] -> minpool(2) -> maxout\n}\n")
    rng = random.Random(2024)
    for index in range(RANDOM_NETWORKS):
        found[f"random network {index}"] = cnndsl.compile_source(random_network(rng)[0])
    for index in range(RANDOM_PROGRAMS):
        try:
            found[f"random program {index}"] = cnndsl.compile_source(fc.grammar_program(rng), **fc.settings(rng))
        except CompileError:
            pass
    return found


def test_the_corpus_is_large_and_varied():
    assert len(corpus()) >= len(SPECS) + len(EXTRAS) + RANDOM_NETWORKS + 5
    text = "\n".join(corpus().values())
    for construct in ("OrderedDict", "torch.cat", "zero_pad_shortcut", "MinPool2d", "Maxout", "if self.training"):
        assert construct in text, construct


@pytest.mark.parametrize("name", [spec.stem for spec in SPECS] + list(EXTRAS) +
                         [f"random network {index}" for index in range(RANDOM_NETWORKS)])
def test_accepted_code_runs_only_the_network(name):
    assert_only_the_network(corpus()[name])


def test_the_random_programs_that_compile_run_only_the_network():
    programs = [name for name in corpus() if name.startswith("random program ")]
    assert len(programs) >= 5
    for name in programs:
        assert_only_the_network(corpus()[name])


@pytest.mark.parametrize("evil", [
    "import os\n",
    "from os import system\n",
    "__all__ = ['N']\nos = __import__('os')\n",
    "class N(nn.Module):\n    def forward(self, x):\n        return exec('1')\n",
    "class N(nn.Module):\n    def forward(self, x):\n        return x.__class__\n",
    "class N(nn.Module):\n    def forward(self, x):\n        return open('f')\n",
    "class N(nn.Module):\n    def forward(self, x):\n        return (lambda: 1)()\n",
    "class N(nn.Module):\n    def forward(self, x):\n        return x.numpy().tofile('f')\n",
    "print('hi')\n",
    "class N(nn.Module):\n    def forward(self, x):\n        for f in x.grad_fn:\n            f(x)\n",
    "class N(object):\n    pass\n",
    "@staticmethod\ndef f():\n    pass\n",
    "def f():\n    import os\n",
    "def f():\n    global g\n",
])
def test_the_proof_rejects_code_that_escapes(evil):
    """The checker of the proof is itself tested: each of these must fail it."""
    code = '"""doc"""\n\nimport torch\nfrom torch import nn\n\n' + evil
    with pytest.raises(AssertionError):
        assert_only_the_network(code)


# -- 3. at run time, under an audit hook --------------------------------------------------------

_AUDIT = {"on": False, "events": []}
_WATCHED = ("os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.kill", "subprocess.Popen",
            "socket.", "os.remove", "os.unlink", "os.rename", "os.rmdir", "shutil.", "ctypes.", "builtins.input",
            "webbrowser.", "urllib.")


def _hook(event: str, args) -> None:
    if not _AUDIT["on"]:
        return
    if event.startswith(_WATCHED):
        _AUDIT["events"].append((event, repr(args)[:200]))
    elif event == "open" and args and isinstance(args[1], str) and any(m in args[1] for m in "wax+"):
        _AUDIT["events"].append((event, repr(args)[:200]))
    elif event == "import" and sys._getframe(1).f_code.co_filename.startswith("<cnndsl_"):
        # An import the generated code itself makes (torch's own lazy imports are not).
        _AUDIT["events"].append((event, str(args[0])))


sys.addaudithook(_hook)  # cannot be removed; it does nothing while _AUDIT["on"] is false


def test_building_and_running_accepted_attacks_raises_no_audit_event():
    import torch

    codes = [code for name, code in corpus().items() if name.startswith("random")][::4]
    attacks = []
    for value in ['"""; import os; """', "'''\nimport os\n'''"]:
        try:
            attacks.append(cnndsl.compile_source('network N(tag = "t") {\n    input 3x8x8\n    conv(4, 3)\n}\n',
                                                 tag=value))
        except CompileError:
            pass
    warm = load_generated(corpus()["lenet5"], "cnndsl_warm")
    warm.LeNet5()(torch.zeros(1, 1, 32, 32))  # torch's own lazy imports happen here, not below
    ran = 0
    _AUDIT["events"].clear()
    _AUDIT["on"] = True
    try:
        for index, code in enumerate(codes + attacks):
            module = load_generated(code, f"cnndsl_attack{index}")
            name = module.__all__[0]
            with torch.device("meta"):
                model = getattr(module, name)().eval()
            shape = _input_shape(code)
            with torch.no_grad():
                model(torch.zeros((1,) + shape, device="meta"))
            ran += 1
    finally:
        _AUDIT["on"] = False
    assert ran == len(codes) + len(attacks) and ran >= 30
    assert _AUDIT["events"] == []


def _input_shape(code: str) -> tuple[int, ...]:
    """The input shape, from the network class's docstring ("Input 3x8x8, output ...")."""
    import re

    match = re.search(r"Input (\d+(?:x\d+)*), output", code)
    return tuple(int(d) for d in match.group(1).split("x"))
