"""Pass 4, names: every module gets the attribute name, or the index, that it will have
in the generated code and so in the `state_dict`.

A network or block is a class scope: a member the user named keeps its name, others
are named after their kind (`conv`, or `conv1`, `conv2` when there are several); a
residual's body and a concat's one-layer branches sit directly in that scope, as in
torchvision's blocks. A named group is an `nn.Sequential`: its members are numbered
as PyTorch numbers them, unnamed groups inside it joining it flat. An fc after a
volume inside a Sequential gets an explicit `nn.Flatten` member there. Two members
with one name in a scope are an error.
"""

from __future__ import annotations

import functools
import keyword
import re
from itertools import repeat
from operator import attrgetter, is_

from .. import ir
from ..diagnostics import Diagnostic
from ..layers import RULES
from ..traverse import Visitor, evolve
from .context import Context, alone, finish
from .resolve import unsafe_name_reason


@functools.lru_cache(maxsize=1024)
def block_attribute(block: str) -> str:
    """`BasicConv` -> `basic_conv`: the attribute of an unnamed block instance."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", block).lower()
    return snake if unsafe_name_reason(snake, "label") is None else f"{snake}_block"


def flat_branch(branch: ir.Seq) -> bool:
    """A concat branch of several members, each named, stateless (a pool) or itself a concat:
    its members sit in the class scope and are called in turn, as torchvision's Inception3 has
    `branch5x5_1` and `branch5x5_2`; an unnamed branch with an unnamed member that holds
    weights is an nn.Sequential instead."""
    members = ir.members(branch)
    return branch.name is None and len(members) > 1 and any(_named(m) for m in members) and all(
        _named(m) or _stateless(m) or (isinstance(m, ir.Concat) and not m.split and not m.skips)
        for m in members)


def _named(member) -> bool:
    return isinstance(member, (ir.Layer, ir.BlockInstance, ir.Seq)) and member.name is not None


def _stateless(member) -> bool:
    if not isinstance(member, ir.Layer) or member.stats is None:
        return False
    rule = RULES[member.kind]
    return member.stats.params == 0 and rule.buffers(member.stats.in_shape, member.values) == 0


class _Namer:
    """Hands out names in one class scope."""

    def __init__(self, owner: str, counts: dict[str, int] | None = None):
        self.owner = owner
        self.counts = counts  # None while counting
        self.seen_bases: dict[str, int] = {}
        self.taken: dict[str, object] = {}
        self.next_index: dict[str, int] = {}
        self.errors: list[Diagnostic] = []
        self.user_names: set[str] = set()

    def user(self, name: str, span) -> str:
        if self.counts is not None and name in self.taken:
            first = self.taken[name]
            self.errors.append(Diagnostic.error(
                span, f"{name!r} names two modules in {self.owner}",
                f"the other is at line {first.line}; inside a repetition, name the repetition "
                f"instead (stage: [...]*2) so that its copies are numbered", "duplicate-name"))
        elif self.counts is not None and (not name.isidentifier() or keyword.iskeyword(name)):
            self.errors.append(Diagnostic.error(
                span, f"{name!r} cannot name a member of {self.owner}: a member is an attribute, and "
                f"{name!r} is not a Python identifier", f'put it in a named group, whose keys can be anything: '
                f'stage: ["{name}": ...]', "label"))
        self.taken.setdefault(name, span)
        self.user_names.add(name)
        return name

    def auto(self, base: str, span) -> str:
        self.seen_bases[base] = self.seen_bases.get(base, 0) + 1
        if self.counts is None:
            return base
        if self.counts.get(base, 0) == 1 and base not in self.taken and base not in self.user_names:
            self.taken[base] = span
            return base
        index = self.next_index.get(base, 1)
        while f"{base}{index}" in self.taken or f"{base}{index}" in self.user_names:
            index += 1
        self.next_index[base] = index + 1
        self.taken[f"{base}{index}"] = span
        return f"{base}{index}"


class Naming(Visitor):
    """`visit(node, namer)` gives the node with its name (and its parts' names) in the
    class scope that `namer` hands out. Each scope is walked twice: once to count the
    automatic names (`namer.counts` None), once to give them."""

    def __init__(self, context: Context) -> None:
        self.context = context
        # id(a block body) -> (the body, its owner, the body named, its `_plan` once a body rebased from
        # it is named), where no error was found
        self.scopes: dict = {}


    def error(self, span, message: str, hint: str | None = None, code: str = "") -> None:
        self.context.error(span, message, hint, code)

    def class_scope(self, seq: ir.Seq, owner: str) -> ir.Seq:
        """A block body (or the network's) with its members named. A body that the shape
        pass gave as an earlier body's tree at another receptive field (`Context.rebased`:
        EfficientNet's MBConvs, ResNet's repeated Bottlenecks) is named as that one was,
        where that one is named without an error: the names read no receptive field, nor a
        leaf value (`_plan`, `_restated`)."""
        moved = self.context.rebased.get(id(seq))
        if moved is not None and moved[0] is seq:
            known = self.scopes.get(id(moved[1]))
            if known is not None and known[0] is moved[1] and known[1] == owner:
                plan = known[3]
                if plan is _UNPLANNED:
                    try:
                        plan = _plan(moved[1], known[2])
                    except _Unlike:
                        plan = _UNLIKE
                    self.scopes[id(moved[1])] = (*known[:3], plan)
                if plan is not _UNLIKE:
                    return _restated(plan, seq)
        if _labelled_layers(seq.items):
            result = seq  # nothing to give, nothing to check (`_Namer.user`): DenseNet's dense layers, the SE blocks
        else:
            reported = len(self.context.diagnostics)
            counter = _Namer(owner)
            self._members(seq, counter)
            namer = _Namer(owner, counter.seen_bases)
            namer.user_names = set(counter.user_names)
            result = self._members(seq, namer)
            self.context.extend(namer.errors)
            if len(self.context.diagnostics) != reported:
                return result
        self.scopes[id(seq)] = (seq, owner, result, _UNPLANNED)  # the body kept: its id stays its own
        return result

    def _members(self, seq: ir.Seq, namer: _Namer) -> ir.Seq:
        """The chain with its members named (the chain itself where none changes; while
        counting, nothing is built)."""
        if namer.counts is None:
            self.count(seq, namer)
            return seq
        items = tuple(map(self.visit, seq.items, repeat(namer)))
        return seq if all(map(is_, items, seq.items)) else evolve(seq, items=items)

    def count(self, seq: ir.Seq, counter: _Namer) -> None:
        """The counting visit of a chain's members; a labelled layer's label noted here, where
        `visit_Layer` would do no more."""
        visit, labels = self.visit, counter.user_names
        for item in seq.items:
            if type(item) is ir.Layer and item.name:
                labels.add(item.name)
            else:
                visit(item, counter)

    def visit_Unknown(self, node: ir.Unknown, namer: _Namer) -> ir.Unknown:
        return node  # an element that failed (its error is reported) has no attribute

    def visit_Layer(self, node: ir.Layer, namer: _Namer) -> ir.Layer:
        name = namer.user(node.name, node.span) if node.name else namer.auto(RULES[node.kind].base_name, node.span)
        return node if name == node.name or namer.counts is None else evolve(node, name=name)

    def visit_BlockInstance(self, node: ir.BlockInstance, namer: _Namer) -> ir.BlockInstance:
        name = namer.user(node.name, node.span) if node.name else namer.auto(block_attribute(node.block), node.span)
        if namer.counts is None:
            return node
        return evolve(node, name=name, body=self.class_scope(node.body, f"block {node.block}"))

    def visit_Seq(self, node: ir.Seq, namer: _Namer) -> ir.Seq:
        if node.name is None:
            return self._members(node, namer)
        name = namer.user(node.name, node.span)
        return self.sequential(node, name, outer=True, owner=namer.owner) if namer.counts is not None else node

    def visit_Side(self, node: ir.Side, namer: _Namer) -> ir.Side:
        if namer.owner.startswith("block"):
            self.error(node.span, "a side output belongs in the network itself",
                       "move it out of the block, to where the block is used")
        inner = node.node
        if isinstance(inner, ir.Seq) and inner.name is None and len(ir.members(inner)) == 1:
            inner = ir.members(inner)[0]  # side [fc(10)] is side fc(10)
        if isinstance(inner, (ir.Concat, ir.Residual, ir.Gate, ir.Side)) or (isinstance(inner, ir.Seq)
                                                                     and inner.name is None):
            if namer.counts is not None:
                self.error(node.span, "a side output is one layer, one block or a named group",
                           "name the group (aux: side [...]); for a concat, residual or gate, make it a block")
            return node
        return evolve(node, node=self.visit(inner, namer))

    def visit_Concat(self, node: ir.Concat, namer: _Namer) -> ir.Concat:
        if node.name is not None:
            name = namer.user(node.name, node.span)
            if namer.counts is None:
                return node
            return evolve(node, name=name, branches=tuple(
                self.listed_branch(branch, str(place), name, namer) for place, branch in enumerate(node.branches)))
        branches = tuple(map(self.branch, node.branches, repeat(namer)))
        return node if namer.counts is None else evolve(node, branches=branches)  # counted: nothing built

    def listed_branch(self, branch: ir.Seq, key: str, owner: str, namer: _Namer) -> ir.Seq:
        """A branch of a named concat: member `key` of its nn.ModuleList, one layer or block, or an
        nn.Sequential of the branch (torchvision's ASPP: `convs.0.0.weight`)."""
        leaves = ir.members(branch)
        bad = next((leaf for leaf in leaves if isinstance(leaf, (ir.Concat, ir.Residual, ir.Gate, ir.Side))
                    or (isinstance(leaf, ir.Layer) and leaf.kind == "identity")), None)
        if branch.name is not None or bad is not None:
            what = f"the label {branch.name!r}" if bad is None else \
                ("identity" if isinstance(bad, ir.Layer) else f"a {type(bad).__name__.lower()}")
            self.error(branch.span, f"a branch of the concat {owner!r} (an nn.ModuleList, numbered) cannot hold {what}",
                       "leave the branch unlabelled; a concat, residual or gate goes into a block", "label")
            return branch
        if len(leaves) == 1 and isinstance(leaves[0], ir.Layer):
            return evolve(branch, items=(evolve(leaves[0], name=key),))
        if len(leaves) == 1 and isinstance(leaves[0], ir.BlockInstance):
            leaf = leaves[0]
            return evolve(branch, items=(evolve(leaf, name=key, body=self.class_scope(leaf.body, f"block {leaf.block}")),))
        return self.sequential(evolve(branch, name=None), key, False, namer.owner)

    def branch(self, branch: ir.Seq, namer: _Namer) -> ir.Seq:
        """A concat branch: a named or a longer one is an nn.Sequential, a one-member
        branch sits in the scope itself."""
        members = _members_of(branch)
        if ir.Side in map(type, members):
            if namer.counts is not None:
                self.error(branch.span, "a concat branch cannot hold a side output",
                           "read the side output before or after the concat")
            return branch
        if branch.name is None and (len(members) == 1 or flat_branch(branch)):
            items = tuple(map(self.visit, members, repeat(namer)))
            return branch if namer.counts is None else evolve(branch, items=items)  # counted: nothing built
        if branch.name is not None:
            name = namer.user(branch.name, branch.span)
        else:
            name = namer.auto("branch", branch.span)
        return self.sequential(branch, name, True, namer.owner) if namer.counts is not None else branch

    def visit_Residual(self, node: ir.Residual, namer: _Namer) -> ir.Residual:
        body = self._members(node.body, namer)
        shortcut = node.shortcut
        if shortcut.kind == "projection":
            name = namer.user(shortcut.name, shortcut.span) if shortcut.name else namer.auto("downsample", shortcut.span)
            if namer.counts is None:
                return node
            layers = tuple(evolve(layer, name=str(i)) for i, layer in enumerate(shortcut.layers))
            shortcut = evolve(shortcut, name=name, layers=layers)
        if body is node.body and shortcut is node.shortcut:
            return node
        return evolve(node, body=body, shortcut=shortcut)

    def visit_Gate(self, node: ir.Gate, namer: _Namer) -> ir.Gate:
        body = self._members(node.body, namer)  # in the enclosing scope, as a residual's
        return node if body is node.body else evolve(node, body=body)

    def sequential(self, seq: ir.Seq, name: str, outer: bool, owner: str) -> ir.Seq:
        """Number the members of an nn.Sequential as PyTorch does."""
        members = _members_of(seq)
        if _numbered_only(members, outer):
            return self.numbered(seq, members, name)
        items = []
        taken: set[str] = set()
        labelled = False  # whether a member has a label of its own
        for leaf in members:
            kind = type(leaf)
            if kind in _NOT_MODULES:
                self.error(leaf.span, f"the group {name!r} is an nn.Sequential and cannot hold a "
                           f"{kind.__name__.lower()}", "move it into a block, and use the block here")
                continue
            stats = leaf.stats
            if stats is not None and stats.flatten_before and (items or not outer):
                items.append(_flatten(stats, str(len(items)), leaf.span))
                leaf = evolve(leaf, stats=evolve(stats, flatten_before=False))
            key = leaf.name
            if key:
                labelled = True
            else:
                key = str(len(items))
            if key in taken:
                self.error(leaf.span, f"{key!r} names two modules in {name!r}", None, "duplicate-name")
            taken.add(key)
            if kind is _LAYER:
                if leaf.name != key:
                    named = _new(kind)  # `evolve(leaf, name=key)`, for the commonest member
                    named.__dict__.update(leaf.__dict__, name=key)
                    leaf = named
            elif kind is _CALL:
                leaf = evolve(leaf, name=key, body=self.class_scope(leaf.body, f"block {leaf.block}"))
            elif kind is _SEQ:  # a named group inside: a nested Sequential
                leaf = self.sequential(leaf, key, False, owner)
            elif leaf.name != key:
                leaf = evolve(leaf, name=key)
            items.append(leaf)
        if labelled:  # members numbered here are each at its place
            self.positions(items, name)
        if seq.name == name and len(items) == len(seq.items) and all(map(is_, items, seq.items)):
            return seq  # every member keeps its label
        return evolve(seq, items=tuple(items), name=name)

    def numbered(self, seq: ir.Seq, members: list, name: str) -> ir.Seq:
        """`sequential` for members that `_numbered_only` passes: each is named its place,
        which no two share, and no flatten goes between them."""
        items = []
        for place, leaf in enumerate(members):
            if type(leaf) is _LAYER:
                named = _new(_LAYER)  # `evolve(leaf, name=key)`
                named.__dict__.update(leaf.__dict__, name=str(place))
                items.append(named)
            else:
                items.append(evolve(leaf, name=str(place), body=self.class_scope(leaf.body, f"block {leaf.block}")))
        return evolve(seq, items=tuple(items), name=name)

    def positions(self, items: list, name: str) -> None:
        """An nn.Sequential whose keys are all numbers numbers its members itself: a quoted
        number label ("0": ...) must be its member's place."""
        keys = list(map(str, map(_NAME, items)))
        if not all(map(str.isdigit, keys)):
            return  # an OrderedDict: every key as written
        if keys == list(map(str, range(len(keys)))):
            return  # each at its place (a Sequential of a block's stages, of a stage's blocks)
        for place, (key, item) in enumerate(zip(keys, items)):
            if key != str(place):
                self.error(item.span, f"{key!r} is member {place} of the group {name!r}, which PyTorch numbers "
                           f"{place}", f'label it "{place}", or leave the label out', "duplicate-name")
                return


_UNPLANNED, _UNLIKE = object(), object()  # a scope's plan not made yet; naming changed more than names
_NOT_MODULES = frozenset({ir.Concat, ir.Residual, ir.Gate, ir.Side})  # what an nn.Sequential cannot hold
_NAME, _STATS, _FLATTEN = attrgetter("name"), attrgetter("stats"), attrgetter("flatten_before")
_PLAIN = frozenset({ir.Layer, ir.BlockInstance})  # the members `Naming.numbered` names
_LAYERS = frozenset({ir.Layer})
_LAYER, _CALL, _SEQ, _new = ir.Layer, ir.BlockInstance, ir.Seq, object.__new__


def _labelled_layers(items: tuple) -> bool:
    """Whether a class scope's members are all layers (in it directly, or through a gate, a
    residual without a projection or an unnamed group, as `Naming` walks them), each labelled
    with a Python identifier that no other has: each keeps its label, and none is an error."""
    names: list = []
    return _layer_labels(items, names) and len(set(names)) == len(names) and \
        all(map(str.isidentifier, names)) and not any(map(keyword.iskeyword, names))


def _layer_labels(items: tuple, names: list) -> bool:
    """`_labelled_layers`' walk: whether every member is a labelled layer, their labels put in `names`."""
    if _LAYERS.issuperset(map(type, items)):  # the commonest: a chain of layers
        names += map(_NAME, items)
        return all(names)
    for item in items:
        kind = type(item)
        if kind is _LAYER and item.name:
            names.append(item.name)
        elif kind is ir.Gate or (kind is ir.Residual and item.shortcut.kind != "projection"):
            if not _layer_labels(item.body.items, names):
                return False
        elif not (kind is _SEQ and item.name is None and _layer_labels(item.items, names)):
            return False
    return True


def _members_of(seq: ir.Seq) -> list:
    """`ir.members(seq)`, without a look at each item where the chain holds no group."""
    return ir.members(seq) if ir.Seq in map(type, seq.items) else list(seq.items)


def _numbered_only(members: list, outer: bool) -> bool:
    """Whether an nn.Sequential's members are all unlabelled layers and block calls, with
    stats and no flatten before one but the first of the network's own (as `sequential`
    puts one in): numbered in order, with nothing to check (`Naming.numbered`)."""
    if not members or not _PLAIN.issuperset(map(type, members)) or any(map(_NAME, members)):
        return False
    stats = list(map(_STATS, members))
    return None not in stats and True not in map(_FLATTEN, stats[1:] if outer else stats)


class _Unlike(Exception):
    """`_plan` met a node that naming changed in more than its name and its children."""


def _plan(before, after):
    """What naming made of `before` (`after`, its tree named), as what to change in a tree of
    the same nodes as `before` but for their stats (another receptive field) and a layer's
    leaf arguments, which naming does not read (`_restated`): None where naming changed
    nothing there, else (the name `after` gives the node, or `_KEEP`, and for each child field
    that changes, its plan: a list of them for a tuple field). `_Unlike` where naming changed
    more (a flatten put in before an fc, its stats changed). Worked out once for an earlier
    body, for all the bodies rebased from it."""
    if after is before:
        return None
    kind = type(before)
    named, old = after.__dict__, before.__dict__
    if type(after) is not kind or named.get("stats") is not old.get("stats"):
        raise _Unlike
    changes = []
    for field in kind._fields:
        was, now = old[field], named[field]
        if type(was) is tuple:
            if type(now) is not tuple or len(now) != len(was):
                raise _Unlike
            plans = list(map(_plan, was, now))
            if plans.count(None) != len(plans):
                changes.append((field, plans))
        elif was is not None:
            plan = _plan(was, now)
            if plan is not None:
                changes.append((field, plan))
    return named.get("name", _KEEP), tuple(changes)


_KEEP = object()  # a plan's name for a node without one


def _restated(plan, copy):
    """`copy`, a tree that the shape pass made of an earlier body at another receptive field
    (`Context.rebased`: of the same nodes, one for one), named as `plan` says naming named
    the earlier one; each node that naming changed nothing under is `copy`'s own."""
    if plan is None:
        return copy
    name, changes = plan
    new = _new(type(copy))
    fields = new.__dict__
    fields.update(copy.__dict__)
    if name is not _KEEP:
        fields["name"] = name
    for field, inner in changes:
        if type(inner) is list:
            fields[field] = tuple(map(_restated, inner, fields[field]))
        else:
            fields[field] = _restated(inner, fields[field])
    return new


def _flatten(stats: ir.Stats, key: str, span) -> ir.Layer:
    """The nn.Flatten that a Sequential holds before a member that flattens its input (`stats`)."""
    flat = ir.Stats(stats.in_shape, RULES["flatten"].shape(stats.in_shape, {})[0], 0, 0, stats.rf, stats.jump,
                    RULES["flatten"].channels(stats.in_shape, stats.in_channels, {}), dims=())
    return ir.Layer("flatten", (), key, span, flat)


def assign_names(network: ir.Network | None, context: Context | None = None) -> ir.Network | None:
    """The network with every module's attribute name or Sequential index."""
    context, own = alone(context)
    if network is None:
        return finish(None, context, own)
    body = Naming(context).class_scope(network.body, f"network {network.name}")
    context.rebased.clear()  # read: the shape pass's trees it holds are free to go, not left to the cycle collector
    return finish(evolve(network, body=body), context, own)
