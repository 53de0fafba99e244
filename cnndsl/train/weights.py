"""Starting weights for fine-tuning (`cnndsl train --init FILE`, `cnndsl.fit(init=...)`).

Three kinds of file are read: a cnndsl checkpoint (its model tensors), any other
safetensors file, and a PyTorch `.pth`/`.pt` state_dict such as torchvision publishes,
read with `torch.load(weights_only=True)` (tensors and plain containers only: no code
runs). Names are matched strictly: a missing or an unexpected key is an error, except
that the head (the last module with parameters) may differ in shape, as it does when
the number of classes changes; its tensors keep their fresh initialisation and the run
says which keys those were. `module.` (DDP) and `_orig_mod.` (torch.compile) prefixes
are dropped.

`load_weights` is the one loader; `cnndsl.build(weights=...)` can share it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .errors import CheckpointError
from .optimization import head_prefix

_PREFIXES = ("module.", "_orig_mod.")


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, by name."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no weights file at {path}", "give a .safetensors checkpoint or a .pth state_dict")
    if path.suffix in (".pth", ".pt", ".bin"):
        return _read_pth(path)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    from .checkpoint import weights_of

    return weights_of(tensors)


def _read_pth(path: Path) -> dict[str, torch.Tensor]:
    import pickle

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a weights-only PyTorch state_dict ({first})",
                              "save it with torch.save(model.state_dict(), path)") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: holds no state_dict of tensors", "save model.state_dict()")
    return dict(state)


def _strip(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix):], True
    return name


def load_weights(model: torch.nn.Module, path: str | Path) -> list[str]:
    """Load `path` into `model`; the head keys left freshly initialised (shape differed)."""
    return load_state(model, read_weights(path), str(path))


def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> list[str]:
    """Load the tensors `state` into `model` by name (see the module's rules)."""
    path = where
    given = {_strip(k): v for k, v in state.items()}
    own = model.state_dict()
    head = head_prefix(model)
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    reshaped = sorted(k for k in set(own) & set(given) if tuple(own[k].shape) != tuple(given[k].shape))
    not_head = [k for k in reshaped if not (head and k.startswith(head + "."))]
    problems = []
    if missing:
        problems.append(f"missing {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected {_few(unexpected)}")
    if not_head:
        problems.append("different shapes for " + _few([f"{k} {tuple(given[k].shape)} vs {tuple(own[k].shape)}"
                                                        for k in not_head]))
    if problems:
        raise CheckpointError(f"{path}: the weights do not fit this network: " + "; ".join(problems),
                              "only the head (the last layer with weights) may differ in shape")
    kept = {k: v for k, v in given.items() if k not in reshaped}
    with torch.no_grad():
        for name, tensor in kept.items():
            own[name].copy_(tensor.to(own[name].dtype))
    return reshaped


def _few(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
