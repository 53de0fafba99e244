"""How tests/data/torchvision_num_params.json was made (run once; kept to say how).

torchvision's model files declare, per builder `def NAME(*, weights: Optional[X_Weights] ...)`,
an enum `class X_Weights(WeightsEnum)` whose entries carry `meta={..., "num_params": N}`.
This reads those files with Python's `ast` (nothing is imported or executed), maps each
builder to its weights class, and keeps the builders of the CNN families of issue 11
(and the classic ones already built in), each with its one published count (the entries
of one enum agree; the script checks it).

    python tests/data/extract_num_params.py /work/tv/src/torchvision/models > tests/data/torchvision_num_params.json
"""

import ast
import json
import sys
from pathlib import Path

FILES = ["alexnet", "vgg", "googlenet", "resnet", "squeezenet", "mobilenetv2", "mobilenetv3", "mnasnet",
         "shufflenetv2", "efficientnet", "regnet", "convnext", "densenet", "inception"]


def _own(d: ast.Dict) -> int | None:
    for key, value in zip(d.keys, d.values):
        if isinstance(key, ast.Constant) and key.value == "num_params":
            return value.value
    return None


def _counts(tree: ast.Module) -> dict[str, set[int]]:
    """Weights class name -> the num_params values of its entries' meta (a meta that
    unpacks a module-level dict, `{**_COMMON_META, ...}`, gets that dict's count)."""
    shared = {node.targets[0].id: _own(node.value) for node in tree.body
              if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
              and isinstance(node.targets[0], ast.Name)}
    found: dict[str, set[int]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for sub in ast.walk(node):
            if not (isinstance(sub, ast.keyword) and sub.arg == "meta" and isinstance(sub.value, ast.Dict)):
                continue
            count = _own(sub.value)
            for key, value in zip(sub.value.keys, sub.value.values):
                if key is None and isinstance(value, ast.Name) and count is None:
                    count = shared.get(value.id)
            if count is not None:
                found.setdefault(node.name, set()).add(count)
    return found


def _builders(tree: ast.Module) -> dict[str, str]:
    """Builder function name -> the weights class its `weights` argument is annotated with."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            for arg in node.args.kwonlyargs:
                if arg.arg == "weights" and isinstance(arg.annotation, ast.Subscript):
                    found[node.name] = ast.unparse(arg.annotation.slice)
    return found


def main(folder: str) -> None:
    table = {}
    for stem in FILES:
        tree = ast.parse((Path(folder) / f"{stem}.py").read_text())
        counts = _counts(tree)
        for builder, weights in sorted(_builders(tree).items()):
            values = counts[weights]
            assert len(values) == 1, (builder, values)
            table[builder] = values.pop()
    json.dump({"source": "torchvision 0.28 models/*.py, weight tables' meta num_params "
                         "(tests/data/extract_num_params.py)", "num_params": table}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
