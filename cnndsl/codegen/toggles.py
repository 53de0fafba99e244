"""One class for the uses of a block that differ by conditions on its arguments.

A block's body decides its structure from its arguments: `X?(expanded != inp)` keeps an
expansion or leaves it out, `relu?(act == "RE") -> hardswish?(act == "HS")` picks an
activation, `residual { Body }?(stride == 1 and inp == out)` adds the input back or not.
Each use is expanded with its own arguments, so each gives a class of its own code. As
torchvision writes MobileNetV2's, MobileNetV3's and EfficientNet's blocks, the uses share
one class whose constructor decides from its arguments (`Shared` collects them):

- an element that some uses have and others not is appended where its condition holds:
  `layers: list[nn.Module] = []`, `if expanded != inp: layers.append(...)`, then
  `self.block = nn.Sequential(*layers)`, whose numbering is each use's own;
- two layers that stand at the same place in different uses, each kept by its own
  condition, are one choice: `nn.ReLU(inplace=True) if act == "RE" else nn.Hardswish()`;
- a residual's condition becomes `self.use_res_connect = stride == 1 and inp == out`, and
  forward adds the input (after the parameter-free layers only the residual has, such as
  EfficientNet's stochastic depth, built always as torchvision builds it) where it holds;
- an argument written differently in two uses (`in_channels` where a depthwise convolution
  comes first, `expanded` after an expansion) is written the way that gives every use's
  value;
- two forwards that differ in one run of statements, each made by an element (a concat)
  that its own condition keeps, as ShuffleNetV2's unit concatenates both branches where
  `stride > 1` and splits the channels where `stride == 1`, fork: the condition's
  parameters kept as attributes (`self.stride = stride`), forward's `if self.stride > 1:`
  one run, `else:` the other; a member only one run calls is built where its condition
  holds, else an empty nn.Sequential (no keys, as torchvision's `branch1`), and an argument
  that differs between the two sides is written as a choice on the same condition
  (`in_channels if stride > 1 else in_channels // 2`).

Every merge is checked against each use's arguments: each condition holds exactly where
its element is, each value written is the use's own. What fails to check keeps a class of
its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

from .. import ir
from ..expr import Expr, ExprError, Name, cond
from ..namespace import MODULE_ATTRIBUTES, Namer

_FAILURES = (ExprError, TypeError, ValueError, ZeroDivisionError, IndexError, KeyError, AttributeError)


class Env(dict):
    """A use's arguments by name, and its input channels as the class's `in_channels`; the
    conditions worked out at it so far (a class of 70 uses checks each at every use); while
    `read` is a dict, each value read, by name (what `join` checked at it)."""

    __slots__ = ("known", "read")

    def __getitem__(self, name: str):
        value = dict.__getitem__(self, name)
        if self.read is not None:
            self.read[name] = value
        return value


def use_env(node: ir.BlockInstance) -> Env:
    env = Env({name: value.value for name, value in node.args})  # a comprehension: no generator's frame per argument
    env["in_channels"] = node.stats.in_shape[0]
    env.known = {}
    env.read = None
    return env


def holds(condition: Expr, node) -> bool | None:
    """The condition's value for a use (a BlockInstance, or its `use_env`); None where it reads anything else."""
    env = node if isinstance(node, Env) else use_env(node)
    known = env.known.get(condition, _FAILED)
    if known is not _FAILED:
        return known
    try:
        value = condition.evaluate(env)
    except _FAILURES:
        value = None
    known = env.known[condition] = value if isinstance(value, bool) else None
    return known


def _value(expr: Expr, env: dict):
    try:
        value = expr.evaluate(env)
    except _FAILURES:
        return _FAILED
    return (type(value), value)


_FAILED = object()


def _same(expr: Expr, env: dict, want) -> bool:
    return want is not _FAILED and _value(expr, env) == want


@dataclass
class Shared:
    """A block's class and the uses it serves: the first use's model (its name, doc and
    provenance), the members merged over the uses, and the forward of a use without the
    residual (`plain`) and of one with it (`summed`: save, the body, the residual's own
    layers, the sum)."""

    first: object  # the ClassModel of the first use
    code: tuple  # the first use's code: an equal use shares the class unchanged
    members: tuple
    plain: tuple | None
    summed: tuple | None
    envs: list = field(default_factory=list)  # each use's `use_env`
    residual: list = field(default_factory=list)  # for each use: whether it adds its input back
    toggle: Expr | None = None
    merged: bool = False  # a use of other code joined
    name: str = ""  # the class's name
    first_use: object = None  # the use it was made for
    extras: int = 0  # with uses of both forms: the last members, only the residual's (stochastic depth)
    doc: bool = True  # whether the first use's docstring (its output's shape) holds at every use
    first_doc: tuple = ()  # the first use's, unwrapped
    fork: Expr | None = None  # a forked forward's condition: its statements of `fork` 1 where it holds, 2 where not
    # id(a model) -> (it, the class's state, the names of a use's env and the values read) of a
    # use that joined leaving the class as it was (`_again`).
    repeats: dict = field(default_factory=dict)


def is_summed(model) -> bool:
    """Whether a use's forward is `residual { ... }?(condition)` around the whole block."""
    forward = model.forward
    return model.toggle is not None and len(forward) >= 2 and forward[0].kind == "save" and \
        forward[-1].kind == "add" and not forward[-1].conditional


def start(model, code: tuple, node: ir.BlockInstance, doc: tuple) -> Shared:
    """The class of a first use, whose docstring's paragraphs (unwrapped) are `doc`."""
    summed = is_summed(model)
    return Shared(model, code, model.members, None if summed else model.forward, model.forward if summed else None,
                  [use_env(node)], [summed], model.toggle if summed else None, first_doc=doc)


def _steps(forward) -> list[tuple]:
    return [(s.kind, s.target, s.parts, s.var, s.conditional, s.into, s.reads) for s in forward]


def _extras(plain: tuple, plain_members: tuple, summed: tuple, summed_members: tuple) -> tuple | None:
    """The members only the residual's uses have, called after the body before the sum
    (parameter-free: built always, as torchvision builds its stochastic depth); None where
    the two forwards differ in more."""
    core = summed[1:-1]
    count = len(plain)
    if len(core) < count or _steps(core[:count]) != _steps(plain):
        return None
    names = [m.name for m in summed_members]
    if names[:len(plain_members)] != [m.name for m in plain_members]:
        return None
    extras = summed_members[len(plain_members):]
    tail = core[count:]
    if [s.target for s in tail] != [m.name for m in extras] or any(s.kind != "call" for s in tail) or \
            not all(m.stateless for m in extras):
        return None
    return extras


def join(shared: Shared, model, code: tuple, node: ir.BlockInstance, same_members: bool = False) -> bool:
    """Whether the use joins the class: its code the class's, or merged into it; with
    `same_members`, only where the members stay as they are (a block whose last norms the
    network's init names by their place, which an element kept in some uses would move)."""
    env = use_env(node)
    if not shared.merged and code == shared.code:
        shared.envs.append(env)
        shared.residual.append(shared.residual[0])
        return True
    if model.loop is not None or shared.first.loop is not None:
        return False
    summed = is_summed(model)
    if shared.fork is not None or not summed and shared.summed is None and shared.toggle is None and \
            shared.plain is not None and _steps(shared.plain) != _steps(model.forward):
        return _join_fork(shared, model, env, same_members)
    if _again(shared, model, env):
        shared.envs.append(env)
        shared.residual.append(summed)
        return True
    state, env.read = _state(shared), {}
    joined = _merge(shared, model, summed, env, same_members)
    if joined and _same_state(_state(shared), state):
        shared.repeats[id(model)] = (model, state, tuple(env), {k: _seen(v) for k, v in env.read.items()})
    env.read = None
    return joined


def _state(shared: Shared) -> tuple:
    """What a merging use reads of the class but its uses' arguments: the members and forms
    (a merge that changes one makes it anew: compared by identity), then the flags."""
    return shared.members, shared.plain, shared.summed, shared.toggle, shared.extras, shared.doc, shared.merged


def _same_state(a: tuple, b: tuple) -> bool:
    """Two `_state`s alike: the members and forms the same objects, the flags equal."""
    return a[0] is b[0] and a[1] is b[1] and a[2] is b[2] and a[3] is b[3] and a[4:] == b[4:]


def _seen(value) -> tuple:
    """A value as a key: its type and repr (1, 1.0 and True differ; so do (1, 2) and (1, 2.0))."""
    return type(value), repr(value)


def _again(shared: Shared, model, env: Env) -> bool:
    """Whether a use of `model` joined before leaving the class as it is now, and this use's
    arguments are that use's where the merge read them: the merge, which reads nothing else
    of a use (`Env.read`) and, leaving the class as it was, none of the earlier uses', would
    read and decide the same (EfficientNet's 60 MBConv uses that differ by their rate)."""
    found = shared.repeats.get(id(model))
    if found is None or not _same_state(found[1], _state(shared)) or found[2] != tuple(env):
        return False
    get = dict.__getitem__  # not Env's, which would record the read
    for name, seen in found[3].items():
        if _seen(get(env, name)) != seen:
            return False
    return True


def _merge(shared: Shared, model, summed: bool, env: Env, same_members: bool) -> bool:
    """`join` of a use whose code the class does not have as it is."""
    toggle = _toggle(shared, model, summed, env)
    if toggle is _FAILED:
        return False
    members = _fitting(shared, model, summed, env) if shared.merged else None
    members = members or _members(shared, model, summed, env)
    if members is None or same_members and [m.ctor.code for m in members[0]] != \
            [m.ctor.code for m in shared.members + model.members[len(shared.members):]]:
        return False
    shared.members, shared.extras = members
    _forms(shared, model.forward, summed)
    if shared.first_doc != model.doc:
        shared.doc = False
    shared.toggle = toggle
    shared.envs.append(env)
    shared.residual.append(summed)
    shared.merged = True
    return True


def _forms(shared: Shared, forward: tuple, summed: bool) -> None:
    """The class's forward of each form with the use's, each shape comment kept where every
    use writes it (the body's statements of the two forms compared too)."""
    if summed:
        shared.summed = forward if shared.summed is None else agreed_forward(shared.summed, forward)
        body = forward[1:]
    else:
        shared.plain = forward if shared.plain is None else agreed_forward(shared.plain, forward)
        body = forward
    if shared.plain is not None and shared.summed is not None:
        core = shared.summed[1:]
        plain = agreed_forward(shared.plain, body if summed else core)
        shared.plain = plain
        agreed = agreed_forward(core, plain)
        if agreed is not core:  # the forms unchanged keep their identity (`_state`)
            shared.summed = shared.summed[:1] + agreed


def _toggle(shared: Shared, model, summed: bool, env: dict):
    """The residual's condition of the class with the use (None: no use has the residual),
    where it holds exactly at the uses that add their input back; else _FAILED."""
    toggle = shared.toggle if shared.toggle is not None else (model.toggle if summed else None)
    if toggle is None:
        return None
    if holds(toggle, env) is not summed or shared.toggle is None and \
            any(holds(toggle, e) is not r for e, r in zip(shared.envs, shared.residual)):
        return _FAILED
    return toggle


def _members(shared: Shared, model, summed: bool, env: dict) -> tuple | None:
    """The class's members merged with the use's, and how many of them only the residual's
    uses have (at the end, called before the sum); None where they do not merge."""
    split = _split(shared, model, summed)
    if split is None:
        return None
    mine, theirs, extras = split
    if [m.name for m in mine] != [m.name for m in theirs]:
        return None
    out = []
    for a, b in zip(mine, theirs):
        if a.condition != b.condition or a.stateless != b.stateless:
            return None
        ctor = Unifier(shared.envs, env).member(a.ctor, b.ctor)
        if ctor is None:
            return None
        out.append(replace(a, ctor=ctor))
    return tuple(out) + tuple(extras), len(extras)


def _fitting(shared: Shared, model, summed: bool, env: dict):
    """The class's members unchanged, where the use is what they build at its arguments
    (shape comments and all): most uses of a shared class, checked without merging; else None."""
    if (shared.summed if summed else shared.plain) is None:
        return None
    split = _split(shared, model, summed)
    if split is None:
        return None
    mine, theirs, extras = split
    if len(mine) != len(theirs) or not all(a.name == b.name and a.condition == b.condition and
                                           _fits(a.ctor, b.ctor, env) for a, b in zip(mine, theirs)):
        return None
    return shared.members, len(extras)


def _fits(a, b, env: dict) -> bool:
    """Whether the class's construction `a` builds the use's `b` at the use's arguments."""
    if a.code[:-1] == b.code[:-1]:
        return True
    if a.choice:
        side = holds(a.choice[0], env)
        return side is not None and _fits(a.choice[1] if side else a.choice[2], b, env)
    if a.sequential:
        return b.sequential and a.keyed == b.keyed and a.listed == b.listed and _children_fit(a, b, env)
    if not a.callee or a.callee != b.callee or [k for k, _ in a.args] != [k for k, _ in b.args]:
        return False
    return all(x.text == y.text or _same(x, env, _value(y, env)) for (_, x), (_, y) in zip(a.args, b.args))


def _children_fit(a, b, env: dict) -> bool:
    """Whether the children `a` builds at the use's arguments are `b`'s, comments and all."""
    built = []
    for child in a.children:
        present = True if child[1].condition is None else holds(child[1].condition, env)
        if present is None:
            return False
        if present:
            built.append(child)
    return len(built) == len(b.children) and all(
        x[0] == y[0] and x[2] == y[2] and _fits(x[1], y[1], env) for x, y in zip(built, b.children))


def _split(shared: Shared, model, summed: bool):
    """The class's members and the use's that the body has in both forms, and the members
    only the residual's uses have; None where the forwards differ in more than the residual."""
    mine, theirs = shared.members, model.members
    if summed and shared.summed is None:  # the first use with the residual: its own layers after the body
        extras = _extras(shared.plain, mine, model.forward, theirs)
        return None if extras is None else (mine, theirs[:len(theirs) - len(extras)], extras)
    if not summed and shared.plain is None:  # the first use without it
        extras = _extras(model.forward, theirs, shared.summed, mine)
        return None if extras is None else (mine[:len(mine) - len(extras)], theirs, extras)
    if _steps(shared.summed if summed else shared.plain) != _steps(model.forward):
        return None
    count = shared.extras if shared.plain is not None and shared.summed is not None else 0
    if not count:
        return mine, theirs, ()
    extras = mine[len(mine) - count:]
    if summed:
        if [m.ctor.code for m in theirs[len(theirs) - count:]] != [m.ctor.code for m in extras]:
            return None
        theirs = theirs[:len(theirs) - count]
    return mine[:len(mine) - count], theirs, extras


# The statements a forked forward's side may hold: each prints indented under `if`/`else`.
_ARM_KINDS = frozenset({"call", "cat", "chunk", "combine", "scale", "flatten", "join"})


def _join_fork(shared: Shared, model, env: Env, same_members: bool) -> bool:
    """A use joining a class whose forward is forked, or that forks it: the class's forward
    and the use's differ in one run of statements each, made by an element that its own
    condition keeps, true at the uses on its side, false at the others' (`_arms`). The use
    is the class's forward at its side of the condition, member by member merged; else it
    keeps a class of its own."""
    if is_summed(model) or model.toggle is not None or shared.summed is not None or shared.toggle is not None or \
            same_members:
        return False
    if shared.fork is None:
        arms = _arms(shared.plain, model.forward, shared.envs, env)
        if arms is None:
            return False
        condition, forward = arms
    else:
        condition, forward = shared.fork, shared.plain
    side = holds(condition, env)
    if side is None:
        return False
    arm = 1 if side else 2
    picked = [i for i, s in enumerate(forward) if s.fork in (0, arm)]
    if _steps([forward[i] for i in picked]) != _steps(model.forward):
        return False
    members = _fork_members(shared, model, env, condition, forward)
    if members is None or not _attributes_free(condition, members):
        return False
    forward = list(forward)
    for i, theirs in zip(picked, model.forward):  # each shape comment kept where every use writes it
        if forward[i].comment != theirs.comment:
            forward[i] = replace(forward[i], comment="")
    if shared.first_doc != model.doc:
        shared.doc = False
    shared.members, shared.extras, shared.plain, shared.fork = members, 0, tuple(forward), condition
    shared.envs.append(env)
    shared.residual.append(False)
    shared.merged = True
    return True


def _arms(forward: tuple, theirs: tuple, where: list, env: Env):
    """The class's forward and a use's that differ in one run of statements each, every one of
    a run made by the element its condition kept (`Stmt.when`), the class's run's condition
    true at the class's uses and false at this one's, the use's the other way round: (the
    class's run's condition, the forward with the class's run as side 1 and the use's as side
    2); else None."""
    a, b = _steps(forward), _steps(theirs)
    shorter = min(len(a), len(b))
    head = 0
    while head < shorter and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < shorter - head and a[len(a) - 1 - tail] == b[len(b) - 1 - tail]:
        tail += 1
    mine, yours = forward[head:len(forward) - tail], theirs[head:len(theirs) - tail]
    for run, here, there in ((mine, where, [env]), (yours, [env], where)):
        when = run[0].when if run else None
        if when is None or any(s.when != when or s.kind not in _ARM_KINDS or s.fork for s in run):
            return None
        if any(holds(when, e) is not True for e in here) or any(holds(when, e) is not False for e in there):
            return None
    return mine[0].when, forward[:head] + tuple(replace(s, fork=1) for s in mine) + \
        tuple(replace(s, fork=2) for s in yours) + forward[len(forward) - tail:]


def _fork_members(shared: Shared, model, env: Env, condition: Expr, forward: tuple):
    """The class's members with the use's merged, those of one side only built where its
    condition holds (an empty nn.Sequential where not); None where they do not merge."""
    if shared.fork is None:
        return _forked_members(shared, model, env, condition, forward)
    present = [m for m in shared.members if not m.empty or holds(m.condition, env)]
    if [m.name for m in present] != [m.name for m in model.members]:
        return None
    merged = {}
    for a, b in zip(present, model.members):
        member = _joined_member(shared, a, b, env, condition)
        if member is None:
            return None
        merged[a.name] = member
    return tuple(merged.get(m.name, m) for m in shared.members)


def _joined_member(shared: Shared, a, b, env: Env, condition: Expr):
    """A member of a forked class (`a`) and the use's of that name merged, or None: one of a
    side only stays one that the use's side's element made."""
    if a.empty and (b.condition is not None or b.when != a.condition) or \
            not a.empty and a.condition != b.condition or a.stateless != b.stateless:
        return None
    where = shared.envs if not a.empty else [e for e in shared.envs if holds(a.condition, e)]
    ctor = Unifier(where, env, condition).member(a.ctor, b.ctor)
    if ctor is None or a.empty and ctor.appended:
        return None
    return replace(a, ctor=ctor)


def _forked_members(shared: Shared, model, env: Env, condition: Expr, forward: tuple):
    """Forking: the members of the class's side and of the use's, in the order of both. A
    member of one side only must be one its side's element made (called by that side's
    statements alone, `Member.when`)."""
    merged = _interleaved(shared.members, model.members)
    if merged is None:
        return None
    sides = {1: forward_condition(forward, 1), 2: forward_condition(forward, 2)}
    out = []
    for side, a, b in merged:
        if side:
            if a.when != sides[side] or a.condition is not None or a.empty or a.ctor.appended:
                return None
            out.append(replace(a, condition=sides[side], empty=True))
            continue
        ctor = Unifier(shared.envs, env, condition).member(a.ctor, b.ctor)
        if ctor is None or a.condition != b.condition or a.stateless != b.stateless:
            return None
        out.append(replace(a, ctor=ctor))
    return tuple(out)


def _interleaved(mine: tuple, theirs: tuple) -> list | None:
    """Two member lists in one order: (0, a, b) for a name both have, (1, a, None) for one of
    `mine` alone, (2, b, None) for one of `theirs` alone; None where the names both have
    stand in different orders."""
    names, others = {m.name for m in theirs}, {m.name for m in mine}
    if [m.name for m in mine if m.name in names] != [m.name for m in theirs if m.name in others]:
        return None
    merged, later = [], list(theirs)
    for member in mine:
        if member.name in names:
            while later[0].name != member.name:
                merged.append((2, later.pop(0), None))
            merged.append((0, member, later.pop(0)))
        else:
            merged.append((1, member, None))
    merged.extend((2, member, None) for member in later)
    return merged


def forward_condition(forward: tuple, side: int) -> Expr:
    """The condition that kept the run of statements of one side of a forked forward."""
    return next(s.when for s in forward if s.fork == side)


def _attributes_free(condition: Expr, members: tuple) -> bool:
    """Whether the parameters a forked forward's condition reads may be kept as attributes of
    the class's own names (`self.stride`): none a member's, nor nn.Module's."""
    taken = {m.name for m in members} | MODULE_ATTRIBUTES | {"use_res_connect"}
    return all(name.isidentifier() and name not in taken for name in condition.names)


class Unifier:
    """Two constructions merged: `a`, the class's (right at the uses `where`), and `b`, one
    use's (at `env`), into one right at all of them, or None."""

    def __init__(self, where: list, env: dict, fork: Expr | None = None):
        self.where = where
        self.env = env
        self.fork = fork  # a forked forward's condition: an argument may be chosen by it

    def member(self, a, b):
        if a.code[:-1] == b.code[:-1]:
            return a
        if a.sequential and b.sequential and not a.keyed and not a.listed and a.keyed == b.keyed and \
                a.listed == b.listed:
            children = self.aligned(a.children, b.children, self.where)
            return None if children is None else _sequential(a, children)
        return self.ctor(a, b, self.where)

    def ctor(self, a, b, where: list):
        """`a` and `b` at the same place: one construction for both, or None."""
        if a.code[:-1] == b.code[:-1]:  # the same but where the class builds it
            return a
        if a.choice:
            return self.chosen(a, b, where)
        if a.sequential or b.sequential:
            if not (a.sequential and b.sequential) or a.keyed != b.keyed or a.listed != b.listed or \
                    len(a.children) != len(b.children):
                return None
            if a.keyed and [k for k, _, _ in a.children] != [k for k, _, _ in b.children]:
                return None
            children = []
            for (key, x, comment), (_, y, theirs) in zip(a.children, b.children):
                merged = self.ctor(x, y, where)
                if merged is None:
                    merged = self.choice(x, y, where)
                if merged is None:
                    return None
                children.append((key, merged, _agreed(comment, theirs)))
            return _sequential(a, tuple(children))
        return self.call(a, b, where)

    def call(self, a, b, where: list):
        """Two calls of one constructor whose arguments are written differently: each the way
        that gives both its values."""
        if not a.callee or a.callee != b.callee or [k for k, _ in a.args] != [k for k, _ in b.args]:
            return None
        args = []
        for (key, x), (_, y) in zip(a.args, b.args):
            if x.text == y.text:
                args.append((key, x))
            elif _same(x, self.env, _value(y, self.env)):
                args.append((key, x))
            elif all(_same(y, e, _value(x, e)) for e in where):
                args.append((key, y))
            else:
                side = self.side(where)
                if side is None:
                    return None
                args.append((key, cond(x, self.fork, y) if side else cond(y, self.fork, x)))
        return _call(a, tuple(args))

    def side(self, where: list) -> bool | None:
        """Where the class's uses (`where`) and this use lie on the two sides of the forked
        forward's condition: whether it holds at the class's; else None."""
        if self.fork is None or not where:
            return None
        here = holds(self.fork, self.env)
        if here is None or any(holds(self.fork, e) is here for e in where) or \
                any(holds(self.fork, e) is None for e in where):
            return None
        return not here

    def choice(self, a, b, where: list):
        """Two constructions at one place, each kept by its own condition: `a if c else b`."""
        if a.when is None or b.when is None or a.choice or b.choice or a.sequential or b.sequential:
            return None  # a choice is one line: two calls
        if holds(a.when, self.env) is not False or any(holds(a.when, e) is not True for e in where):
            return None
        return _choice(a.when, a, b)

    def chosen(self, a, b, where: list):
        """A choice `x if c else y` and a use's construction: merged into the side c picks."""
        condition, x, y = a.choice
        side = holds(condition, self.env)
        if side is None:
            return None
        these = [e for e in where if holds(condition, e) is side]
        merged = Unifier(these, self.env).ctor(x if side else y, b, these)
        if merged is None:
            return None
        return _choice(condition, merged, y) if side else _choice(condition, x, merged)

    def aligned(self, mine: tuple, theirs: tuple, where: list):
        """A numbered Sequential's children: the class's and the use's, each pair at one place
        merged, each child only one side has built where its condition holds. The alignment
        that merges the most (a choice counts half); None where none checks."""
        env = self.env

        @lru_cache(maxsize=None)
        def best(i: int, j: int):
            if i == len(mine) and j == len(theirs):
                return 0, ()
            options = []
            if i < len(mine) and j < len(theirs):
                pair = self.pair(mine[i], theirs[j], where)
                if pair is not None:
                    rest = best(i + 1, j + 1)
                    if rest is not None:
                        options.append((rest[0] + pair[0], (pair[1],) + rest[1]))
            if i < len(mine):
                key, child, comment = mine[i]
                condition = self.absent_here(child, where)
                rest = best(i + 1, j) if condition is not None else None
                if rest is not None:
                    options.append((rest[0], ((key, replace(child, condition=condition), comment),) + rest[1]))
            if j < len(theirs):
                key, child, comment = theirs[j]
                rest = best(i, j + 1) if child.when is not None and \
                    all(holds(child.when, e) is False for e in where) and holds(child.when, env) else None
                if rest is not None:
                    options.append((rest[0], ((key, replace(child, condition=child.when), comment),) + rest[1]))
            return max(options, key=lambda option: option[0]) if options else None

        found = best(0, 0)
        best = None  # it refers to itself: without this cycle its table of tuples is freed on return
        return None if found is None else found[1]

    def absent_here(self, child, where: list):
        """The condition under which the class builds `child`, which this use lacks: its own,
        or the one that kept it, false here and true at the class's uses."""
        if child.condition is not None:
            return child.condition if holds(child.condition, self.env) is False else None
        when = child.when
        if when is not None and holds(when, self.env) is False and all(holds(when, e) is True for e in where):
            return when
        return None

    def pair(self, a: tuple, b: tuple, where: list):
        """Children at one place: (2, merged) for one construction, (1, merged) for a choice."""
        key, x, comment = a
        present = where if x.condition is None else [e for e in where if holds(x.condition, e)]
        merged, score = self.ctor(x, b[1], present), 2
        if merged is None:
            merged, score = self.choice(x, b[1], present), 1
        if merged is None:
            return None
        condition, comment = x.condition, _agreed(comment, b[2])
        if condition is not None and not holds(condition, self.env):
            when = b[1].when
            if when is None or not holds(when, self.env) or \
                    any(holds(when, e) is not holds(condition, e) for e in where):
                return None
            condition = when
        return score, (key, replace(merged, condition=condition), comment)


def _agreed(mine: str, theirs: str) -> str:
    """A shape comment that holds at every use: the one both write, else none."""
    return mine if mine == theirs else ""


def agreed_forward(mine: tuple, theirs: tuple) -> tuple:
    """`mine`'s statements with the shape comments that `theirs`, the same statements of
    another use, do not write left out: `mine` itself where they write every one."""
    if all(s.comment == t.comment for s, t in zip(mine, theirs)):
        return mine
    return tuple(s if s.comment == t.comment else replace(s, comment="") for s, t in zip(mine, theirs)) + \
        mine[len(theirs):]


def _sequential(a, children: tuple):
    names = frozenset().union(*(child.names | _condition_names(child) for _, child, _ in children))
    return replace(a, children=children, names=names)


def _condition_names(ctor) -> frozenset:
    names = ctor.condition.names if ctor.condition is not None else frozenset()
    if ctor.choice:
        names = names | ctor.choice[0].names
    return names


def _call(a, args: tuple):
    parts = [e.text if key is None else f"{key}={e.text}" for key, e in args]
    names = frozenset().union(*(e.names for _, e in args))
    return replace(a, text=f"{a.callee}({', '.join(parts)})", args=args, names=names)


def _choice(condition: Expr, a, b):
    text = f"{a.text} if {condition.text} else {b.text}"
    return replace(a, text=text, callee="", args=(), choice=(condition, replace(a, condition=None),
                                                             replace(b, condition=None)),
                   names=a.names | b.names | condition.names, when=None)


def flag_name(model) -> str:
    namer = Namer(taken={m.name for m in model.members} | {name for name, _, _ in model.params},
                  reserved=MODULE_ATTRIBUTES)
    return namer.fresh("use_res_connect")


def finish(shared: Shared, params: tuple, layers_namer) -> object:
    """The class of every use: the first use's model with the merged members, parameters
    (`params`, from the block's own, the class's annotations) and forward; `layers_namer`
    gives the local of each Sequential built from a list."""
    first = shared.first
    if not shared.merged:
        return replace(first, params=params)
    members = tuple(replace(m, layers=layers_namer()) if m.ctor.appended else m for m in shared.members)
    flags = ()
    if shared.fork is not None:  # `self.stride = stride`, forward's `if self.stride > 1:`
        names = sorted(shared.fork.names)
        kept = shared.fork.substitute({name: Name(f"self.{name}") for name in names})
        return replace(first, params=params, members=members, forward=shared.plain,
                       flags=tuple((name, name) for name in names), fork=kept.text)
    if shared.plain is not None and shared.summed is None:
        forward = shared.plain
    elif shared.plain is None:
        forward = shared.summed
    else:
        flag = flag_name(replace(first, members=members, params=params))
        summed, count = shared.summed, shared.extras
        add = summed[-1]
        extras = tuple(s.target for s in summed[len(summed) - 1 - count:-1])
        forward = summed[:len(summed) - 1 - count] + (replace(add, conditional=True, target=flag, parts=extras),)
        flags = ((flag, shared.toggle.text),)
    return replace(first, params=params, members=members, forward=forward, flags=flags, toggle=shared.toggle)


def used_names(shared: Shared) -> frozenset:
    """The parameters the merged class reads: its members' and conditions', the residual's
    condition where it is a flag."""
    names = set()
    for member in shared.members:
        names |= member.ctor.names
        if member.condition is not None:
            names |= member.condition.names
    if shared.merged and shared.plain is not None and shared.summed is not None:
        names |= shared.toggle.names
    if shared.fork is not None:
        names |= shared.fork.names
    return frozenset(names)
