"""The view model: what the templates print, computed from the checked IR alone.

A network becomes a class; each block a class whose constructor takes `in_channels`
and the block parameters that its layers use. Uses of a block whose code differs by what
its arguments' conditions keep share the class, which decides from its arguments
(`toggles.py`: an expansion appended where it changes the channels, an activation picked,
the residual's sum under `self.use_res_connect`, ShuffleNetV2's two forwards under
`if self.stride > 1:`); where two uses need code that does not merge (a repetition count
that differs, say), the second gets a class of its own (`Stage2`). Layer constructors
come from `layers.py`; no shape arithmetic here.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass, field
from functools import cached_property

from .. import ir
from ..errors import InternalError
from ..expr import Binary, Const, Expr, Name, Unary, imports
from ..layers import RULES
from ..namespace import HELPERS, MODULE_ATTRIBUTES, MODULE_LEVEL, Namer
from ..node import replace
from ..passes.names import flat_branch
from ..passes.shapes import fmt_shape
from ..text import split_top_level
from ..traverse import Visitor, children, evolve
from .init import init_lines
from .layout import ShapeNotes, block_doc, block_input, flattened, shape_text, staged, wrap_doc
from .loops import LoopModel, loop_model
from . import toggles
from .nodes import by_kind
from .probe import ProbedValues, probed
from .reuse import body_key, layer_key, use_key

WRAP = 92


@dataclass(frozen=True)
class Ctor:
    """A module construction: a call, or an nn.Sequential of children."""

    text: str = ""  # the call, for a leaf
    children: tuple[tuple[str | None, "Ctor", str], ...] = ()  # key (None: numbered), ctor, comment
    sequential: bool = False
    keyed: bool = False  # an OrderedDict Sequential
    listed: bool = False  # an nn.ModuleList (a named concat's branches)
    names: frozenset[str] = frozenset()  # the parameters it reads, children's included
    callee: str = ""  # a call's callee and arguments (keyword or None, value), as codegen/toggles.py merges them
    args: tuple = ()
    condition: Expr | None = None  # a Sequential's child built only where this holds (codegen/toggles.py)
    when: Expr | None = None  # the `?(condition)` that kept the element in this use
    choice: tuple = ()  # (condition, a, b): `a if condition else b`, the text

    @cached_property
    def code(self) -> tuple:
        """What the construction prints but its comments: equal code, equal `code`."""
        return (self.text, tuple((k, c.code) for k, c, _ in self.children), self.sequential, self.keyed, self.listed,
                self.condition.text if self.condition is not None else None)

    def kept(self, when: Expr) -> "Ctor":
        """`replace(self, when=when)` by `traverse.evolve`, without dataclasses.replace's look at
        each field (for every `?(condition)` layer of a block: EfficientNet's expansions); a
        cached `code` comes along, right as `when` is no part of it."""
        return evolve(self, when=when)

    @property
    def appended(self) -> bool:
        """A Sequential with children built only where their condition holds: a list of
        layers, appended to as torchvision's MobileNetV2 builds it, then nn.Sequential(*layers)."""
        return self.sequential and any(c.condition is not None for _, c, _ in self.children)

    @property
    def wrapped_args(self) -> tuple[str, list[str]]:
        """A long call split as callee and one argument a line: the arguments it was written
        from (`_keep_pieces`, held with the text they make), else the text split."""
        made = self.__dict__.get("pieces")
        if made is not None and made[0] is self.text:
            return made[1], made[2]
        callee, _, rest = self.text.partition("(")
        return callee, split_top_level(rest[:-1])


_CTOR_DEFAULTS = {name: Ctor.__dataclass_fields__[name].default for name in Ctor.__dataclass_fields__}


def made_ctor(**fields) -> Ctor:
    """`Ctor(**fields)` without the frozen dataclass's `__init__`, which sets each of its eleven
    fields by `object.__setattr__`: made for each distinct layer, call and Sequential."""
    made = object.__new__(Ctor)
    made.__dict__.update(_CTOR_DEFAULTS, **fields)
    return made


@dataclass(frozen=True)
class Member:
    name: str
    ctor: Ctor
    condition: Expr | None = None  # build only when this holds, else None
    stateless: bool = False  # a layer without parameters or buffers (stochastic depth, an activation)
    layers: str = ""  # the local list its Sequential is built from, where `ctor.appended`
    # Built only where `condition` holds, else an empty nn.Sequential (no keys, called by no
    # statement there): a member of one side of a forked forward (codegen/toggles.py).
    empty: bool = False
    when: Expr | None = None  # the `?(condition)` that kept the concat it was made in, called there alone


@dataclass(frozen=True)
class Stmt:
    kind: str  # call, flatten, cat, save, project, add, mul
    target: str = ""
    comment: str = ""
    parts: tuple[str, ...] = ()
    var: str = "identity"
    conditional: bool = False
    stage: object = None  # the spatial size it gives, where it changes the chain's
    into: str = "x"  # the local a call or a cat assigns (a concat branch's own, `branch5x5`)
    reads: str = "x"  # the local it reads
    blank: bool = False  # a blank line before it: a new stage
    when: Expr | None = None  # the `?(condition)` that kept the element (a concat) it belongs to, in a block
    fork: int = 0  # in a forked forward (codegen/toggles.py): 1 where the class's `fork` holds, 2 where not


@dataclass(frozen=True)
class ClassModel:
    name: str
    doc: tuple[str, ...]
    params: tuple[tuple[str, str, str | None], ...]  # name, annotation, default
    members: tuple[Member, ...]
    forward: tuple[Stmt, ...]
    provenance: str
    sides: tuple[str, ...] = ()  # extra outputs, returned after x while training
    outputs: tuple[tuple[str, str], ...] = ()  # named outputs: (key, local), returned as a dict
    # Parameters that decide the structure (a count, a condition) and that values read too:
    # (name, the compiled value's text); the constructor refuses another value.
    fixed: tuple[tuple[str, str], ...] = ()
    init: tuple[str, ...] = ()  # the weight initialisation ending __init__ (codegen/init.py), a line each
    loop: LoopModel | None = None  # a block whose body is one repetition, as a loop (members empty)
    toggle: Expr | None = None  # the condition of the residual around the whole block, `?(stride == 1)`
    flags: tuple[tuple[str, str], ...] = ()  # attributes set in __init__: use_res_connect = stride == 1
    inputs: tuple[str, ...] = ()  # a block's `reads(low)`: forward's tensors after x
    fork: str = ""  # the condition, on the flags, of a forked forward's `if` (codegen/toggles.py)

    @property
    def base(self) -> str:
        """The class it subclasses: an nn.ModuleDict for a loop, as torchvision's _DenseBlock."""
        return "nn.ModuleDict" if self.loop is not None else "nn.Module"

    @property
    def signature(self) -> list[str]:
        """The constructor's parameters after self, as written in its `def`."""
        return [f"{name}: {annotation}" + (f" = {default}" if default is not None else "")
                for name, annotation, default in self.params]

    def code_only(self) -> tuple:
        """The class but its name and comments, as a tuple built without copying the model:
        what decides whether two uses share a class."""
        return (self.params, tuple((m.name, m.ctor.code, m.condition) for m in self.members),
                tuple((s.kind, s.target, s.parts, s.var, s.conditional, s.stage, s.blank, s.into, s.reads)
                      for s in self.forward),
                self.provenance, self.sides, self.loop.code if self.loop is not None else None, self.flags,
                self.inputs)


@dataclass
class ModuleModel:
    title: str
    doc: tuple[str, ...]
    classes: list[ClassModel]
    helpers: list[str]
    keyed_sequential: bool = False
    exports: list[str] = field(default_factory=list)


def _annotation(value) -> str:
    if isinstance(value, tuple):
        kinds = {_annotation(v) for v in value}
        return f"tuple[{kinds.pop()}, ...]" if len(kinds) == 1 and not isinstance(value[0], tuple) else "tuple"
    return _ANNOTATIONS.get(type(value), "int")


_ANNOTATIONS = {bool: "bool", int: "int", float: "float", str: "str"}  # a parameter's type, as its annotation


def _kinds(envs: list, name: str) -> list[str]:
    """The annotations of a parameter's values at a class's uses (`toggles.use_env`s), each
    once, in the order first met: a value but a tuple is annotated by its type alone, looked
    at once; the values are read as `Env.__getitem__` reads them outside a merge."""
    kinds: list[str] = []
    types: set[type] = set()
    get = dict.__getitem__
    for env in envs:
        value = get(env, name)
        kind = type(value)
        if kind is not tuple:
            if kind in types:
                continue
            types.add(kind)
        for annotation in _annotation(value).split(" | "):
            if annotation not in kinds:
                kinds.append(annotation)
    return kinds


def layer_ctor(layer: ir.Layer, helpers: set[str], previous=None, read_elsewhere: frozenset = frozenset()) -> Ctor:
    inplace = RULES[layer.kind].inplace and _fresh(previous, read_elsewhere)
    ctor, needs = _layer_ctor(layer, inplace)
    helpers.update(needs)
    return ctor


def _layer_ctor(layer: ir.Layer, inplace: bool, in_shape: tuple | None = None,
                values: dict | None = None) -> tuple[Ctor, frozenset[str]]:
    """A layer's construction and the helpers and imports it needs; `in_shape` and `values`
    stand for its input's and its own (`probe.probed`, `probe.ProbedValues`)."""
    rule = RULES[layer.kind]
    exprs = {k: v.expr for k, v in layer.args}
    exprs["in"] = layer.stats.in_channels
    torch = rule.construction(layer.stats.in_shape if in_shape is None else in_shape,
                              layer.values if values is None else values, exprs)
    needs = {torch.helper} if torch.helper else set()
    args = [e.text for e in torch.positional] + [f"{k}={e.text}" for k, e in torch.keywords]
    parts = tuple((None, e) for e in torch.positional) + tuple(torch.keywords)
    if inplace:
        args.append("inplace=True")
        parts += (("inplace", _TRUE),)
    names = frozenset().union(*(e.names for e in torch.positional), *(e.names for _, e in torch.keywords))
    for e in (*torch.positional, *(e for _, e in torch.keywords)):
        needs.update(expr_imports(e))  # `import math` for math.ceil
    ctor = made_ctor(text=f"{torch.callee}({', '.join(args)})", names=names, callee=torch.callee, args=parts)
    _keep_pieces(ctor, torch.callee, args)
    return ctor, frozenset(needs)


def _keep_pieces(call: Ctor, callee: str, args: list[str]) -> None:
    """`call.wrapped_args` kept as the call was written (for the template's long calls), where
    `split_top_level` would give them back: no argument holds a comma or a quote (an
    expression's brackets balance; a string's need not)."""
    text = call.text  # its commas then the separators alone (the callee holds none)
    if text.count(",") == len(args) - 1 and "'" not in text and '"' not in text:
        call.__dict__["pieces"] = (text, callee, args)


_TRUE = Const(True)


def _in_place(ctor: Ctor) -> Ctor:
    """The construction with `inplace=True` after its arguments, as `_layer_ctor` writes it."""
    text = ctor.text  # `nn.ReLU()`: no argument before it
    return replace(ctor, text=text[:-1] + ("" if text.endswith("()") else ", ") + "inplace=True)",
                   args=ctor.args + (("inplace", _TRUE),))


def expr_imports(expr: Expr) -> frozenset[str]:
    """`expr.imports`: the modules a value's source needs; none where it calls no function
    (a call's source, and so every source holding one, has a bracket)."""
    return imports(expr) if "(" in expr.text else frozenset()


_ARITHMETIC = (Const, Name, Unary, Binary)


LONG = 64  # characters: longer arithmetic does not fit a line of the generated code
READABLE = 40  # characters: `cfg[len(cfg) - 1] if big else 4` reads; an inlined _make_divisible does not


def readable(expr: Expr, tables: frozenset = frozenset()) -> bool:
    """Whether a value reads as a hand-written class passes it on: numbers and parameters in
    arithmetic (`planes * 4`, `num_classes`), or a short expression (`cfg[0] * w`). A family's
    rule inlined (`_make_divisible` of a stage table's item) does not: the network's class
    writes the number it gives, as it does for whatever reads one of `tables` (a list
    parameter too long to write as a default: a family's stage table)."""
    if expr.names & tables:
        return False
    if len(expr.text) <= READABLE:
        return True
    if len(expr.text) > LONG:  # DenseNet's channels after three blocks and transitions: the number
        return False
    stack = [expr]
    while stack:
        node = stack.pop()
        if type(node) not in _ARITHMETIC:
            return False
        stack.extend(node.children)
    return True


def written_value(value: ir.Value, tables: frozenset = frozenset()) -> ir.Value:
    """A network-level value as the generated code writes it: as computed where it is
    `readable`, else its number."""
    return value if readable(value.expr, tables) else ir.Value.constant(value.value)


def as_written(node, tables: frozenset = frozenset(), written=None):
    """A network-level layer or block use with each value that is not `readable` as its
    number (the generated class is the variant the rules computed); `written(value)`, where
    given, is `written_value(value, tables)` (`Generator.written`: once per value)."""
    written = written or (lambda value: written_value(value, tables))
    args = tuple((k, written(v)) for k, v in node.args)
    stats = node.stats
    if stats is not None and not readable(stats.in_channels, tables):
        stats = evolve(stats, in_channels=Const(stats.in_shape[0]))
    reads = getattr(node, "read_channels", ())  # a block use's reads(...): their channels, as its in_channels
    read_channels = tuple(map(written, reads))
    if stats is node.stats and all(new is old for (_, new), (_, old) in zip(args, node.args)) and \
            all(new is old for new, old in zip(read_channels, reads)):
        return node  # every value reads as written
    if reads:
        return evolve(node, args=args, stats=stats, read_channels=read_channels)
    return evolve(node, args=args, stats=stats)


def _fresh(previous, read_elsewhere: frozenset) -> bool:
    """Whether the value a layer receives from `previous`, the element just before it in
    the same chain, is a tensor that nothing else reads, so the layer may overwrite it as
    torchvision's ReLU(inplace=True) does: a concat, residual sum or gate product, or the output
    of a layer whose backward does not read its own output and that no side output reads."""
    if isinstance(previous, (ir.Concat, ir.Residual, ir.Gate)):
        return True
    return isinstance(previous, ir.Layer) and RULES[previous.kind].fresh_output and \
        previous.name not in read_elsewhere


class ScopeBuilder(Visitor):
    """Members and forward statements of one class, visiting the IR in order:
    `visit(node, previous)`, where `previous` is the element before it in its chain.
    A block's scope is built once for the uses whose bodies read alike (`reuse.use_key`):
    whatever it reads of a use's IR, reuse.py must key."""

    def __init__(self, generator: "Generator", notes: ShapeNotes, in_block: bool = False):
        self.generator = generator
        self.notes = notes
        self.in_block = in_block
        self.members: list[Member] = []
        self.forward: list[Stmt] = []
        self.sides: list[str] = []
        self.output_elements: frozenset[str] = frozenset()  # the network's named outputs' elements
        self.output_locals: dict[str, str] = {}  # element -> the local holding it at the return
        self.residual_depth = 0
        self.gate_depth = 0
        # forward()'s locals: x, a side output's value, a residual's saved input (identity,
        # identity2 when nested), a gate's (gated), all from one namer, so no local overwrites another.
        self.locals = Namer(reserved={"x", "self", "torch", "nn", "in_channels"} | HELPERS)
        self.identities: list[str] = []
        self.gated: list[str] = []
        self.side_locals: dict[int, str] = {}
        self.into = self.reads = "x"  # what the next call assigns and reads: x, or a concat branch's local
        self.toggles: list[Expr] = []  # the conditions of the block's outermost residuals
        self.tap_targets: dict[str, str] = {}  # a member of an opened group: its path -> its call
        self.inputs: tuple[str, ...] = ()  # a block's reads(...): its forward's other tensors

    def start(self, seq: ir.Seq) -> None:
        """The class's forward locals, named before any statement: every side output's first,
        then the kept outputs of the elements a concat, an upsample or the outputs read by name."""
        sides = self.generator.sides if not self.in_block else []  # side outputs belong to the network
        self.side_locals = {id(node): self.locals.fresh(node.node.name) for node in sides}
        skips, sizes = scope_reads(seq)
        given = {name: self.locals.take(name) for name in self.inputs}  # a block's reads(low): forward's own
        # what a block's reads(low) is given, kept under the block's name for it: `low = x`
        given.update((source, self.locals.fresh(name)) for node in scope_uses(seq)
                     for name, source in node.reads if source not in given)
        self.kept = {name: given.get(name) or self.locals.fresh(_local_base(name))
                     for name in self.outputs_kept(seq, skips, sides)}
        self.output_locals.update({name: self.kept[name] for name in self.output_elements if name in self.kept})
        self.sizes = {name: self.locals.fresh(f"{name}_size") for name in sizes}
        if "input" in self.sizes:
            self.forward.append(Stmt("size", var=self.sizes["input"]))
        for name in self.inputs:
            if name in self.sizes:
                self.forward.append(Stmt("size", var=self.sizes[name], reads=name))
        self.run(seq)

    def outputs_kept(self, seq: ir.Seq, skips: list[str], sides: list) -> list[str]:
        """The members to keep in a local: the skips, and the named outputs that are members
        (not side outputs) other than the one ending the chain, which returns as `x`."""
        side_names = {node.node.name for node in sides}
        chain = [item for item in ir.members(seq) if not isinstance(item, ir.Side)]
        last = getattr(chain[-1], "name", None) if chain else None
        kept = list(skips)
        for name in sorted(self.output_elements - side_names):
            if name == last:
                self.output_locals[name] = "x"
            elif name not in kept:
                kept.append(name)
        return kept

    def identity(self, depth: int, saved: list[str] | None = None, base: str = "identity") -> str:
        """The local that holds the input of the residual (or gate) nested `depth` deep."""
        saved = self.identities if saved is None else saved
        while len(saved) <= depth:
            saved.append(self.locals.fresh(base))
        return saved[depth]

    def run(self, seq: ir.Seq) -> None:
        previous = None
        for item in seq.items:
            self.visit(item, previous)
            previous = item

    def visit_Seq(self, node: ir.Seq, previous=None) -> None:
        if node.name is None:
            self.run(node)
        elif not self.in_block and node.name in self.generator.opened:
            self.members.append(Member(node.name, self.generator.ctor(node, previous, self.notes.fork())))
            self.open_group(node, node.name, node.name)
            self.keep(node.name)
        else:
            self.member_call(node, previous)

    def open_group(self, node: ir.Seq, path: str, call: str) -> None:
        """A named group that a side output reads inside (`side(backbone.layer3)`): still one
        member, an nn.Sequential with its keys, but called member by member, as torchvision's
        IntermediateLayerGetter runs its layers, so that the side reads the one it names."""
        for place, item in enumerate(node.items):
            key = str(item.name)
            target = f"{call}.{key}" if key.isidentifier() and not keyword.iskeyword(key) else f"{call}[{place}]"
            if isinstance(item, ir.Seq) and f"{path}.{key}" in self.generator.opened:
                self.open_group(item, f"{path}.{key}", target)
                continue
            self.forward.append(self.step(stats=item.stats, kind="call", target=target, into=self.into,
                                          reads=self.reads))
            self.reads = self.into
            self.tap_targets[f"{path}.{key}"] = target
            if f"{path}.{key}" in self.kept:  # read later by a block's reads(...) or a from(...)
                self.forward.append(Stmt("keep", var=self.kept[f"{path}.{key}"]))

    def visit_Side(self, node: ir.Side, previous=None) -> None:
        inner, resize = resized(node.node) if isinstance(node.node, ir.Seq) else (node.node, None)
        first = _first_leaf(inner)
        self.members.append(Member(inner.name, self.generator.ctor(inner, notes=ShapeNotes(False))))
        flatten = bool(first is not None and first.stats.flatten_before)
        local = self.side_locals[id(node)]
        output = inner.name in self.output_elements  # a named output: computed in eval mode too
        parts = () if resize is None else \
            (self.sizes[resize.values["like"]], interpolate_options(resize.values), fmt_shape(resize.stats.out_shape))
        called = inner.items[-1].stats if resize is not None else inner.stats  # before the resize
        stmt = Stmt("branch" if output else "side", inner.name, fmt_shape(called.out_shape), var=local,
                    conditional=flatten, parts=parts)
        if node.source is None:
            self.forward.append(stmt)
        else:  # computed right after the member it reads, after any side already there
            target = self.tap_targets.get(node.source, node.source)
            at = next((i for i, s in enumerate(self.forward) if s.kind == "call" and s.target == target), None)
            if at is None:  # passes/emittable.py lets no such side through
                raise InternalError(f"side({node.source}) reads a member the forward does not call")
            while at + 1 < len(self.forward) and self.forward[at + 1].kind in ("side", "branch"):
                at += 1
            self.forward.insert(at + 1, stmt)
        if output:
            self.output_locals[inner.name] = local
        else:
            self.sides.append(local)

    def member_call(self, node, previous=None) -> None:
        """A layer, a block instance or a named group: a member, called in forward."""
        if isinstance(node, ir.Layer) and node.values.get("like") is not None:
            self.interpolate(node)
            return
        first = _first_leaf(node)
        if first is not None and first.stats.flatten_before:
            flat = flattened(first)
            self.forward.append(Stmt("flatten", comment=self.notes.note(flat), stage=self.notes.stage(flat)))
        stateless = isinstance(node, ir.Layer) and node.stats.params == 0 and RULES[node.kind].category != "norm"
        self.members.append(Member(node.name, self.generator.ctor(node, previous, self.notes.fork()),
                                   stateless=stateless))
        parameter = isinstance(node, ir.Layer) and RULES[node.kind].parameter  # x = self.layer_scale * x
        reads = self.reads
        if isinstance(node, ir.BlockInstance) and node.reads:  # x = self.classifier(x, low)
            reads = ", ".join([reads] + [self.kept[source] for _, source in node.reads])
        self.forward.append(self.step(stats=node.stats, kind="scale" if parameter else "call", target=node.name,
                                      into=self.into, reads=reads))
        self.reads = self.into
        self.keep(node.name)

    visit_Layer = visit_BlockInstance = member_call

    def keep(self, name: str) -> None:
        """After the call of a member that a concat or an upsample reads later: its output
        (a skip), or its size (`upsample(like=...)`), in a local of its own."""
        if name in self.kept:
            self.forward.append(Stmt("keep", var=self.kept[name]))
        if name in self.sizes:
            self.forward.append(Stmt("size", var=self.sizes[name]))

    def interpolate(self, layer: ir.Layer) -> None:
        """`upsample(like=enc4)`: no member, a call of nn.functional.interpolate to that size."""
        values = layer.values
        self.forward.append(self.step(stats=layer.stats, kind="interpolate", var=self.sizes[values["like"]],
                                      parts=(interpolate_options(values),)))

    def step(self, stats: ir.Stats, **fields) -> Stmt:
        """A statement with its shape comment, where the shape changes, and its stage."""
        return Stmt(comment=self.notes.note(stats), stage=self.notes.stage(stats), **fields)

    def visit_Concat(self, node: ir.Concat, previous=None) -> None:
        start, made = len(self.forward), len(self.members)
        self.concat(node)
        if self.in_block and node.condition is not None:  # kept by `?(condition)`: codegen/toggles.py
            when = node.condition.expr  # its statements, and its members, which only they call
            self.forward[start:] = [s if s.when is not None else replace(s, when=when) for s in self.forward[start:]]
            self.members[made:] = [m if m.when is not None else replace(m, when=when) for m in self.members[made:]]

    def concat(self, node: ir.Concat) -> None:
        if node.split:
            self.split(node)
            return
        parts = []
        for name, fit in zip(node.skips, node.fits):
            # Cropped even where the sizes agree at the spec's input size: on another input
            # a pooling that floors leaves the skip larger (a padded U-Net on 40x40).
            helper = "center_pad" if fit == "pad" else "center_crop"
            self.generator.helpers.add(helper)
            parts.append(f"{helper}({self.kept[name]}, x)")
        if not node.branches:  # concat(enc4): the skips and the chain's value, on one line
            self.forward.append(self.step(node.stats, kind="join", parts=tuple(parts + ["x"])))
            return
        if node.name is not None:
            self.listed(node, parts)
            return
        reads = self.reads
        for branch, source in zip(node.branches, node.sources or (None,) * len(node.branches)):
            self.reads = reads if source is None else self.kept[source]  # from(low): the branch reads low
            parts.append(self.branch_part(branch))
        self.reads = reads
        kind, sign = ("cat", "") if node.op == "cat" else ("combine", " + " if node.op == "add" else " * ")
        self.forward.append(self.step(node.stats, kind=kind, parts=tuple(parts), into=self.into, var=sign))
        self.reads = self.into

    def branch_part(self, branch: ir.Seq) -> str:
        """What one branch of a concat, add or mul gives, as the cat's (or sum's) list writes it."""
        if branch.name is None and not branch.items:
            return self.reads
        if flat_branch(branch):
            return self.flat_branch(branch)
        branch, resize = resized(branch)
        member = branch if branch.name is not None else _single_leaf(branch)
        if member is None or isinstance(member, (ir.Concat, ir.Residual, ir.Gate)):  # passes/emittable.py
            raise InternalError("a concat branch that is a concat, residual or gate reached the code generator")
        if isinstance(member, ir.Layer) and member.kind == "identity":  # DenseNet's torch.cat([x, ...])
            return "x"
        self.members.append(Member(member.name, self.generator.ctor(member, notes=self.notes.fork())))
        first = _first_leaf(member)
        flat = first is not None and first.stats.flatten_before  # an fc on a volume: flatten first
        call = f"self.{member.name}({f'torch.flatten({self.reads}, 1)' if flat else self.reads})"
        if resize is not None:  # ASPP's pooling branch, back to the size it read
            call = self.resize_call(call, resize)
        return call

    def listed(self, node: ir.Concat, parts: list[str]) -> None:
        """`convs: concat {...}`: the branches in one nn.ModuleList, each called by its place
        in the cat (torchvision's ASPP, `self.convs[4]`, its pooling branch resized)."""
        ctors = []
        for place, branch in enumerate(node.branches):
            branch, resize = resized(branch)
            member = branch if len(branch.items) != 1 else branch.items[0]
            ctors.append((None, self.generator.ctor(member, notes=self.notes.fork()), ""))
            call = f"self.{node.name}[{place}]({self.reads})"
            parts.append(call if resize is None else self.resize_call(call, resize))
        names = frozenset().union(*(ctor.names for _, ctor, _ in ctors))
        self.members.append(Member(node.name, Ctor(children=tuple(ctors), sequential=True, listed=True, names=names)))
        self.forward.append(self.step(node.stats, kind="cat", parts=tuple(parts), into=self.into))
        self.reads = self.into

    def resize_call(self, call: str, resize: ir.Layer) -> str:
        """A branch's call in the cat, resized back to the size it names (ASPP's pooling)."""
        arguments = f"{call}, size={self.sizes[resize.values['like']]}{interpolate_options(resize.values)}"
        call = f"nn.functional.interpolate({arguments})"
        if len(call) + 13 > WRAP:  # in the cat's list, 12 columns in
            call = f"nn.functional.interpolate(\n{' ' * 16}{arguments}\n{' ' * 12})"
        return call

    def flat_branch(self, branch: ir.Seq) -> str:
        """A branch whose members sit in the scope, called in turn on a local of its own, as
        torchvision's Inception3 writes `branch5x5 = self.branch5x5_1(x)`; the local's name."""
        members = ir.members(branch)  # named after its first member with weights (not a pool)
        first = next((m for m in members if m.stats is not None and m.stats.params), members[0])
        local = self.locals.fresh(_branch_local(getattr(first, "name", None) or "branch"))
        saved = self.into, self.reads, self.notes
        self.into, self.notes = local, self.notes.fork()
        self.run(branch)
        self.into, self.reads, self.notes = saved
        return local

    def split(self, node: ir.Concat) -> None:
        """`x1, x2 = x.chunk(2, dim=1)`, then the branches, each on its share, concatenated; a
        branch that is `identity` passes its share on, as ShuffleNetV2 writes `x1`."""
        shares = tuple(self.locals.fresh(f"x{i + 1}", plain=True) for i in range(len(node.branches)))
        self.forward.append(Stmt("chunk", parts=shares))
        parts = []
        for branch, share in zip(node.branches, shares):
            member = branch if branch.name is not None else _single_leaf(branch)
            if member is None or isinstance(member, (ir.Concat, ir.Residual, ir.Gate)):  # passes/emittable.py
                raise InternalError("a split branch that is a concat, residual or gate reached the code generator")
            if isinstance(member, ir.Layer) and member.kind == "identity":
                parts.append(share)
                continue
            self.members.append(Member(member.name, self.generator.ctor(member, notes=self.notes.fork())))
            parts.append(f"self.{member.name}({share})")
        self.forward.append(self.step(node.stats, kind="cat", parts=tuple(parts)))

    def visit_Residual(self, node: ir.Residual, previous=None) -> None:
        if self.in_block and self.residual_depth == 0 and node.condition is not None:
            self.toggles.append(node.condition.expr)
        var = self.identity(self.residual_depth)
        self.residual_depth += 1
        self.forward.append(Stmt("save", var=var))
        start = self.notes.fork()
        members = len(self.members)  # where a shortcut written first goes
        self.run(node.body)
        self.residual_depth -= 1
        shortcut = node.shortcut
        if shortcut.kind == "pad" and (shortcut.applied or self.in_block):
            self.generator.helpers.add("zero_pad_shortcut")
            self.forward.append(Stmt("pad", var=var))
        if shortcut.kind == "projection":
            condition = shortcut.condition.expr
            constant = not condition.names
            applies = shortcut.applied
            if not constant or applies:
                tables = self.generator.tables
                written = (lambda layer: as_written(layer, tables, self.generator.written)) \
                    if self.generator.in_network else (lambda layer: layer)
                layers = tuple((None, layer_ctor(written(layer), self.generator.helpers), start.note(layer.stats))
                               for layer in shortcut.layers)
                member = Member(shortcut.name, Ctor(children=layers, sequential=True),
                                condition=None if constant else condition)
                self.members.insert(members if shortcut.first else len(self.members), member)
                self.forward.append(Stmt("project", shortcut.name, var=var, conditional=not constant))
        self.forward.append(self.step(node.stats, kind="add", var=var))

    def visit_Gate(self, node: ir.Gate, previous=None) -> None:
        """`gated = x`, the body on x (the scale), then `x = gated * x`."""
        var = self.identity(self.gate_depth, self.gated, "gated")
        self.gate_depth += 1
        self.forward.append(Stmt("save", var=var))
        self.run(node.body)
        self.gate_depth -= 1
        self.forward.append(self.step(node.stats, kind="mul", var=var))


def interpolate_options(values: dict) -> str:
    """`upsample(like=...)`'s keywords for nn.functional.interpolate after its size."""
    options = f", mode={values['mode']!r}" if values["mode"] != "nearest" else ""
    if values["mode"] == "bilinear":
        options += f", align_corners={values['align_corners']}"
    return options


def resized(branch: ir.Seq) -> tuple[ir.Seq, ir.Layer | None]:
    """A named concat branch that ends in `upsample(like=...)`: the branch without it, and
    it (called on the branch's output in the cat); else the branch and None."""
    items = branch.items
    last = items[-1] if items else None
    if branch.name is None or len(items) < 2 or not isinstance(last, ir.Layer) or last.values.get("like") is None:
        return branch, None
    return replace(branch, items=items[:-1]), last


def scope_nodes(seq: ir.Seq):
    """The nodes of one class's scope: not those inside the blocks it uses."""
    stack = [seq]
    while stack:
        node = stack.pop()
        yield node
        kind = type(node)
        if kind is ir.Seq:  # its items, every one a node (as codegen/nodes.py reads them)
            stack.extend(node.items[::-1])
        elif kind is not ir.Layer and not isinstance(node, ir.BlockInstance):  # a layer has none
            below = children(node)
            below.reverse()
            stack.extend(below)


def scope_uses(seq: ir.Seq) -> list[ir.BlockInstance]:
    """The block uses among `scope_nodes(seq)`, in their order, in a list made without
    yielding each layer (the plan looks for the uses in the body of every distinct use)."""
    found = []
    stack = [seq]
    pop, push = stack.pop, stack.extend
    while stack:
        node = pop()
        kind = type(node)
        if kind is ir.Layer:
            continue
        if kind is ir.Seq:
            push(node.items[::-1])
        elif isinstance(node, ir.BlockInstance):
            found.append(node)
        else:
            below = children(node)
            below.reverse()
            push(below)
    return found


def scope_reads(seq: ir.Seq) -> tuple[list[str], list[str]]:
    """The elements one class's forward reads by name: concat skips (their outputs) and
    `upsample(like=...)` targets (their sizes), each once, in order."""
    skips: list[str] = []
    sizes: list[str] = []
    for node in scope_nodes(seq):
        if isinstance(node, ir.Concat):
            skips.extend(name for name in node.skips if name not in skips)
            skips.extend(name for name in node.sources if name is not None and name not in skips)
        elif isinstance(node, ir.BlockInstance):
            skips.extend(source for _, source in node.reads if source not in skips)
        elif type(node) is ir.Layer:
            like = next((v.value for k, v in node.args if k == "like"), None)
            if like is not None and like not in sizes:
                sizes.append(like)
    return skips, sizes


def _local_base(name: str) -> str:
    """The local that keeps an element's output: its name, or a path's `backbone_4`."""
    return name if "." not in name else name.replace(".", "_")


def _branch_local(member: str) -> str:
    """The local of a branch named after its first member, less a step number: `branch5x5_1`
    gives `branch5x5`, `branch3x3dbl_1` `branch3x3dbl`."""
    stem, _, step = member.rpartition("_")
    return stem if stem and step[:1].isdigit() else member


def _single_leaf(seq: ir.Seq):
    leaves = ir.members(seq)
    return leaves[0] if len(leaves) == 1 else None


def _first_leaf(node):
    if isinstance(node, ir.Layer):
        return node
    if isinstance(node, ir.Seq):
        leaves = ir.members(node)
        return _first_leaf(leaves[0]) if leaves and isinstance(leaves[0], (ir.Layer, ir.Seq)) else None
    return None


class Generator:
    # Whether a use whose body reads as the last built use's gets that use's members and
    # forward (`block_scope`); off, every use is built (what tests/test_codegen_reuse.py compares).
    reuse_scopes = True

    def __init__(self, network: ir.Network):
        self.network = network
        self.helpers: set[str] = set()
        self.keyed = False
        self.block_classes: dict[str, list[toggles.Shared]] = {}  # block -> its classes
        self.order: list[str] = []
        self.uses: dict[tuple, toggles.Shared] = {}  # a use's key -> its class
        self.finished: dict[int, tuple] = {}  # a shared class -> (its uses, its model then)
        # Blocks whose last norms the init names by their place in the class (m.block[2][1]).
        self.placed_norms = _placed_norms(network)
        self.layer_ctors: dict[tuple, list] = {}  # layer_entry's: key -> [arguments, ctor, helpers, in place, reuse key]
        self.rank_ctors: dict[tuple, list] = {}  # new_layer_entry's: those built without reading the input's sizes
        self.read_ctors: dict[tuple, list] = {}  # read_entry's: (rank, sources) -> [(values read, entry)]
        self.use_keys: dict[int, tuple] = {}  # id(a block use of the network's tree) -> its _use_key, for shared()
        self.bodies: dict[int, tuple] = {}  # id(a use the plan walked) -> its reuse.body_key, for block_scope
        self.stats_parts: dict[tuple, tuple] = {}  # reuse.stats_key's: the ids of stats' channels and dims -> their key
        self.layer_parts: dict[tuple, tuple] = {}  # reuse.layer_part's: a layer's args, stats' parts, input -> its part
        self.calls: dict[int, tuple] = {}  # instance_call's: id(use) -> (use, call)
        self.defaults: dict[str, dict] = {}  # made_call's: block -> its parameters' defaults
        self.written_values: dict[int, tuple] = {}  # written's: id(a value) -> (it, as written)
        self.same_calls: dict[tuple, tuple] = {}  # new_call's: its key -> (what the key's ids name, call, helpers)
        self.scope_models: dict[tuple, ClassModel] = {}  # (id(a block_scope), its parameters) -> the model
        self.scope_codes: dict[int, tuple] = {}  # id(a block_scope, held in self.scopes) -> its classes' code
        self.scopes: dict[str, dict] = {}  # block -> {a built use's reuse.use_key (or a number): its block_scope}
        found = by_kind(network.body)
        self.layers: list[ir.Layer] = found[ir.Layer]  # every layer of the network, in walk order (for init.py)
        # Members whose output a side(name) reads besides the chain (sides live in the network).
        self.sides: list[ir.Side] = found[ir.Side]
        read = set()
        for concat in found[ir.Concat]:
            read.update(concat.skips)
        # The paths read by name elsewhere than the chain: a side's, a branch's from(...), a use's reads(...).
        paths = [side.source for side in self.sides if side.source]
        paths += [source for concat in found[ir.Concat] for source in concat.sources if source]
        paths += [source for use in found[ir.BlockInstance] for _, source in use.reads]
        self.opened: set[str] = set()  # the named groups a side output reads inside: `backbone`
        for path in paths:
            parts = path.split(".")
            read.add(parts[-1])  # what a layer after it may not overwrite in place
            self.opened.update(".".join(parts[:end]) for end in range(1, len(parts)))
        self.side_sources = frozenset(read)
        self.in_network = False  # building the network's class: its family rules become numbers
        self.tables = frozenset(name for name, value in network.params if isinstance(value.value, tuple)
                                and len(ir.Value.constant(value.value).text) > READABLE)
        # Class names: the user's blocks and network keep theirs; a block's second class
        # (S2) is a fresh name, never a block's, a parameter's (an __init__ argument would
        # hide the class) or one the module defines itself.
        params = {name for name, _ in network.params}
        params |= {name for info in network.blocks.values() for name, _ in info.params}
        self.class_names = Namer(taken={network.name, *network.blocks, *params}, reserved=MODULE_LEVEL)

    def ctor(self, node, previous=None, notes: ShapeNotes | None = None) -> Ctor:
        """The construction of a member; `notes` follows the shapes from its input."""
        if isinstance(node, ir.Layer):
            if self.in_network:
                return layer_ctor(as_written(node, self.tables, self.written), self.helpers, previous, self.side_sources)
            return self.block_layer(node, previous)
        if isinstance(node, ir.BlockInstance):
            if not self.in_network:
                return self.instance_call(node)
            if not node.read_channels and id(node) in self.use_keys:  # the plan's use: its class is known
                call, helpers = self.made_call(node, *self.block_class(node), written=True)
                self.helpers.update(helpers)
                return call
            written = as_written(node, self.tables, self.written)
            key = self.use_keys.get(id(node))
            if written is not node and key is not None and not node.read_channels:  # its values and input, written
                self.use_keys[id(written)] = key  # alike: the use's key (instance_call holds the written use)
            return self.instance_call(written)
        assert isinstance(node, ir.Seq)
        children = []
        keyed = any(not str(item.name).isdigit() for item in node.items)
        previous = None  # what enters a Sequential may be read elsewhere (a concat's input, say)
        notes = notes or ShapeNotes(False)
        for item in node.items:
            inner = notes.fork()
            comment = notes.note(item.stats)
            child = self.ctor(item, previous, inner)
            if getattr(item, "condition", None) is not None:  # kept by `?(condition)`: codegen/toggles.py
                child = child.kept(item.condition.expr)
            children.append((item.name if keyed else None, child, comment))
            previous = item
        self.keyed |= keyed
        names = frozenset().union(*(child.names for _, child, _ in children))
        return made_ctor(children=tuple(children), sequential=True, keyed=keyed, names=names)

    def written(self, value: ir.Value) -> ir.Value:
        """`written_value(value, self.tables)`, found once for each value object (the uses of
        a network share many: EfficientNet's stage's channels); the entry holds the value, so
        that its id is not reused while it lives."""
        found = self.written_values.get(id(value))
        if found is None:
            found = self.written_values[id(value)] = (value, written_value(value, self.tables))
        return found[1]

    def block_layer(self, node: ir.Layer, previous=None) -> Ctor:
        """A layer of a block's class, made once for the layers of every use that construct
        alike: those sharing the arguments (the expansion shares them between the uses of a
        block) and the input; then with `inplace=True` where it may work in place."""
        found = self.layer_entry(node)
        if not (RULES[node.kind].inplace and _fresh(previous, self.side_sources)):
            return found[1]
        if found[3] is None:
            found[3] = _in_place(found[1])
        return found[3]

    def layer_key(self, node: ir.Layer) -> tuple:
        """`reuse.layer_key` of a block's layer, made once for the layers that construct alike
        (`block_layer`): it reads nothing else of the layer than they share."""
        found = self.layer_entry(node)
        if found[4] is None:
            found[4] = layer_key(node, found[1])
        return found[4]

    def layer_entry(self, node: ir.Layer) -> list:
        """The entry of `block_layer` and `layer_key`: [arguments, ctor, helpers, ctor in place,
        reuse key], filled as asked; the helpers its construction needs are added."""
        key = _entry_key(node)
        found = self.layer_ctors.get(key)
        if found is None:
            found = self.layer_ctors[key] = self.new_layer_entry(node)
        self.helpers.update(found[2])
        return found

    def new_layer_entry(self, node: ir.Layer) -> list:
        """`layer_entry`'s for a layer's arguments and input, made where no layer of these
        arguments had it: one whose construction did not read its input's sizes (a batch
        norm's: DenseNet's layers each see a width of their own) serves every input of its
        rank (`probe.py`). The entry holds the arguments, so their id is not reused while it lives."""
        stats = node.stats
        channels = stats.in_channels
        key = id(node.args), node.kind, type(stats.in_shape), len(stats.in_shape), type(channels), channels.text
        found = self.rank_ctors.get(key)
        if found is None:
            sources = (key[1:], tuple([(k, type(e := v.expr), e.text) for k, v in node.args]))
            found = self.read_entry(node, sources)
            if found is not None:
                self.rank_ctors[key] = found
            else:
                shape, values = probed(stats.in_shape), ProbedValues(node.values)
                found = [node.args, *_layer_ctor(node, False, shape, values), None, None]
                if not shape.read:
                    self.rank_ctors[key] = found
                    if values.read is not None:
                        self.note_reads(node, sources, values.read, found)
        return found

    def read_entry(self, node: ir.Layer, sources: tuple) -> list | None:
        """A construction made for other arguments of this kind, input rank and channels whose
        sources (kinds and texts, as `Expr.__eq__` compares them) are these, and that read
        only the values that these arguments have too (`probe.ProbedValues`): EfficientNet's
        stochastic depth of each rate, `StochasticDepth(sd_prob, "row")`. Its own entry, as
        the construction in place comes along; so does the layer key, where the forward reads
        none of the arguments (no `like`: `reuse.layer_key` then reads only their names).
        `sources` is (the kind, rank and channels, the sources), `note_reads`' key."""
        made = self.read_ctors.get(sources)
        if made is None:
            return None
        args = dict(node.args)
        for read, found in made:
            if _reads_match(args, read):
                if "like" in args:
                    return [node.args, found[1], found[2], found[3], None]
                if found[4] is None:
                    found[4] = layer_key(node, found[1])
                return [node.args, found[1], found[2], found[3], found[4]]
        return None

    def note_reads(self, node: ir.Layer, sources: tuple, read: set[str], found: list) -> None:
        """`read_entry`'s: the values of `node`'s arguments its construction `found` read, each
        by its type and repr (1 and True differ; so do (1, 1) and (1, True))."""
        values = node.values
        seen = tuple((k, (type(values[k]), repr(values[k]))) for k in sorted(read) if k in values)
        self.read_ctors.setdefault(sources, []).append((seen, found))

    def made_callee(self, node: ir.Layer) -> str | None:
        """The callee of a layer's construction where `layer_entry` has made it (a block's
        layer that a class or a use's key read), else None: for the network's init loops."""
        found = self.layer_ctors.get(_entry_key(node))
        return found[1].callee if found is not None else None

    def instance_call(self, node: ir.BlockInstance) -> Ctor:
        """The call constructing a block use's class: made once a use (reuse.py asks again)."""
        found = self.calls.get(id(node))
        if found is None:  # the entry holds the use, so its id is not reused while it lives
            found = self.calls[id(node)] = (node, self.new_call(node))
        return found[1]

    def new_call(self, node: ir.BlockInstance) -> Ctor:
        """`instance_call`'s, made once for the uses of a class that share their arguments and
        input channels (by identity: the expansion shares them between the bodies of a block,
        as EfficientNet's squeeze-and-excitation); the helpers it needs are added."""
        model, class_name = self.block_class(node)
        reads = node.read_channels
        key = class_name, id(model), id(node.args), id(node.stats.in_channels), tuple(map(id, reads))
        found = self.same_calls.get(key)
        if found is None:  # the entry holds what the key's ids name, so that none is reused while it lives
            found = self.same_calls[key] = (model, node.args, node.stats.in_channels, reads,
                                            *self.made_call(node, model, class_name))
        self.helpers.update(found[5])
        return found[4]

    def made_call(self, node: ir.BlockInstance, model: ClassModel, class_name: str,
                  written: bool = False) -> tuple[Ctor, set[str]]:
        """The call constructing a use's class `model`, and the helpers its values need: the
        leading channels, then `ir.call_args`'s arguments as `ir.format_call` writes them, in
        one walk for the text, the names and the helpers (made once for each use of a network).
        `written`, for a use of the network's class without reads(...): the values as
        `as_written` writes them (`Generator.written`), each read as the call reads it, no use
        rebuilt."""
        helpers: set[str] = set()
        given = dict(node.args)
        defaults = self.defaults.get(node.block)
        if defaults is None:
            defaults = self.defaults[node.block] = dict(self.network.blocks[node.block].params)
        counts = model.loop.counts if model.loop is not None else frozenset()  # a loop's count: its number
        channels = node.stats.in_channels
        if written and not readable(channels, self.tables):
            channels = ir.Value.constant(node.stats.in_shape[0]).expr
        leading = (channels, *(v.expr for v in node.read_channels))  # LRASPPHead(960, 40, ...)
        names: set[str] = set()
        parts = []
        for expr in leading:
            names |= expr.names
            helpers.update(expr_imports(expr))
            parts.append(expr.text)
        known = self.written_values
        for name, _, _ in model.params[1 + len(model.inputs):]:
            value = given[name]
            if written:
                found = known.get(id(value))  # `self.written(value)`, most often found already
                value = found[1] if found is not None else self.written(value)
            if name in counts:
                value = ir.Value.constant(value.value)
            default = defaults.get(name)
            expr = value.expr
            if default is None:
                parts.append(expr.text)
            elif _changed(value, default):
                parts.append(f"{name}={expr.text}")
            else:
                continue
            names |= expr.names
            helpers.update(expr_imports(expr))
        call = made_ctor(text=f"{class_name}({', '.join(parts)})", names=frozenset(names))
        _keep_pieces(call, class_name, parts)
        return call, helpers

    def block_class(self, node: ir.BlockInstance) -> tuple[ClassModel, str]:
        """The class of a block use: the one of an earlier use with the same arguments and
        input shape (the same body), else one built, shared with an earlier use where its code
        is the same or merges (codegen/toggles.py), else a class of its own."""
        shared = self.shared(node)
        return self.final(shared), shared.name

    def shared(self, node: ir.BlockInstance) -> toggles.Shared:
        key = self.use_keys.get(id(node)) or _use_key(node)  # a use of the tree: its key from the plan
        shared = self.uses.get(key)
        if shared is None:
            shared = self.uses[key] = self.new_block_class(node)
        return shared

    def final(self, shared: toggles.Shared) -> ClassModel:
        """The class of every use the shared class has taken so far."""
        made = self.finished.get(id(shared))
        if made is not None and made[0] == len(shared.envs):
            return made[1]
        info = self.network.blocks[shared.first_use.block]
        given = 1 + len(info.reads)  # in_channels, and a reads(...)'s channels: low_channels
        if shared.merged:
            used = toggles.used_names(shared)
            names = [name for name, _ in info.params if name in used]
        else:
            names = [name for name, _, _ in shared.first.params[given:]]
        defaults = dict(info.params)
        params = list(shared.first.params[:given])
        for name in names:
            kinds = _kinds(shared.envs, name)
            default = defaults[name]
            params.append((name, " | ".join(kinds), default.text if default is not None else None))
        taken = Namer(taken={name for name, _, _ in params} | {m.name for m in shared.members},
                      reserved=MODULE_ATTRIBUTES)
        model = toggles.finish(shared, tuple(params), lambda: taken.fresh("layers"))
        if shared.merged:  # no blank line inside a forked forward's `if` or `else` (codegen/toggles.py)
            model = replace(model, forward=tuple(evolve(s, blank=False) if s.fork else s for s in
                                                 staged([evolve(s, blank=False) for s in model.forward])))
        if not shared.doc:  # the uses' outputs differ: the layers their arguments keep decide
            start = block_input(shared.first_use)
            model = replace(model, doc=wrap_doc((f"Block `{shared.first_use.block}`: "
                                                 f"{shape_text(start.channels, start.dims)} to the output of "
                                                 "the layers its arguments keep.",)))
        self.finished[id(shared)] = (len(shared.envs), model)
        return model

    def new_block_class(self, node: ir.BlockInstance) -> toggles.Shared:
        info = self.network.blocks[node.block]
        in_network, self.in_network = self.in_network, False
        loop = loop_model(self, node, {name for name, _ in info.params}) if node.body.loop is not None else None
        scope = self.block_scope(node) if loop is None else ((), (), (), frozenset(), ())
        members, forward, conditions, used, doc = scope  # the doc unwrapped: what toggles.join compares
        self.in_network = in_network
        used = loop.names if loop is not None else used
        params = [("in_channels", "int", None)] + [(f"{name}_channels", "int", None) for name in info.reads]
        values = dict(node.args)
        for name, default in info.params:
            if name in used:
                params.append((name, _annotation(values[name].value), default.text if default is not None else None))
        params = tuple(params)
        model = self.scope_models.get((id(scope), params)) if loop is None else None
        if model is None:  # one model for the uses of a scope whose parameters read alike
            model = ClassModel(node.block, doc, params, members, forward,
                               f"{info.span.file or self.network.source_path}:{info.span.line}", loop=loop,
                               toggle=conditions[0] if len(conditions) == 1 else None, inputs=info.reads)
            if loop is None:
                self.scope_models[id(scope), params] = model
        code = self.class_code(model, scope if loop is None else None)
        variants = self.block_classes.setdefault(node.block, [])
        for shared in variants:
            if toggles.join(shared, model, code, node, node.block in self.placed_norms):
                return shared
        class_name = node.block if not variants else \
            self.class_names.fresh(node.block, start=len(variants) + 1, plain=False)
        # The docstring and stages are in the block's own terms: those of every use of the class.
        if loop is not None and loop.out_channels is not None:  # the doc of every use: the count's name
            node = replace(node, body=replace(node.body, stats=replace(node.body.stats, channels=loop.out_channels)))
        shared = toggles.start(replace(model, name=class_name, doc=wrap_doc(block_doc(node.block, node)),
                                       forward=tuple(staged(list(forward)))), code, node, doc)
        shared.name, shared.first_use = class_name, node
        variants.append(shared)
        self.order.append(class_name)
        return shared

    def class_code(self, model: ClassModel, scope: tuple | None) -> tuple:
        """`_untyped(model.code_only())`, once for the uses of one block scope: they share it
        (it leaves out the annotations, which may differ)."""
        code = self.scope_codes.get(id(scope)) if scope is not None else None
        if code is None:
            code = _untyped(model.code_only())
            if scope is not None:
                self.scope_codes[id(scope)] = code
        return code

    def block_scope(self, node: ir.BlockInstance) -> tuple[tuple, tuple, tuple, set, tuple]:
        """The members, forward statements, residual conditions, read parameters and docstring
        (`layout.block_doc`) of a block use's class: those of an earlier use built where this
        one reads the same (equal `reuse.use_key`s)."""
        built = self.scopes.setdefault(node.block, {})
        key = use_key(self, node, self.bodies.get(id(node))) if self.reuse_scopes else None
        try:
            found = built.get(key)
        except TypeError:  # a field that does not hash: built
            key = found = None
        if found is not None:
            return found
        builder = ScopeBuilder(self, ShapeNotes.block(node), in_block=True)
        builder.inputs = self.network.blocks[node.block].reads
        builder.start(node.body)
        scope = (tuple(builder.members), tuple(builder.forward), tuple(builder.toggles), _used_names(builder.members),
                 block_doc(node.block, node))
        built[key if key is not None else len(built)] = scope  # held: class_code keys by its id
        return scope

    def plan(self, body: ir.Seq) -> None:
        """Every block use's class, the blocks used inside others first: a class takes the
        parameters of all its uses (codegen/toggles.py), so its calls are written after. The
        classes stand in the order of their first uses, each after the blocks it uses."""
        uses: dict[str, dict[tuple, ir.BlockInstance]] = {}
        inside: dict[str, set[str]] = {}
        after: list[tuple] = []  # the uses' keys, each after those inside it

        def collect(found: list[ir.BlockInstance], owner: str | None) -> None:
            for node in found:
                if owner is not None:
                    inside.setdefault(owner, set()).add(node.block)
                key = self.use_keys[id(node)] = _use_key(node)
                if key not in uses.setdefault(node.block, {}):
                    uses[node.block][key] = node
                    collect(self.uses_inside(node), node.block)
                    after.append(key)

        collect(scope_uses(body), None)
        done: set[str] = set()

        def visit(block: str) -> None:
            if block not in done:
                done.add(block)
                for inner in sorted(inside.get(block, ())):
                    visit(inner)
                for key, node in uses[block].items():
                    self.shared(node)

        for block in uses:
            visit(block)
        self.order = list(dict.fromkeys(self.uses[key].name for key in after))
        collect = visit = None  # each refers to itself: without this cycle the generator is freed on return

    def uses_inside(self, node: ir.BlockInstance) -> list[ir.BlockInstance]:
        """`scope_uses(node.body)`: for a body `block_scope` builds (it has no loop), found by
        the walk of its `reuse.body_key`, kept for block_scope's `use_key`."""
        if node.body.loop is not None:
            return scope_uses(node.body)
        body = self.bodies[id(node)] = body_key(self, node)
        return body[1]

    def module(self) -> ModuleModel:
        network = self.network
        builder = ScopeBuilder(self, ShapeNotes.network(network))
        builder.output_elements = frozenset(o.element for o in network.outputs)
        self.plan(network.body)
        self.in_network = True
        builder.start(network.body)
        self.in_network = False
        used = _used_names(builder.members)
        init, init_names, init_math = init_lines(network, lambda instance: self.block_class(instance)[1], self.layers,
                                                 self.made_callee)
        used |= init_names
        if init_math:
            self.helpers.add("math")
        params = tuple((name, _annotation(value.value), ir.Value.constant(value.value).text)
                       for name, value in network.params if name in used)
        stats = network.body.stats
        compiled_with = ", ".join(f"{name}={ir.Value.constant(v.value).text}" for name, v in network.params)
        switches = ", ".join(f"{name}={'on' if on else 'off'}" for name, on in network.switches)
        shown = ", ".join(f"{o.key} {fmt_shape(o.shape)}" for o in network.outputs)
        doc = [*network.doc, f"Input {fmt_shape(network.input)}, "
               + (f"outputs {shown}" if shown else f"output {fmt_shape(stats.out_shape)}")
               + f"; {stats.params:,} parameters, {stats.macs:,} multiply-accumulates."]
        if compiled_with:
            doc.append(f"Compiled with {compiled_with}.")
        if switches:
            doc.append(f"Optional layers: {switches}.")
        if builder.sides:
            doc.append(f"While training, forward returns (x, {', '.join(builder.sides)}); in eval mode, x.")
        if network.outputs:
            doc.append(f"Forward returns a dict of {', '.join(repr(o.key) for o in network.outputs)}.")
        outputs = tuple((o.key, builder.output_locals[o.element]) for o in network.outputs)
        fixed = tuple((name, text) for name, _, text in params if name in network.structural)
        net_class = ClassModel(network.name, wrap_doc(doc), params, tuple(builder.members),
                               tuple(staged(builder.forward)),
                               f"{network.source_path}:{network.span.line}", tuple(builder.sides), outputs,
                               fixed=fixed, init=tuple(init))
        classes = [self.final(shared) for variants in self.block_classes.values() for shared in variants]
        classes.sort(key=lambda m: self.order.index(m.name))
        title = f"{network.name}: generated by cnndsl from {network.source_path}."
        return ModuleModel(title, (), classes + [net_class], sorted(self.helpers), self.keyed,
                           [network.name])


def _placed_norms(network: ir.Network) -> frozenset[str]:
    """The blocks whose last norms the network's init names by their place in the class."""
    return frozenset(owner.block for step in network.init_steps if step.last_norm
                     for owner, _ in step.norms if owner is not None)


def _reads_match(args: dict, read: tuple) -> bool:
    """Whether the arguments `args` (name -> ir.Value) have the values `read` (`note_reads`' record)."""
    for name, seen in read:
        value = args[name].value
        if (type(value), repr(value)) != seen:
            return False
    return True


def _entry_key(node: ir.Layer) -> tuple:
    """`Generator.layer_entry`'s key: the layers sharing their arguments (by identity) and
    input, its channels as their kind and text (`Expr.__eq__`'s, without a call of it)."""
    stats = node.stats
    channels = stats.in_channels
    return id(node.args), node.kind, type(stats.in_shape), stats.in_shape, type(channels), channels.text


def _use_key(node: ir.BlockInstance) -> tuple:
    """What makes two uses of a block the same: its arguments, input shape and reads' channels."""
    return (node.block, node.stats.in_shape, tuple((k, type(v.value), v.value) for k, v in node.args),
            tuple(e.text for e in node.read_channels))


def _untyped(code: tuple) -> tuple:
    """A class's `code_only()` without its parameters' annotations: two uses whose code differs
    only there (`k: int` and `k: tuple[int, ...]`, BasicConv2d's kernel in Inception v3) share it."""
    params, members, forward, *rest = code
    forward = tuple(stmt[:5] + stmt[7:] for stmt in forward)  # less its stages: where the shape comments change
    return (tuple((name, "", default) for name, _, default in params), members, forward, *rest)


def _used_names(members: list[Member]) -> set[str]:
    """The parameters that the members' constructors and conditions read."""
    used: set[str] = set()
    for member in members:
        used |= member.ctor.names
        if member.condition is not None:
            used |= member.condition.names
    return used


def _changed(value: ir.Value, default: ir.Value) -> bool:
    """An argument the generated call must pass: it reads a parameter (its value varies with
    it), or its value, or its type (2.0 for 2), differs from the default."""
    return bool(value.names) or value.value != default.value or type(value.value) is not type(default.value)
