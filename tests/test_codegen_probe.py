"""A layer's construction is made once for the inputs of a rank where it reads no size of
the input (`codegen/probe.py`): the probe must see every way of reading a shape, and the
output must be the same as making the construction for each input."""

from __future__ import annotations

import math

import pytest

from cnndsl.codegen import generate_module
from cnndsl.codegen import model as codegen_model
from cnndsl.codegen.probe import ProbedValues, probed
from cnndsl.compiler import builtins, compile_network, load
from cnndsl.layers import ChannelsLast, channels_last

READS = {
    "index": lambda s: s[0], "slice": lambda s: s[1:], "list": list, "tuple": tuple, "set": set,
    "unpack": lambda s: [c for c, h, w in [s]], "star": lambda s: max(*s), "splat": lambda s: [*s],
    "equal": lambda s: s == (1, 2, 3), "equal reflected": lambda s: (1, 2, 3) == s, "not equal": lambda s: s != (1,),
    "less": lambda s: s < (9,), "hash": hash, "key": lambda s: {s: 1}, "repr": repr, "str": str,
    "format": lambda s: f"{s}", "percent": lambda s: "%s" % (s,), "add": lambda s: s + (1,),
    "add reflected": lambda s: (1,) + s, "times": lambda s: s * 2, "times reflected": lambda s: 2 * s,
    "in": lambda s: 3 in s, "count": lambda s: s.count(1), "find": lambda s: s.index(1), "max": max,
    "product": math.prod, "reversed": lambda s: list(reversed(s)), "zip": lambda s: list(zip(s, s)),
}


@pytest.mark.parametrize("kind", [tuple, ChannelsLast])
@pytest.mark.parametrize("how", READS)
def test_the_probe_sees_a_read_of_the_sizes(kind, how):
    shape = probed(kind((1, 2, 3)))
    READS[how](shape)
    assert shape.read


@pytest.mark.parametrize("kind", [tuple, ChannelsLast])
def test_the_rank_and_the_layout_are_no_read(kind):
    shape = probed(kind((1, 2, 3)))
    assert len(shape) == 3 and channels_last(shape) == (kind is ChannelsLast) and isinstance(shape, kind)
    assert not shape.read


def _always_read(shape):
    made = probed(shape)
    made.read = True
    return made


def _reading_every_value(values):
    made = ProbedValues(values)
    made.read = None
    return made


@pytest.mark.parametrize("name", builtins())
@pytest.mark.parametrize("unshared", [("probed", _always_read), ("ProbedValues", _reading_every_value)],
                         ids=["each-input-shape", "each-value"])
def test_every_builtin_generates_the_same_code_making_each_construction(name, unshared, monkeypatch):
    """Sharing a construction across input shapes (probed) or values (ProbedValues) it
    did not read changes no built-in's code."""
    network = compile_network(load(name)).network
    shared = generate_module(network)
    monkeypatch.setattr(codegen_model, *unshared)
    assert generate_module(network) == shared


VALUE_READS = {
    "list": list, "iterate": lambda v: [k for k in v], "items": lambda v: list(v.items()),
    "values": lambda v: list(v.values()), "keys": lambda v: list(v.keys()), "copy": dict, "splat": lambda v: {**v},
    "equal": lambda v: v == {}, "repr": repr, "str": str, "format": lambda v: f"{v}", "length": len,
    "copy method": lambda v: v.copy(), "pop": lambda v: v.pop("p"), "setdefault": lambda v: v.setdefault("q", 1),
}


@pytest.mark.parametrize("how", VALUE_READS)
def test_the_values_probe_sees_a_read_of_them_all(how):
    values = ProbedValues({"p": 0.5, "mode": "row"})
    VALUE_READS[how](values)
    assert values.read is None


def test_the_values_probe_notes_the_names_looked_up():
    values = ProbedValues({"p": 0.5, "mode": "row", "k": 3})
    assert values["p"] == 0.5 and values.get("mode") == "row" and values.get("absent") is None and "k" in values
    assert values.read == {"p", "mode", "absent"}

