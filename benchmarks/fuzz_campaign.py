"""The fuzz campaign over the compiler, and the input generators that `tests/test_fuzz.py`
runs as its bounded campaign on every CI run.

    .venv/bin/python benchmarks/fuzz_campaign.py --minutes 5            # random generators
    .venv/bin/python benchmarks/fuzz_campaign.py --minutes 5 --engine atheris

Every input must end in a clean `cnndsl.CompileError` or a valid compile whose generated
source is valid Python; within `HANG_SECONDS`; without raising the process's peak resident memory by more than
`PEAK_GROWTH_BYTES`. Anything else (another exception, a hang, a blow-up) is a failure: the
campaign saves the input to `benchmarks/results/fuzz_failures/` and counts it.

The generators take a `random.Random`, so hypothesis drives them in the tests (through
`st.randoms()`, which makes their choices shrinkable) and plain seeds drive them here:
    grammar_program   random programs built from the grammar's productions
    mutate_spec       byte, character and token mutations of every spec in specs/
    hostile           deep nesting, huge repetitions and numbers, empty files, NUL bytes,
                      invalid UTF-8, CRLF, tabs, unicode names, very long names
    built             (fuzz_build.py) networks built and run forward in eval and train mode
                      and backward, against the checker; endless and non-UTF-8 inputs,
                      crafted checkpoint metadata, `serve` requests
    --lsp N           (fuzz_lsp.py) hostile JSON-RPC messages to the language server

    .venv/bin/python benchmarks/fuzz_campaign.py --programs 20000 --built 5000   # a fixed count

A counted campaign in resumable shards (`make fuzz FUZZ_PROGRAMS=20000 FUZZ_BUILT=5000`):

    nice -n 15 .venv/bin/python benchmarks/fuzz_campaign.py --programs 20000 --built 5000 --shards 20 --seed 1

Shard k runs on seed `seed * 1000 + k` and writes its summary (inputs, built, failures by
family and class, seed, commit, wall and CPU time, load) atomically to
benchmarks/results/fuzz_shards/; run again, the command skips the shards done on this
commit. `--shard k` runs one shard (a worker of several); `--aggregate FILES` sums shard
summaries, refusing shards of different or dirty commits and repeated seeds. Everything runs
in this one process: compiles through the API, networks built from their generated source
with `exec`, torch on one thread (the networks are a few channels of at most 24x24).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import sys
import time
import resource
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "benchmarks"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

# A hang guard, not a speed goal (the largest built-in compiles in ~25 ms). It is on the
# CPU time of this process, which other processes on a busy 2-core machine do not inflate;
# the wall-clock guard is for a compile that waits (on a file, a lock) and counts the time
# the thread was blocked: wall time less its time on the CPU and waiting for one (Linux's
# schedstat), so that a campaign run under `nice` on a loaded machine is not failed for
# the machine's load.
HANG_SECONDS = 2.0
HANG_WALL_SECONDS = 10.0


def _scheduled_seconds() -> float | None:
    """This thread's time on a CPU plus its time runnable, waiting for one; None off Linux."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            running, waiting = f.read().split()[:2]
    except (OSError, ValueError):
        return None
    return (int(running) + int(waiting)) / 1e9
PEAK_GROWTH_BYTES = 512 << 20  # growth of the process's peak RSS over a whole campaign

SPEC_FILES = sorted((ROOT / "specs").rglob("*.cnn"))


def spec_texts() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in SPEC_FILES}


# -- the grammar-aware generator -------------------------------------------------------

LAYERS = ("conv", "maxpool", "avgpool", "minpool", "adaptive_avgpool", "adaptive_maxpool", "global_avgpool",
          "fc", "linear", "flatten", "dropout", "batchnorm", "bn", "lrn", "norm", "relu", "leaky_relu", "elu",
          "sigmoid", "tanh", "softmax", "maxout", "identity", "RELU", "CONV", "FC")
KEYWORDS = ("let", "block", "network", "input", "concat", "residual", "shortcut", "side", "true", "false", "x",
            "projection", "identity", "pad", "INPUT")
KWARGS = ("stride", "pad", "dilation", "groups", "bias", "padding_mode", "ceil", "floor", "p", "units",
          "filters", "size", "eps", "momentum", "affine", "alpha", "beta", "k", "slope", "dim", "pieces",
          "count_include_pad", "bn")
# Names a hostile spec might try to smuggle into the generated source.
DANGEROUS_NAMES = ("self", "torch", "nn", "x", "identity", "exec", "eval", "open", "__import__", "__class__",
                   "__init__", "forward", "training", "super", "print", "import", "lambda", "None", "True",
                   "class", "def", "return", "OrderedDict", "Maxout", "MinPool2d", "zero_pad_shortcut",
                   "state_dict", "_private", "in_channels", "os", "sys", "getattr", "globals", "compile",
                   "annotations", "__all__", "match", "case", "type", "_")
UNICODE_NAMES = ("café", "Ω", "ｃｏｎｖ", "x\u200d", "a\u202eb", "π", "名前", "conv\u0301", "𝐜𝐨𝐧𝐯", "Ⅻ", "ß")
INTERESTING_INTS = ("0", "1", "2", "3", "7", "-1", "64", "65536", "99999999999999999", "1" + "0" * 30,
                    "1099511627776", "16777217", "4294967296")
INTERESTING_FLOATS = ("0.5", "1.0", "0.0", "1e-5", "1e308", "1e309", "2.5", ".5", "5.", "1e999", "-0.0",
                      "0.9999999999999999")
INTERESTING_STRINGS = ('"zeros"', '"reflect"', '"circular"', '"replicate"', '""', '"a\'b"', '"x y"',
                       '"__import__"', '"zeros\'); import os; ("', '"\\n"')


SAFE_NAMES = ("a", "b", "c", "n", "k", "planes", "width", "depth", "classes", "N", "M", "K", "y")


class ProgramGen:
    """Random programs from the grammar's productions. Half are `clean`: safe names and
    well-typed arguments, so that many check and reach the code generator; the others
    put hostile names, numbers and strings anywhere the grammar allows one."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.hostile = rng.random() < 0.5
        self.scope: list[str] = []  # parameters visible in the definition being written
        self.labels = 0

    # -- atoms ---------------------------------------------------------------------------
    def name(self) -> str:
        rng, roll = self.rng, self.rng.random()
        if not self.hostile or roll < 0.6:
            return rng.choice(SAFE_NAMES)
        if roll < 0.85:
            return rng.choice(DANGEROUS_NAMES)
        if roll < 0.95:
            return rng.choice(UNICODE_NAMES)
        return "n" * rng.choice((63, 64, 65, 200, 5000))

    def label(self) -> str:
        if self.hostile and self.rng.random() < 0.5:
            return self.name()
        self.labels += 1
        return f"l{self.labels}"

    def number(self) -> str:
        rng, roll = self.rng, self.rng.random()
        if not self.hostile or roll < 0.5:
            return str(rng.choice((1, 1, 2, 2, 3, 3, 4, 5, 8, 16, 32, 64)))
        if roll < 0.8:
            return rng.choice(INTERESTING_INTS)
        return rng.choice(INTERESTING_FLOATS)

    def expr(self, depth: int = 0) -> str:
        rng, roll = self.rng, self.rng.random()
        if depth > 3 or roll < 0.55:
            return self.number()
        if roll < 0.7:
            return rng.choice(self.scope) if self.scope and not self.hostile else self.name()
        if roll < 0.76:
            return rng.choice(("true", "false"))
        if roll < 0.8:
            return rng.choice(INTERESTING_STRINGS) if self.hostile else '"zeros"'
        if roll < 0.85:
            return f"-{rng.choice((self.number(), '(' + self.expr(depth + 1) + ')'))}"
        if roll < 0.9:
            return f"({self.expr(depth + 1)})"
        op = rng.choice(("+", "-", "*", "/", "//", "%"))
        return f"{self.expr(depth + 1)} {op} {self.expr(depth + 1)}"

    def width(self) -> str:
        """A channel count: a small number, or a parameter times a factor."""
        rng = self.rng
        if self.scope and rng.random() < 0.3:
            return rng.choice((f"{rng.choice(self.scope)}", f"{rng.choice(self.scope)} * 2"))
        return str(rng.choice((4, 6, 8, 12, 16)))

    # -- layers --------------------------------------------------------------------------
    def call(self, names: list[str]) -> str:
        rng = self.rng
        if names and rng.random() < 0.2:
            return rng.choice(names)
        if self.hostile:
            kind = rng.choice(LAYERS)
            args = [self.expr() for _ in range(rng.choice((0, 1, 1, 2, 2, 3, 4)))]
            args += [f"{rng.choice(KWARGS) if rng.random() < 0.85 else self.name()}={self.expr()}"
                     for _ in range(rng.choice((0, 0, 1, 2, 3)))]
            return f"{kind}({', '.join(args)})" if args or rng.random() < 0.7 else kind
        kind = rng.choice(("conv", "conv", "conv", "relu", "relu", "maxpool", "avgpool", "minpool", "batchnorm",
                           "dropout", "fc", "lrn", "leaky_relu", "elu", "tanh", "sigmoid", "maxout",
                           "adaptive_avgpool", "global_avgpool", "identity", "softmax", "flatten"))
        if kind == "conv":
            size = rng.choice((1, 3, 3, 5))
            args = [self.width(), str(size)]
            extra = {"stride": rng.choice((1, 1, 2)), "pad": size // 2, "dilation": rng.choice((1, 1, 2)),
                     "groups": rng.choice((1, 1, 2)), "bias": rng.choice(("true", "false")),
                     "padding_mode": rng.choice(('"zeros"', '"reflect"', '"circular"', '"replicate"'))}
            for key in rng.sample(sorted(extra), rng.randint(0, 3)):
                args.append(f"{key}={extra[key]}")
            return f"conv({', '.join(args)})"
        if kind in ("maxpool", "avgpool", "minpool"):
            size = rng.choice((2, 2, 3))
            args = [str(size)] + rng.sample([f"stride={rng.choice((1, 2))}", f"pad={size // 2}",
                                             f"ceil={rng.choice(('true', 'false'))}"], rng.randint(0, 2))
            return f"{kind}({', '.join(args)})"
        if kind == "fc":
            return f"fc({self.width()})"
        if kind == "dropout":
            return rng.choice(("dropout", "dropout(0.25)", "dropout(p=0.1)"))
        if kind == "maxout":
            return "maxout(2)"
        if kind == "adaptive_avgpool":
            return f"adaptive_avgpool({rng.choice((1, 2))})"
        if kind == "leaky_relu":
            return rng.choice(("leaky_relu", "leaky_relu(0.2)"))
        return kind

    def element(self, names: list[str], depth: int) -> str:
        rng, roll = self.rng, self.rng.random()
        if depth > 3 or roll < 0.55:
            core = self.call(names)
        elif roll < 0.7:
            core = "[" + self.chain(names, depth + 1) + "]"
        elif roll < 0.8:
            branches = [self.chain(names, depth + 1) for _ in range(rng.randint(1, 3))]
            core = "concat {\n" + "\n".join(branches) + "\n}"
        elif roll < 0.9:
            body = "\n".join(self.chain(names, depth + 1) for _ in range(rng.randint(1, 2)))
            shortcuts = ["", " shortcut projection", " shortcut pad", " shortcut identity",
                         f" shortcut {self.label()}: projection", " shortcut projection(bn=false)"]
            if self.hostile:
                shortcuts.append(f" shortcut {self.name()}")
            core = "residual {\n" + body + "\n}" + rng.choice(shortcuts)
        else:
            core = "side " + self.call(names)
        if rng.random() < 0.15:
            count = rng.choice((self.number(), "(" + self.expr() + ")")) if self.hostile else \
                rng.choice(("2", "3", "0", "1", "(1 + 1)"))
            core += f"*{count}"
        if rng.random() < 0.1:
            core += "?" + ((self.name() if rng.random() < 0.5 else "") if self.hostile else "sw")
        if rng.random() < 0.2 and (self.hostile or not core.startswith(("concat", "residual"))):
            core = f"{self.label()}: {core}"
        return core

    def chain(self, names: list[str], depth: int = 0) -> str:
        parts = [self.element(names, depth) for _ in range(self.rng.randint(1, 4))]
        return self.rng.choice((" -> ", " -> ", " -> ", "\n    -> ", " ->\n    ")).join(parts)

    def params(self) -> str:
        out, self.scope = [], []
        for _ in range(self.rng.choice((0, 0, 1, 2, 3))):
            name = self.name() if self.hostile else self.rng.choice(("planes", "width", "k", "n"))
            if name in self.scope:
                continue
            self.scope.append(name)
            default = self.expr() if self.hostile else str(self.rng.choice((4, 8, 16)))
            out.append(name if self.hostile and self.rng.random() < 0.1 else f"{name} = {default}")
        return ", ".join(out)

    def program(self) -> str:
        rng = self.rng
        items, names = [], []
        for i in range(rng.choice((0, 0, 1, 2))):
            name = rng.choice(("CONV", "POOL", "FC", "L", self.name())) if self.hostile else f"L{i}"
            self.scope = []
            items.append(f"let {name} = {self.chain(names)}")
            names.append(name)
        for i in range(rng.choice((0, 0, 1, 2))):
            name = rng.choice(("Block", "Basic", "Stage", self.name())) if self.hostile else f"Block{i}"
            header = self.params()
            body = "\n    ".join(self.chain(names) for _ in range(rng.randint(1, 3)))
            items.append(f"block {name}({header}) {{\n    {body}\n}}")
            names.append(name)
        for i in range(rng.choice((1, 1, 1, 2))):
            header = self.params()
            c = rng.choice(("1", "3", "3") + ((self.number(), "in_channels") if self.hostile else ()))
            size = rng.choice(("8", "16", "32", "28") + ((self.number(), "7", "224") if self.hostile else ()))
            shape = rng.choice((f"{c}x{size}x{size}", f"{c} x {size} x {size}") +
                               ((size, f"{c}x{size}") if self.hostile else ()))
            body = "\n    ".join(self.chain(names) for _ in range(rng.randint(1, 4)))
            net = rng.choice(("Net", "N", self.name())) if self.hostile else f"Net{i}"
            items.append(f"network {net}({header}) {{\n    input {shape}\n    {body}\n}}")
        return "\n".join(items) + rng.choice(("\n", "", "\n\n# end\n"))


def _hostile(rng: random.Random) -> ProgramGen:
    gen = ProgramGen(rng)
    gen.hostile = True
    return gen


def _name(rng: random.Random) -> str:
    return _hostile(rng).name()


def _number(rng: random.Random) -> str:
    return _hostile(rng).number()


def grammar_program(rng: random.Random) -> str:
    """A program built from the grammar's productions: usually parses, often checks."""
    return ProgramGen(rng).program()


def settings(rng: random.Random) -> dict:
    """Random `--set` values, as `cnndsl.compile_source(text, **params)` receives them."""
    out = {}
    for _ in range(rng.choice((0, 0, 0, 1, 2))):
        name = rng.choice(("N", "M", "K", "classes", "num_classes", "POOL", "planes", "dropout", "size",
                           "in_channels", "aux_logits", "depth", "width"))
        out[name] = rng.choice((0, 1, 2, 3, -1, 10, 1 << 50, 2.5, float("nan"), float("inf"), True, False,
                                "zeros", 'a"b', "x\ny", "'''", '"""', "\\", "reflect"))
    return out


# -- mutations of the specs --------------------------------------------------------------

TOKEN = re.compile(r"\s+|[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|->|//|\S")
PUNCTUATION = ("(", ")", "[", "]", "{", "}", ",", ":", "=", "*", "?", "->", "-", "+", "/", "//", "%", "\n",
               "#", '"', "\\\n", "x")
ODD_CHARS = ("\x00", "\r", "\r\n", "\t", "\f", "\v", "\\", '"', "'", "\u00a0", "\u2028", "\ufeff", "é", "Ω",
             "\u202e", "\U0001f600", "\x7f", "\x1b[31m", "{", "}", "(", ")", "\n" * 3)
ODD_BYTES = (b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xe2\x80", b"\x80", b"\xef\xbb\xbf", b"\r\n",
             b"\xfe\xff", b"\xc0\xaf")


def mutate_spec(rng: random.Random, text: str) -> str | bytes:
    """One to four mutations of a spec: token, character or byte level."""
    level = rng.choice(("token", "token", "char", "byte"))
    for _ in range(rng.randint(1, 4)):
        if level == "token":
            text = _mutate_tokens(rng, text)
        elif level == "char":
            text = _mutate_chars(rng, text)
    if level == "byte":
        data = text.encode("utf-8")
        for _ in range(rng.randint(1, 4)):
            data = _mutate_bytes(rng, data)
        return data
    return text


def _mutate_tokens(rng: random.Random, text: str) -> str:
    tokens = TOKEN.findall(text)
    if not tokens:
        return text
    i = rng.randrange(len(tokens))
    op = rng.choice(("delete", "duplicate", "swap", "replace", "replace", "insert", "repeat"))
    if op == "delete":
        del tokens[i]
    elif op == "duplicate":
        tokens.insert(i, tokens[i])
    elif op == "swap":
        j = rng.randrange(len(tokens))
        tokens[i], tokens[j] = tokens[j], tokens[i]
    elif op == "repeat":  # a whole line, copied many times
        lines = "".join(tokens).split("\n")
        k = rng.randrange(len(lines))
        lines[k:k + 1] = [lines[k]] * rng.choice((2, 10, 200))
        return "\n".join(lines)
    else:
        new = rng.choice((rng.choice(PUNCTUATION), rng.choice(KEYWORDS), rng.choice(LAYERS), _name(rng),
                          _number(rng), rng.choice(INTERESTING_STRINGS), rng.choice(KWARGS) + "="))
        if op == "replace":
            tokens[i] = new
        else:
            tokens.insert(i, new)
    return "".join(tokens)


def _mutate_chars(rng: random.Random, text: str) -> str:
    if not text:
        return rng.choice(ODD_CHARS)
    i = rng.randrange(len(text))
    op = rng.choice(("insert", "replace", "delete", "crlf", "tabs"))
    if op == "insert":
        return text[:i] + rng.choice(ODD_CHARS) + text[i:]
    if op == "replace":
        return text[:i] + rng.choice(ODD_CHARS) + text[i + 1:]
    if op == "delete":
        j = min(len(text), i + rng.choice((1, 1, 5, 40)))
        return text[:i] + text[j:]
    if op == "crlf":
        return text.replace("\n", "\r\n")
    return re.sub(r"^( {4})+", lambda m: "\t" * (len(m.group(0)) // 4), text, flags=re.M)


def _mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return rng.choice(ODD_BYTES)
    i = rng.randrange(len(data))
    op = rng.choice(("flip", "insert", "delete", "truncate", "splice"))
    if op == "flip":
        return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]
    if op == "insert":
        return data[:i] + rng.choice(ODD_BYTES) + data[i:]
    if op == "delete":
        return data[:i] + data[i + rng.choice((1, 3, 17)):]
    if op == "truncate":
        return data[:i]
    j = rng.randrange(len(data))
    return data[:i] + data[j:j + rng.choice((4, 32, 256))] + data[i:]


# -- hostile inputs ----------------------------------------------------------------------

def _net(body: str, params: str = "", shape: str = "3x16x16") -> str:
    return f"network N({params}) {{\n    input {shape}\n    {body}\n}}\n"


def hostile(rng: random.Random) -> str | bytes:
    """One of the classic hostile inputs, with a random size."""
    kind = rng.choice(HOSTILE_KINDS)
    return HOSTILE[kind](rng)


def _deep(rng: random.Random) -> str:
    n = rng.choice((10, 47, 48, 49, 50, 100, 500, 5000, 50000))
    form = rng.choice(("group", "paren", "residual", "concat", "neg", "body"))
    if form == "group":
        return _net("[" * n + "relu" + "]" * n)
    if form == "paren":
        return _net("conv(" + "(" * n + "4" + ")" * n + ", 3)")
    if form == "residual":
        return _net("residual {\n" * n + "relu\n" + "}\n" * n)
    if form == "concat":
        return _net("concat {\n" * n + "relu\n" + "}\n" * n)
    if form == "neg":
        return _net("conv(" + "-(" * n + "4" + ")" * n + ", 3)")
    return _net("relu" + " -> relu" * n)


def _chained_definitions(rng: random.Random) -> str:
    n = rng.choice((20, 40, 100, 1000))
    doubled = rng.random() < 0.7
    base = rng.choice(("relu", "relu?sw", "relu*0", "INPUT", "conv(4, 3, pad=1)"))
    if rng.random() < 0.5:
        lines = [f"let L0 = {base}"] + [
            f"let L{i} = L{i - 1}" + (f" -> L{i - 1}" if doubled else "") for i in range(1, n)]
    else:
        lines = [f"block L0() {{ {base} }}"] + [
            f"block L{i}() {{ L{i - 1}" + (f" -> L{i - 1}" if doubled else "") + " }" for i in range(1, n)]
    return "\n".join(lines) + "\n" + _net(f"relu -> L{n - 1}", "sw = false")


def _huge_repetition(rng: random.Random) -> str:
    from cnndsl.passes.expand import MAX_LAYERS

    n = rng.choice(("1000000", "99999999999", "1099511627775", "(2*2*2*2*2*2*2*2*2*2*2*2*2*2*2*2*2*2*2*2)",
                    "N", "20001", "20000", "19999", str(MAX_LAYERS + 1), str(MAX_LAYERS), str(MAX_LAYERS - 1)))
    inner = rng.choice(("relu", "[relu -> relu]", "y: [relu?sw]", "[y: [relu?sw]]", "concat { relu?sw }",
                        "residual { relu?sw }", "[relu*1000]", "side relu"))
    nest = rng.choice((1, 1, 2, 4))
    body = inner
    for _ in range(nest):
        body = f"[{body}]*{n}"
    return _net(body, "sw = false, N = 1000000")


def _huge_number(rng: random.Random) -> str:
    number = rng.choice(("9" * rng.choice((18, 19, 40, 5000)), "1e999", "1" + "0" * 400 + ".0",
                         "0." + "0" * 400 + "1", "1e-999", "65537", "16777217", "1099511627776"))
    where = rng.choice((f"conv({number}, 3)", f"conv(4, {number})", f"fc({number})", f"dropout({number})",
                        f"relu*{number}", f"maxpool(2, stride={number})", f"conv(4, 3, pad={number})"))
    shape = rng.choice(("3x16x16", f"3x{number}x{number}", f"{number}", "3x65536x65536", "1x1x1"))
    return _net(where, shape=shape)


def _empty(rng: random.Random) -> str | bytes:
    return rng.choice(("", " ", "\n", "\r\n", "\t", "#", "# only a comment", "\ufeff", b"\xef\xbb\xbf",
                       "\n" * 10000, " " * 100000, "network", "network N", "network N()", "network N() {",
                       "network N() {}", "{}", "}", "->", "input 3x32x32", "let", "let A ="))


def _nul(rng: random.Random) -> str:
    text = rng.choice(list(spec_texts().values()))
    i = rng.randrange(len(text) + 1)
    return text[:i] + "\x00" * rng.choice((1, 2, 100)) + text[i:]


def _invalid_utf8(rng: random.Random) -> bytes:
    data = rng.choice(list(spec_texts().values())).encode("utf-8")
    i = rng.randrange(len(data) + 1)
    return data[:i] + rng.choice(ODD_BYTES[1:]) + data[i:]


def _crlf_tabs(rng: random.Random) -> str:
    text = rng.choice(list(spec_texts().values()))
    if rng.random() < 0.5:
        text = text.replace("\n", rng.choice(("\r\n", "\r", "\n\r")))
    if rng.random() < 0.5:
        text = text.replace("    ", rng.choice(("\t", " \t", "\t\t", "\f")))
    return text


def _unicode_names(rng: random.Random) -> str:
    text = rng.choice(list(spec_texts().values()))
    names = sorted(set(re.findall(r"\b[A-Za-z_][A-Za-z0-9_]*\b", text)))
    target = rng.choice(names)
    return re.sub(rf"\b{re.escape(target)}\b", rng.choice(UNICODE_NAMES), text, count=rng.choice((1, 0)))


def _long_name(rng: random.Random) -> str:
    name = rng.choice(("a", "Conv", "_")) * rng.choice((64, 65, 1000, 100000))
    where = rng.choice((f"{name}: conv(4, 3)", f"conv(4, 3, {name}=1)", f"{name}"))
    return _net(where) if rng.random() < 0.7 else f"block {name}() {{ relu }}\n" + _net(name)


def _big_file(rng: random.Random) -> str:
    line = rng.choice(("relu -> ", "# comment\n", "conv(4, 3, pad=1) -> relu\n    ", "\n"))
    return _net(line * rng.choice((1000, 50000, 200000)) + "relu")


HOSTILE = {
    "deep nesting": _deep, "chained definitions": _chained_definitions, "huge repetition": _huge_repetition,
    "huge number": _huge_number, "empty": _empty, "NUL bytes": _nul, "invalid UTF-8": _invalid_utf8,
    "CRLF and tabs": _crlf_tabs, "unicode names": _unicode_names, "long names": _long_name,
    "big file": _big_file,
}
HOSTILE_KINDS = tuple(HOSTILE)


# -- the oracle ---------------------------------------------------------------------------

class FuzzFailure(AssertionError):
    """An input that did not end in a diagnostic or a valid compile."""


def peak_rss_bytes() -> int:
    """The process's peak resident memory so far (Linux reports KiB). Cheap enough to read
    after every input, unlike tracemalloc, which makes the compiler three times slower."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class Outcome:
    compiled: bool  # True: valid compile; False: a clean CompileError
    seconds: float
    code: str = ""


def compile_input(data: str | bytes, params: dict | None = None, baseline_rss: int | None = None) -> Outcome:
    """Compile one input as `cnndsl compile` would; raise `FuzzFailure` unless it ends well.

    `baseline_rss`: the peak RSS before the campaign; the peak may not grow past it by
    more than PEAK_GROWTH_BYTES (None: skip that check)."""
    from cnndsl import CompileError
    from cnndsl.compiler import compile_network, generate, source_from_text
    from cnndsl.report import render

    start, cpu_start, scheduled_start = time.perf_counter(), time.process_time(), _scheduled_seconds()
    code, source = "", None
    try:
        source = source_from_text(data, "fuzz.cnn")
        code = generate(compile_network(source, params or {}))
        compiled = True
    except CompileError as exc:
        compiled = False
        if not exc.diagnostics:
            raise FuzzFailure("CompileError without a diagnostic") from exc
        # The renderer must cope with every span the compiler produced.
        render(exc.diagnostics, {source.path: source} if source else {})
    except RecursionError as exc:
        raise FuzzFailure(f"RecursionError: {exc}") from exc
    except Exception as exc:  # the point of fuzzing: anything else is a bug
        raise FuzzFailure(f"{type(exc).__name__}: {exc}") from exc
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    scheduled = _scheduled_seconds()
    blocked = seconds - (scheduled - scheduled_start) if scheduled is not None and scheduled_start is not None \
        else seconds
    if cpu >= HANG_SECONDS or blocked >= HANG_WALL_SECONDS:
        raise FuzzFailure(f"compile took {cpu:.2f} s of CPU, {seconds:.2f} s of wall time, {blocked:.2f} s "
                          f"of it blocked (hang guard: {HANG_SECONDS} s of CPU, {HANG_WALL_SECONDS} s blocked)")
    if baseline_rss is not None and peak_rss_bytes() - baseline_rss > PEAK_GROWTH_BYTES:
        raise FuzzFailure(f"peak memory grew by {(peak_rss_bytes() - baseline_rss) >> 20} MiB "
                          f"(limit {PEAK_GROWTH_BYTES >> 20} MiB)")
    if compiled:
        try:
            compile(code, "<generated>", "exec")
        except SyntaxError as exc:
            raise FuzzFailure(f"generated code is not valid Python: {exc}") from exc
    return Outcome(compiled, seconds, code)


# -- the campaign -------------------------------------------------------------------------

def _one_input(rng: random.Random, texts: list[str]) -> tuple[str, str | bytes, dict]:
    family = rng.choice(("grammar", "mutation", "mutation", "hostile"))
    if family == "grammar":
        return family, grammar_program(rng), settings(rng)
    if family == "mutation":
        return family, mutate_spec(rng, rng.choice(texts)), settings(rng) if rng.random() < 0.2 else {}
    return family, hostile(rng), {}


def _save_failure(data: str | bytes, params: dict, message: str, index: int, seed: int | None = None) -> Path:
    out = ROOT / "benchmarks" / "results" / "fuzz_failures"
    out.mkdir(parents=True, exist_ok=True)
    path = out / (f"failure-{index:04d}.cnn" if seed is None else f"failure-seed{seed}-{index:04d}.cnn")
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
    path.with_suffix(".txt").write_text(f"{message}\nparams: {params!r}\n")
    return path


def _built_input(rng: random.Random):
    """One network to build and run (fuzz_build), or one input at another reader's edge:
    what it is, the classes of defect it exercises, and the call that tries it."""
    import fuzz_build

    if rng.random() < 0.85:
        text, classes, params = fuzz_build.built_network(rng)
        return text, classes, lambda: fuzz_build.run_network(text, params)
    kind = rng.choice(sorted(fuzz_build.READERS))
    seed = rng.randrange(1 << 30)
    return f"{kind} (seed {seed})", {kind}, lambda: fuzz_build.READERS[kind](random.Random(seed))


def run_random(minutes: float, seed: int, programs: int = 0, built: int = 0) -> dict:
    """Inputs until `minutes` pass, or (when given) until `programs` were tried and
    `built` networks were built and run with backward, whichever comes last."""
    rng = random.Random(seed)
    texts = list(spec_texts().values())
    deadline = time.monotonic() + minutes * 60
    tried, failed, compiled, ran = 0, 0, 0, 0
    by_family: dict[str, list[int]] = {}
    by_class: dict[str, list[int]] = {}
    failures = []
    if programs and built or not programs:  # torch and a first model, loaded before the baseline is taken:
        import torch

        import fuzz_build  # the memory oracle is for the compiler's growth, not for torch's import

        # One thread: the networks are tiny, and a second thread's spin-waits on a shared,
        # loaded machine made each forward and backward ten times slower.
        torch.set_num_threads(1)

        fuzz_build.run_network("network W() {\n    input 3x8x8\n    conv(4, 3, pad=1) -> relu\n    fc(2)\n}\n")
    baseline = peak_rss_bytes()
    want_built = built / programs if programs else 0.25
    while (time.monotonic() < deadline) if not programs else (tried < programs or ran < built):
        family = "built" if ran < want_built * (tried + 1) else None
        classes: set[str] = set()
        try:
            if family == "built":
                data, params = "", {}
                data, classes, attempt = _built_input(rng)
                outcome = attempt()
                ok = outcome in ("built", "ok")
                ran += outcome == "built"
            else:
                family, data, params = _one_input(rng, texts)
                ok = compile_input(data, params, baseline).compiled
            message = None
        except FuzzFailure as exc:
            ok, message = False, str(exc)
        except Exception as exc:  # the generator or a family's oracle itself: still a failure, still counted
            ok, message = False, f"{type(exc).__name__}: {exc}"
        tried += 1
        if programs and tried % 1000 == 0:  # a long campaign says how far it is
            print(f"  {tried:,} tried, {ran:,} built, {failed} failed", file=sys.stderr, flush=True)
        counts = by_family.setdefault(family, [0, 0, 0])
        counts[0] += 1
        for name in classes or {family}:
            by_class.setdefault(name, [0, 0, 0])[0] += 1
        if message is None:
            compiled += ok
            counts[2] += ok
            for name in classes or {family}:
                by_class[name][2] += ok
            continue
        failed += 1
        counts[1] += 1
        for name in classes or {family}:
            by_class[name][1] += 1
        path = _save_failure(data, params, message, failed, seed if programs else None)
        failures.append(f"{path.relative_to(ROOT)}: {message}")
        print(f"FAIL {path.relative_to(ROOT)}: {message}", file=sys.stderr)
    return {"engine": "random", "seed": seed, "minutes": round(minutes, 2) if not programs else None,
            "tried": tried, "failed": failed, "compiled": compiled, "built": ran,
            "by_family": {k: dict(zip(("tried", "failed", "compiled"), v)) for k, v in by_family.items()},
            "by_class": {k: dict(zip(("tried", "failed", "ok"), v)) for k, v in sorted(by_class.items())},
            "failures": failures}


# -- shards: a long campaign as resumable pieces, each on its own seed ----------------------

SHARDS = ROOT / "benchmarks" / "results" / "fuzz_shards"


def commit() -> str:
    """The commit the campaign runs on, `+dirty` where tracked files differ from it."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short=7", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def shard_seed(seed: int, shard: int) -> int:
    return seed * 1000 + shard


def shard_path(seed: int, shard: int) -> Path:
    return SHARDS / f"seed{seed}-shard{shard:03d}.json"


def run_shard(seed: int, shard: int, programs: int, built: int) -> dict:
    """One shard: `programs` inputs (`built` of them networks built and run with backward) on
    its own seed; its summary written atomically. A shard already done on this commit with
    these counts is read back, not run again: a stopped campaign resumes where it was."""
    from cnndsl.atomic import write_atomic

    path, here = shard_path(seed, shard), commit()
    if path.exists():
        done = json.loads(path.read_text())
        if (done.get("commit"), done.get("programs"), done.get("built_wanted")) == (here, programs, built):
            return done
    wall, cpu, load = time.perf_counter(), time.process_time(), os.getloadavg()[0]
    result = run_random(0, shard_seed(seed, shard), programs, built)
    result.update(commit=here, shard=shard, campaign_seed=seed, programs=programs, built_wanted=built,
                  wall_seconds=round(time.perf_counter() - wall, 1), cpu_seconds=round(time.process_time() - cpu, 1),
                  load_start=round(load, 2), load_end=round(os.getloadavg()[0], 2),
                  finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    SHARDS.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(result, indent=2) + "\n")
    return result


def aggregate(results: list[dict]) -> dict:
    """The shards summed, refusing a sum that would not be one campaign: every shard on the
    same commit (and a clean tree), each on a seed of its own."""
    commits = {r.get("commit") for r in results}
    if len(commits) != 1 or any("dirty" in str(c) for c in commits):
        raise SystemExit(f"the shards are not of one clean commit: {sorted(map(str, commits))}")
    seeds = [r["seed"] for r in results]
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"two shards ran the same seed: {sorted(seeds)}")
    total = {"engine": "random", "seed": sorted({r.get("campaign_seed") for r in results}), "minutes": None,
             "commit": commits.pop(), "shards": len(results), "seeds": sorted(seeds), "by_family": {}, "by_class": {},
             "failures": [f for r in results for f in r["failures"]]}
    for key in ("tried", "failed", "compiled", "built", "wall_seconds", "cpu_seconds"):
        total[key] = round(sum(r[key] for r in results), 1) if "seconds" in key else sum(r[key] for r in results)
    for part in ("by_family", "by_class"):
        for r in results:
            for name, counts in r[part].items():
                into = total[part].setdefault(name, dict.fromkeys(counts, 0))
                for k, v in counts.items():
                    into[k] += v
    total["by_class"] = dict(sorted(total["by_class"].items()))
    total["load"] = [min(r["load_start"] for r in results), max(r["load_end"] for r in results)]
    total["first_finished"], total["last_finished"] = min(r["finished"] for r in results), max(r["finished"] for r in
                                                                                              results)
    return total


def run_shards(seed: int, programs: int, built: int, shards: int, only: int | None) -> dict | None:
    """The campaign as `shards` pieces (or the one piece `only`, for a worker of several);
    once every shard of the seed is done, their sum."""
    per_programs, per_built = -(-programs // shards), -(-built // shards)
    for shard in ([only] if only is not None else range(shards)):
        result = run_shard(seed, shard, per_programs, per_built)
        print(f"  shard {shard}: {result['tried']:,} tried, {result['built']:,} built, {result['failed']} failed "
              f"({result['wall_seconds']} s wall, {result['cpu_seconds']} s CPU)", file=sys.stderr, flush=True)
    paths = [shard_path(seed, k) for k in range(shards)]
    if not all(p.exists() for p in paths):
        return None
    return aggregate([json.loads(p.read_text()) for p in paths])


def run_atheris(minutes: float, seed: int) -> None:
    """Coverage-guided: libFuzzer mutates bytes, seeded with every spec as the corpus."""
    import atheris

    with atheris.instrument_imports():
        import cnndsl  # noqa: F401
        import cnndsl.compiler  # noqa: F401
    corpus = Path("/tmp/cnndsl-atheris-corpus")
    corpus.mkdir(exist_ok=True)
    for path in SPEC_FILES:
        (corpus / path.name).write_bytes(path.read_bytes())
    state = {"tried": 0, "compiled": 0, "start": time.monotonic(), "written": time.monotonic()}

    def test_one_input(data: bytes) -> None:
        state["tried"] += 1
        outcome = compile_input(data)  # a FuzzFailure stops libFuzzer with the input
        state["compiled"] += outcome.compiled
        if time.monotonic() - state["written"] > 2:  # libFuzzer ends with _exit: no atexit
            state["written"] = time.monotonic()
            report()

    def report() -> None:
        result = {"engine": "atheris", "seed": seed, "minutes": round((time.monotonic() - state["start"]) / 60, 2),
                  "tried": state["tried"], "failed": 0, "compiled": state["compiled"]}
        _write_report(result, quiet=True)

    import atexit

    atexit.register(report)
    atheris.Setup([sys.argv[0], f"-max_total_time={int(minutes * 60)}", f"-seed={seed}",
                   "-timeout=5", "-rss_limit_mb=4096", str(corpus)], test_one_input)
    atheris.Fuzz()


def _write_report(result: dict, quiet: bool = False) -> None:
    result["machine"] = f"{platform.node()} {platform.machine()} {platform.processor() or ''}".strip()
    result["python"] = platform.python_version()
    length = f"{result['minutes']} min" if result.get("minutes") is not None else f"{result['tried']:,} inputs"
    lines = [f"fuzz campaign ({result['engine']}, seed {result['seed']}, {length}): "
             f"{result['tried']:,} inputs tried, {result['failed']} failed, {result['compiled']:,} compiled or "
             f"ran cleanly ({result.get('built', 0):,} networks built and run with backward), "
             f"the rest ended in a diagnostic"]
    if result.get("shards"):
        lines.append(f"  commit {result['commit']}, {result['shards']} shards (seeds {result['seeds'][0]} to "
                     f"{result['seeds'][-1]}), {result['wall_seconds']:,} s wall and {result['cpu_seconds']:,} s CPU "
                     f"summed over the shards, load average {result['load'][0]} to {result['load'][1]}, "
                     f"finished {result['first_finished']} to {result['last_finished']}")
    for family, counts in result.get("by_family", {}).items():
        lines.append(f"  {family:<10} {counts['tried']:>8,} tried {counts['failed']:>4} failed "
                     f"{counts['compiled']:>8,} compiled")
    if result.get("by_class"):
        lines.append("  by class (an input may exercise several):")
    for name, counts in result.get("by_class", {}).items():
        lines.append(f"    {name:<44} {counts['tried']:>8,} tried {counts['failed']:>4} failed "
                     f"{counts['ok']:>8,} ran or compiled")
    lines += [f"  {line}" for line in result.get("failures", [])]
    text = "\n".join(lines) + "\n"
    if not quiet:
        print(text, end="")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"fuzz_{result['engine']}.txt").write_text(text)
    (out / f"fuzz_{result['engine']}.json").write_text(json.dumps(result, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fuzz the cnndsl compiler for a while and count the failures.")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engine", choices=("random", "atheris"), default="random")
    parser.add_argument("--programs", type=int, default=0,
                        help="run until this many inputs were tried (instead of --minutes)")
    parser.add_argument("--built", type=int, default=0,
                        help="with --programs: and until this many networks were built and run with backward")
    parser.add_argument("--shards", type=int, default=0,
                        help="with --programs: run as this many resumable shards, each on its own seed, "
                             "summaries in benchmarks/results/fuzz_shards/")
    parser.add_argument("--shard", type=int, default=None, help="with --shards: run only this shard (a worker)")
    parser.add_argument("--aggregate", nargs="+", type=Path, metavar="JSON",
                        help="instead: sum these shard summaries (one commit, distinct seeds) and report")
    parser.add_argument("--lsp", type=int, default=0, metavar="N",
                        help="instead: N hostile JSON-RPC messages to `cnndsl lsp` (benchmarks/fuzz_lsp.py)")
    opts = parser.parse_args(argv)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    if opts.lsp:
        import fuzz_lsp

        lsp_result = fuzz_lsp.campaign(opts.lsp, opts.seed)
        fuzz_lsp.report(lsp_result, opts.seed)
        return 1 if lsp_result["failed_batches"] else 0
    if opts.engine == "atheris":
        run_atheris(opts.minutes, opts.seed)
        return 0
    if opts.aggregate:
        result = aggregate([json.loads(p.read_text()) for p in opts.aggregate])
    elif opts.shards and opts.programs:
        result = run_shards(opts.seed, opts.programs, opts.built, opts.shards, opts.shard)
        if result is None:
            return 0  # a worker's shard is done; the others are not yet
    else:
        result = run_random(opts.minutes, opts.seed, opts.programs, opts.built)
    _write_report(result)
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
