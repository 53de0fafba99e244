"""`cnndsl.build(..., weights=PATH)`: a state_dict from a file, loaded strictly.

A `.safetensors` file, or anything else read by `torch.load(weights_only=True)`: a
plain state_dict as torchvision publishes its weights (`torch.save(model.state_dict())`),
or a training checkpoint holding one under "state_dict" or "model". The keys must be
the model's own (the built-ins have torchvision's), less the `module.` (DDP) and
`_orig_mod.` (torch.compile) prefixes. When the network was built with a `num_classes`
of its own and only its heads differ (their output size), the rest is loaded and a
warning names the heads left freshly initialised.

What "the head" is is decided here once (`head_modules`), for `build(weights=...)`,
for fine-tuning (`cnndsl train --init`, which re-initialises a head of another size
without being told the number of classes) and for the head's own learning rate
(`--backbone-lr`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

from .errors import CnndslError, InternalError, MissingExtra

SHOWN = 4  # keys named per kind of mismatch; the rest are counted


def _unreadable(path: Path, exc: Exception) -> CnndslError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return CnndslError(f"cannot read weights from {path}: {first}",
                       "give a state_dict saved with torch.save(model.state_dict(), PATH) or a .safetensors file; "
                       "a pickled whole model is refused (weights_only=True)")


def read_state_dict(path: str | Path) -> dict:
    """The tensors of a weights file, by key."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CnndslError(f"no weights file {path}", "give the path of a .pth or .safetensors state_dict")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise MissingExtra("loading .safetensors weights", "train", "safetensors") from None
        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types for a damaged file
            raise _unreadable(path, exc) from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError ...: all mean "not weights"
        raise _unreadable(path, exc) from None
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise _unreadable(path, TypeError("the file holds no state_dict (a mapping of names to tensors)"))
    return dict(state)


def few(keys: list[str], limit: int = SHOWN) -> str:
    """The first keys of a list and how many more: what an error about keys shows."""
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _keys(kind: str, keys: list[str]) -> str:
    return f"{len(keys)} {kind} ({few(keys)})"


def _shape(tensor) -> str:
    return "x".join(str(d) for d in tensor.shape) or "scalar"


WRAPPERS = ("module.", "_orig_mod.")  # prefixes of DDP's and torch.compile's wrappers


def unwrapped(state: Mapping) -> dict:
    """`state` with its keys' DDP and torch.compile prefixes dropped (`module._orig_mod.fc.weight`)."""
    out = {}
    for key, value in state.items():
        while key.startswith(WRAPPERS):
            key = key.split(".", 1)[1]
        out[key] = value
    return out


def _shape_of(params: list) -> list[tuple[str, int, int]]:
    return [(name, p.dim(), p.shape[0] if p.dim() else 0) for name, p in params]


def head_modules(model) -> list[str]:
    """The network's heads, as module paths: the tensors a different number of classes
    reshapes. The last module with parameters is the head; an auxiliary classifier
    (GoogLeNet's `aux1`, `aux2`) is a head too: the last module with parameters inside a
    top-level branch that has the last one's form (its parameters' names and ranks, and
    the same first dimension, the number of outputs). A top-level layer of the main
    chain is never a head unless it is the last."""
    owners: dict[str, list] = {}
    for name, p in model.named_parameters():
        module, _, leaf = name.rpartition(".")
        owners.setdefault(module, []).append((leaf, p))
    if not owners:
        return []
    last = list(owners)[-1]
    form = _shape_of(owners[last])
    last_in_branch: dict[str, str] = {}
    for module in owners:
        top, dot, _ = module.partition(".")
        if dot:
            last_in_branch[top] = module
    heads = [m for m in last_in_branch.values() if m != last and _shape_of(owners[m]) == form]
    return heads + [last]


def in_modules(key: str, modules: list[str]) -> bool:
    """Whether the state_dict key `key` belongs to one of the modules (paths; "" is the root)."""
    return any(m == "" or key.startswith(m + ".") for m in modules)


def compare(state: dict, own: dict, heads: list[str]) -> dict[str, list[str]]:
    """The keys that differ: missing, unexpected, heads (in one of the `heads` modules, and
    only the first dimension, the output size, differs) and resized (any other shape)."""
    resized = [k for k in own if k in state and state[k].shape != own[k].shape]
    head_keys = [k for k in resized if in_modules(k, heads) and state[k].dim() == own[k].dim() >= 1
                 and state[k].shape[1:] == own[k].shape[1:]]
    return {"missing": [k for k in own if k not in state], "unexpected": [k for k in state if k not in own],
            "heads": head_keys, "resized": [k for k in resized if k not in head_keys]}


def _misfit(path, model, state: dict, own: dict, keys: dict, num_classes: int | None) -> CnndslError:
    problems = [_keys(kind, keys[kind]) for kind in ("missing", "unexpected") if keys[kind]]
    if keys["resized"]:
        problems.append(_keys("of another shape", [f"{k}: file {_shape(state[k])}, model {_shape(own[k])}"
                                                   for k in keys["resized"]]))
    hint = ("the file's keys and shapes must be the model's state_dict (the built-ins have torchvision's); "
            "build it with the parameters the weights were trained with")
    if keys["resized"] and num_classes is None:
        hint += ", or pass num_classes=N to load everything but the classifier"
    return CnndslError(f"weights {path} do not fit {type(model).__name__}: " + "; ".join(problems), hint)


def load_weights(model, path: str | Path, num_classes: int | None = None) -> None:
    """Load the file's state_dict into `model` strictly (see the module's doc)."""
    state = unwrapped(read_state_dict(path))
    own = model.state_dict()
    keys = compare(state, own, head_modules(model) if num_classes is not None else [])
    if keys["missing"] or keys["unexpected"] or keys["resized"]:
        raise _misfit(path, model, state, own, keys, num_classes)
    heads = keys["heads"]
    if heads:
        warnings.warn(f"weights {path}: loaded everything but the head ({', '.join(heads)}: "
                      f"{state[heads[0]].shape[0]} outputs in the file, num_classes={num_classes} here), "
                      "which keeps its fresh initialisation", UserWarning, stacklevel=3)
        for key in heads:
            del state[key]
    result = model.load_state_dict(state, strict=False)
    if sorted(result.missing_keys) != sorted(heads) or result.unexpected_keys:
        raise InternalError(f"loading {path} left {result} after the keys were compared")


__all__ = ["compare", "few", "head_modules", "load_weights", "read_state_dict", "unwrapped"]
