"""A layer's input shape that notes whether a constructor read its sizes.

A layer's PyTorch construction (`LayerRule.construction`) is given the layer's input shape,
and most rules read only its rank and whether it is channels last (`nn.BatchNorm2d` for a
volume, `nn.BatchNorm1d` for a vector); an fc reads the sizes (`512 * 7 * 7`). DenseNet's
layers each see a width of their own, so a constructor keyed by the whole shape is made
once a layer. Given a `probed` shape, the construction says by running whether it read a
size: where it did not, what it made holds for every shape of that type and rank, and the
code generator makes it once for them (`Generator.layer_entry`).
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
