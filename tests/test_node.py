"""cnndsl.node: the frozen records of the syntax tree, the IR and the layer table behave as
`@dataclass(frozen=True)` classes of the same fields, without compiling six methods a class
at import."""

import copy
import dataclasses
import pickle
import threading

import pytest

from cnndsl import ast, ir, layers
from cnndsl.node import field_names, node, replace


@node
class Point:
    x: int
    y: int = 0
    tags: tuple = dataclasses.field(default=())
    seen: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class PointDC:
    x: int
    y: int = 0
    tags: tuple = ()
    seen: dict = dataclasses.field(default_factory=dict)


@node
class Empty:
    pass


def test_init_takes_positional_keyword_and_default_arguments_as_a_dataclass_does():
    for made, expected in [(Point(1), PointDC(1)), (Point(1, 2), PointDC(1, 2)),
                           (Point(x=3, tags=("a",)), PointDC(x=3, tags=("a",)))]:
        assert [getattr(made, n) for n in field_names(Point)] == \
            [getattr(expected, f.name) for f in dataclasses.fields(PointDC)]
    assert Point(1).seen == {} and Point(1).seen is not Point(1).seen  # a factory, called each time
    with pytest.raises(TypeError):
        Point()
    with pytest.raises(TypeError):
        Point(1, z=2)
    with pytest.raises(TypeError):
        Point(1, 2, (), {}, 5)


def test_equality_hash_and_repr_are_the_dataclass_ones():
    assert Point(1, 2) == Point(1, 2) and Point(1, 2) != Point(2, 1)
    for record in (Point(1, 2), PointDC(1, 2)):  # a dict field: unhashable, as a dataclass is
        with pytest.raises(TypeError, match="unhashable"):
            hash(record)
    assert hash(ast.Num(1, None)) == hash(ast.Num(1, None))
    assert ast.Num(1, None) != ast.Var(1, None)  # another class, the same fields: not equal
    assert Point(1, 2).__eq__(PointDC(1, 2)) is NotImplemented
    assert repr(Point(1, 2)) == repr(PointDC(1, 2)).replace("PointDC", "Point")
    assert Empty() == Empty() and repr(Empty()) == "Empty()" and hash(Empty()) == hash(())
    assert {ast.Num(1, None): "one"}[ast.Num(1, None)] == "one"


def test_instances_are_frozen():
    point = Point(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.x = 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        del point.x
    assert point.x == 1


def test_replace_copies_with_changes_and_refuses_unknown_fields():
    point = Point(1, 2, ("a",))
    moved = replace(point, y=5)
    assert moved == Point(1, 5, ("a",)) and point == Point(1, 2, ("a",))
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        replace(point, z=1)
    assert replace(PointDC(1), y=3) == PointDC(1, 3)  # a dataclass goes to dataclasses.replace


def test_copies_and_pickles_are_equal():
    network = ast.Num(2.5, None)
    for copied in (copy.copy(network), copy.deepcopy(network), pickle.loads(pickle.dumps(network))):
        assert copied == network and type(copied) is ast.Num
    point = Point(1, 2, ("a",), {"k": 1})
    assert pickle.loads(pickle.dumps(point)) == point


def test_fields_are_declared_in_order_and_class_attributes_are_not_fields():
    assert field_names(Point) == ("x", "y", "tags", "seen")
    assert field_names(ir.Layer) == ("kind", "args", "name", "span", "stats", "condition")
    assert "_fields" not in field_names(ast.BinOp) and ast.BinOp._fields == ("left", "right")
    assert Point.__match_args__ == ("x", "y", "tags", "seen")


def test_a_default_before_a_field_without_one_is_refused_as_dataclass_refuses_it():
    with pytest.raises(TypeError, match="without a default"):
        @node
        class Bad:
            a: int = 1
            b: int


def test_no_class_of_the_tree_or_the_layer_table_is_a_dataclass():
    """The point of `@node`: importing these modules compiles no dataclass methods."""
    for module in (ast, ir, layers):
        for value in vars(module).values():
            if isinstance(value, type) and value.__module__ == module.__name__:
                assert not dataclasses.is_dataclass(value), value


def test_first_instances_made_by_many_threads_at_once_are_all_made():
    @node
    class Fresh:
        a: int
        b: str = "b"

    made, barrier = [], threading.Barrier(8)

    def make(i):
        barrier.wait()
        made.append(Fresh(i))

    threads = [threading.Thread(target=make, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(m.a for m in made) == list(range(8)) and {m.b for m in made} == {"b"}
