"""Starting weights for fine-tuning (`cnndsl train --init FILE`, `cnndsl.fit(init=...)`).

Three kinds of file are read: a cnndsl checkpoint (its model tensors), any other
safetensors file, and a PyTorch `.pth`/`.pt` state_dict such as torchvision publishes,
read with `torch.load(weights_only=True)` (tensors and plain containers only: no code
runs). Names are matched strictly: a missing or an unexpected key is an error, except
that the head (the last module with parameters) may differ in shape, as it does when
the number of classes changes; its tensors keep their fresh initialisation and the run
says which keys those were. `module.` (DDP) and `_orig_mod.` (torch.compile) prefixes
are dropped.

Files are read by `cnndsl.weights.read_state_dict`, as `cnndsl.build(weights=...)` reads
them; what differs is the fit: fine-tuning re-initialises a head of another shape
without being told the number of classes, since the spec's `--set` already says it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..weights import few
from .errors import CheckpointError
from .optimization import head_prefix

_PREFIXES = ("module.", "_orig_mod.")


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The model tensors of a weights file, by name: `cnndsl.weights.read_state_dict` reads
    the file (the reader `cnndsl.build(weights=...)` uses); a cnndsl checkpoint's training
    state (names with a slash: optimizer, RNG) is left out."""
    from ..weights import read_state_dict
    from .checkpoint import weights_of

    return weights_of(read_state_dict(path))


def _strip(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix):], True
    return name


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
        problems.append(f"missing {few(missing)}")
    if unexpected:
        problems.append(f"unexpected {few(unexpected)}")
    if not_head:
        problems.append("different shapes for " + few([f"{k} {tuple(given[k].shape)} vs {tuple(own[k].shape)}"
                                                        for k in not_head]))
    if problems:
        raise CheckpointError(f"{path}: the weights do not fit this network: " + "; ".join(problems),
                              "only the head (the last layer with weights) may differ in shape")
    kept = {k: v for k, v in given.items() if k not in reshaped}
    with torch.no_grad():
        for name, tensor in kept.items():
            own[name].copy_(tensor.to(own[name].dtype))
    return reshaped

