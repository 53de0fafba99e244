"""cnndsl.traverse: one walk of the syntax tree and the IR, from the node classes' `_fields`."""

from cnndsl import ast, ir, traverse
from cnndsl.compiler import compile_network, load, source_from_text
from cnndsl.node import field_names
from cnndsl.parse import parse

SPEC = """
let POOL = maxpool(2)
block Res(planes) {
  residual { conv(planes, 3, pad=1) -> relu } shortcut projection
}
network Net(classes = 10) {
  input 3x32x32
  stem: [conv(16, 3, pad=1) -> relu]
  Res(16) * 2 -> POOL?
  concat {
    conv(8, 1)
    conv(8, 3, pad=1)
  }
  side fc(classes)
  fc(classes)
}
"""


def _program():
    return parse(source_from_text(SPEC))


def test_every_node_class_declares_its_children_among_its_fields():
    for module in (ast, ir):
        for value in vars(module).values():
            if isinstance(value, type) and hasattr(value, "_fields") and value.__module__ == module.__name__:
                names = set(field_names(value))
                assert set(value._fields) <= names, value


def test_walk_visits_parents_before_children_in_source_order():
    program = _program()
    kinds = [type(n).__name__ for n in traverse.walk(program)]
    assert kinds[0] == "Program"
    assert kinds.index("LetDef") < kinds.index("BlockDef") < kinds.index("NetworkDef")
    calls = [n.name for n in traverse.walk(program.networks[0]) if isinstance(n, ast.Call)]
    assert calls == ["conv", "Res", "conv", "conv", "fc", "fc"]


def test_walk_nodes_and_elements_reach_inside_groups_concats_residuals_and_shortcuts():
    program = _program()
    nodes = list(traverse.walk_nodes(program.blocks[0].body))
    assert [type(n).__name__ for n in nodes] == ["Residual", "Call", "Ref", "Ref"]
    assert nodes[-1].name == "projection"  # the shortcut's target is a node too
    labels = [e.label for e in traverse.walk_elements(program.networks[0].body)]
    assert labels[0] == "stem" and len(labels) == 10


def test_visitor_dispatches_by_kind_and_falls_back_to_generic_visit():
    class Counter(traverse.Visitor):
        def __init__(self):
            self.layers = []

        def visit_Layer(self, node, prefix):
            self.layers.append(prefix + node.kind)

    network = compile_network(load("lenet5")).network
    counter = Counter()
    counter.visit(network, "> ")
    assert counter.layers[0] == "> conv" and counter.layers[-1] == "> fc"
    assert len(counter.layers) == sum(1 for n in traverse.walk(network) if isinstance(n, ir.Layer))


def test_transformer_rebuilds_only_what_changes_and_splices_lists():
    class NoRelu(traverse.Transformer):
        def visit_Layer(self, node):
            if node.kind == "relu":
                return None
            if node.kind == "tanh":
                return [node, node]
            return node

    network = compile_network(load("lenet5")).network
    same = traverse.Transformer().visit(network)
    assert same is network
    changed = NoRelu().visit(network)
    kinds = [n.kind for n in traverse.walk(changed) if isinstance(n, ir.Layer)]
    before = [n.kind for n in traverse.walk(network) if isinstance(n, ir.Layer)]
    assert kinds == [k for k in before if k != "relu" for _ in range(2 if k == "tanh" else 1)]
    assert changed is not network and network.body.items  # the input tree is untouched


def test_dump_is_stable_and_readable():
    network = compile_network(load("lenet5")).network
    text = traverse.dump(network)
    assert text == traverse.dump(compile_network(load("lenet5")).network)
    assert text.startswith("Network @")
    assert "Layer @9 kind='conv' args=(filters=6, size=5" in text


def test_walk_ir_by_type_gives_walk_by_types_lists():
    """The IR's own walk (`Context.by_type`, for check_inits and check_emittable) gives the same
    classes, each with the same nodes in the same order, over networks of every kind of node:
    side outputs, concats, splits, residuals with projections, gates, block uses."""
    for name in ("efficientnet_v2_s", "googlenet", "inception_v3", "resnet50", "deeplabv3_mobilenet",
                 "shufflenet_v2_x1_0", "densenet121", "vgg11"):
        body = compile_network(load(name)).network.body
        expected, found = traverse.walk_by_type(body), traverse.walk_ir_by_type(body)
        assert set(found) == set(expected)
        for kind, nodes in expected.items():
            assert list(map(id, found[kind])) == list(map(id, nodes)), (name, kind)
    lone = ir.Layer("relu", (), None, None)
    assert traverse.walk_ir_by_type(lone) == {ir.Layer: [lone]}
