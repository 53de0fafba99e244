"""`cnndsl.build(..., weights=PATH)`: a state_dict from a file, loaded strictly.

A `.safetensors` file, or anything else read by `torch.load(weights_only=True)`: a
plain state_dict as torchvision publishes its weights (`torch.save(model.state_dict())`),
or a training checkpoint holding one under "state_dict" or "model". The keys must be
the model's own (the built-ins have torchvision's). When the network was built with a
`num_classes` of its own and only the classifier heads differ (their output size), the
rest is loaded and a warning names the heads left freshly initialised.
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


def compare(state: dict, own: dict, num_classes: int | None) -> dict[str, list[str]]:
    """The keys that differ: missing, unexpected, heads (only the output size differs and
    `num_classes` was given) and resized (any other shape)."""
    resized = [k for k in own if k in state and state[k].shape != own[k].shape]
    heads = [k for k in resized if num_classes is not None and state[k].dim() == own[k].dim() >= 1
             and state[k].shape[1:] == own[k].shape[1:]]
    return {"missing": [k for k in own if k not in state], "unexpected": [k for k in state if k not in own],
            "heads": heads, "resized": [k for k in resized if k not in heads]}


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
    state = read_state_dict(path)
    own = model.state_dict()
    keys = compare(state, own, num_classes)
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


__all__ = ["few", "load_weights", "read_state_dict"]
