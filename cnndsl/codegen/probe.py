"""A layer's input shape that notes whether a constructor read its sizes.

A layer's PyTorch construction (`LayerRule.construction`) is given the layer's input shape,
and most rules read only its rank and whether it is channels last (`nn.BatchNorm2d` for a
volume, `nn.BatchNorm1d` for a vector); an fc reads the sizes (`512 * 7 * 7`). DenseNet's
layers each see a width of their own, so a constructor keyed by the whole shape is made
once a layer. Given a `probed` shape, the construction says by running whether it read a
size: where it did not, what it made holds for every shape of that type and rank, and the
code generator makes it once for them (`Generator.layer_entry`). Likewise, given its
values as `ProbedValues`, it says which it read: where its arguments' sources are another
layer's, and the values it read too, that layer's construction is its own.
"""

from __future__ import annotations


def _reading(kind: type, name: str):
    """The method `name` of the shape's class, noting the read on the shape first."""
    method = getattr(kind, name)

    def read(self, *args):
        self.read = True
        return method(self, *args)

    read.__name__ = name
    return read


# Every tuple method that looks at the items (`len` does not: the rank is the key's;
# `reversed` reads by `__getitem__`).
# `other + shape` reaches `__radd__`: a subclass's reflected method comes first.
_READERS = ("__getitem__", "__iter__", "__contains__", "__eq__", "__ne__", "__lt__", "__le__",
            "__gt__", "__ge__", "__hash__", "__repr__", "__add__", "__mul__", "__rmul__", "count", "index",
            "__reduce__", "__reduce_ex__", "__getnewargs__", "__format__")
_PROBES: dict[type, type] = {}  # a shape's class -> its probing subclass


def _radd(self, other):
    self.read = True
    return other + tuple(self)


def probed(shape: tuple) -> tuple:
    """`shape` as an instance of a subclass of its class (a ChannelsLast stays one) whose
    `read` turns true where anything looks at its items."""
    kind = type(shape)
    probe = _PROBES.get(kind)
    if probe is None:
        namespace = {name: _reading(kind, name) for name in _READERS}
        namespace.update(read=False, __radd__=_radd, __doc__=f"A {kind.__name__} that notes a read of its items.")
        probe = _PROBES[kind] = type(f"Probed{kind.__name__.title()}", (kind,), namespace)
    return probe(shape)


class ProbedValues(dict):
    """A layer's values (`ir.Layer.values`) that note which a constructor read: `read`
    holds the names looked up by `[]` or `get`, or turns None where anything else looks at
    the values (their list, their items, a copy). Which arguments there are is no read:
    the caller keys by their names. EfficientNet's stochastic depth writes its rate as the
    block's parameter, read from no value: one construction for the rates of every use."""

    __slots__ = ("read",)

    def __init__(self, values: dict):
        dict.__init__(self, values)
        self.read: set[str] | None = set()

    def __getitem__(self, name):
        if self.read is not None:
            self.read.add(name)
        return dict.__getitem__(self, name)

    def get(self, name, default=None):
        if self.read is not None:
            self.read.add(name)
        return dict.get(self, name, default)


def _reading_all(name: str):
    method = getattr(dict, name)

    def read(self, *args):
        self.read = None
        return method(self, *args)

    read.__name__ = name
    return read


# Every other dict method that looks at the values or the keys (`in` reads only the names).
for _name in ("__iter__", "__len__", "__reversed__", "__eq__", "__ne__", "__repr__", "__or__", "__ror__", "__ior__",
              "keys", "values", "items", "copy", "pop", "popitem", "setdefault", "update", "__setitem__",
              "__delitem__", "__reduce__", "__reduce_ex__", "__format__", "__sizeof__"):
    setattr(ProbedValues, _name, _reading_all(_name))
del _name
