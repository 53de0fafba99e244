"""Frozen record classes for the syntax tree, the IR and the layer table: `@node` reads a
class's annotated fields and defaults as `@dataclass(frozen=True)` does, and gives the same
`__init__`, `__eq__`, `__hash__`, `__repr__` and frozenness, at a fraction of the cost.

Why not `dataclasses`: it compiles six functions from source text for each class, every
time the module is imported. For the ~60 classes of `ast.py`, `ir.py` and `layers.py` that
was 50-60 ms of each `cnndsl` command's start, more than the check of most built-ins.
Here `__eq__`, `__hash__`, `__repr__`, `__setattr__` and `__delattr__` are written once,
below, and come from the bytecode cache; only `__init__`, whose parameters are each class's
own, is compiled, for all the classes declared so far in one go, when the first instance of
any of them is made (a command that builds no tree compiles none).

    @node
    class Num:
        _fields = ()          # the children, for `traverse` (a class attribute, not a field)
        value: int | float
        span: Span
        note: str = ""        # a default; `dataclasses.field(default=...)` or
                              # `field(default_factory=...)` are read too

`field_names(cls)` gives the fields in order (`dataclasses.fields`' names), and
`replace(obj, **changes)` is `dataclasses.replace` for these classes and for dataclasses.
"""

from __future__ import annotations

import dataclasses
from _thread import allocate_lock
from dataclasses import FrozenInstanceError
from operator import attrgetter

_MISSING = object()
_PENDING: list[type] = []  # declared classes whose `__init__` is not compiled yet
_COMPILING = allocate_lock()  # two threads making their first instances compile them once


def node(cls: type) -> type:
    """`cls` as a frozen record of its annotated fields (see the module's docstring)."""
    names = tuple(cls.__dict__.get("__annotations__") or getattr(cls, "__annotations__", {}))
    defaults, factories = {}, {}
    for name in names:
        if name not in cls.__dict__:
            if defaults or factories:
                raise TypeError(f"{cls.__name__}: field {name!r} without a default follows one with a default")
            continue
        value = cls.__dict__[name]
        if isinstance(value, dataclasses.Field):
            if value.default_factory is not dataclasses.MISSING:
                factories[name] = value.default_factory
                delattr(cls, name)
                continue
            value = value.default
            setattr(cls, name, value)
        defaults[name] = value
    if "self" in names or "_state" in names:
        raise TypeError(f"{cls.__name__}: a field may not be named 'self' or '_state'")
    cls.__node_fields__ = names
    cls.__node_defaults__ = defaults
    cls.__node_factories__ = factories
    cls.__node_key__ = attrgetter(*names) if names else staticmethod(_no_fields)
    cls.__match_args__ = names
    for method in (__eq__, __hash__, __repr__, __setattr__, __delattr__):
        setattr(cls, method.__name__, method)
    cls.__init__ = _first_init
    _PENDING.append(cls)
    return cls


def field_names(kind) -> tuple[str, ...]:
    """The fields of a `@node` class (or of an instance), in their declared order."""
    return kind.__node_fields__


def is_node_class(kind: type) -> bool:
    return "__node_fields__" in kind.__dict__


def replace(obj, /, **changes):
    """A copy of `obj` with `changes`: `dataclasses.replace` for a `@node` (made without
    running `__init__`, which sets no more than the fields) or for a dataclass."""
    kind = type(obj)
    names = kind.__dict__.get("__node_fields__")
    if names is None:
        return dataclasses.replace(obj, **changes)
    for name in changes:
        if name not in names:
            raise TypeError(f"{kind.__name__}.__init__() got an unexpected keyword argument {name!r}")
    new = object.__new__(kind)
    state = new.__dict__
    state.update(obj.__dict__)
    state.update(changes)
    return new


def _no_fields(obj) -> tuple:
    return ()


# -- the methods every @node class shares ---------------------------------------------

def __eq__(self, other):
    if other.__class__ is self.__class__:
        key = self.__node_key__
        return key(self) == key(other)
    return NotImplemented


def __hash__(self):
    return hash(self.__node_key__(self))


def __repr__(self):
    inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__node_fields__)
    return f"{self.__class__.__qualname__}({inner})"


def __setattr__(self, name, value):
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def __delattr__(self, name):
    raise FrozenInstanceError(f"cannot delete field {name!r}")


# -- __init__, compiled once for the classes declared so far ----------------------------

def _first_init(self, *args, **kwargs):
    """Every class's `__init__` until the first instance: compiles those of all pending
    classes, then makes the instance with its class's own."""
    with _COMPILING:
        _compile_pending()
    init = type(self).__init__
    if init is _first_init:
        raise TypeError(f"{type(self).__qualname__}.__init__ was not compiled")
    init(self, *args, **kwargs)


def _compile_pending() -> None:
    if not _PENDING:
        return
    pending, _PENDING[:] = list(_PENDING), []
    namespace: dict = {"_MISSING": _MISSING}
    text = []
    for number, cls in enumerate(pending):
        text.append(_init_source(number, cls, namespace))
    exec(compile("\n".join(text), f"<{__name__} __init__>", "exec"), namespace)  # noqa: S102
    for number, cls in enumerate(pending):
        init = namespace[f"_init_{number}"]
        init.__name__, init.__qualname__ = "__init__", f"{cls.__qualname__}.__init__"
        init.__module__ = cls.__module__
        cls.__init__ = init


def _init_source(number: int, cls: type, namespace: dict) -> str:
    """`def _init_N(self, a, b=_d_N_b): ...` for `cls`, its defaults placed in `namespace`."""
    params, body = ["self"], ["    _state = self.__dict__"]
    for name in cls.__node_fields__:
        if name in cls.__node_defaults__:
            namespace[f"_d_{number}_{name}"] = cls.__node_defaults__[name]
            params.append(f"{name}=_d_{number}_{name}")
        elif name in cls.__node_factories__:
            namespace[f"_f_{number}_{name}"] = cls.__node_factories__[name]
            params.append(f"{name}=_MISSING")
            body.append(f"    if {name} is _MISSING:\n        {name} = _f_{number}_{name}()")
        else:
            params.append(name)
        body.append(f"    _state[{name!r}] = {name}")
    return f"def _init_{number}({', '.join(params)}):\n" + "\n".join(body) + "\n"
