"""Starting weights for fine-tuning (`cnndsl train --init FILE`, `cnndsl.fit(init=...)`).

Three kinds of file are read: a cnndsl checkpoint (its model tensors), any other
safetensors file, and a PyTorch `.pth`/`.pt` state_dict such as torchvision publishes,
read with `torch.load(weights_only=True)` (tensors and plain containers only: no code
runs). Names are matched strictly: a missing or an unexpected key is an error, except
that a head (`cnndsl.weights.head_modules`: the last module with parameters, and
auxiliary classifiers of its form) may differ in its output size, as it does when the
number of classes changes; its tensors keep their fresh initialisation and the run
says which keys those were. `module.` (DDP) and `_orig_mod.` (torch.compile) prefixes
are dropped.

Files are read by `cnndsl.weights.read_state_dict` and fitted by `cnndsl.weights.compare`,
as `cnndsl.build(weights=...)` reads and fits them: one rule for what the head is.
What differs is the policy: fine-tuning re-initialises a head of another size without
being told the number of classes, since the spec's `--set` already says it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..weights import compare, few, head_modules, unwrapped
from .errors import CheckpointError


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The model tensors of a weights file, by name: `cnndsl.weights.read_state_dict` reads
    the file (the reader `cnndsl.build(weights=...)` uses); a cnndsl checkpoint's training
    state (names with a slash: optimizer, RNG) is left out."""
    from ..weights import read_state_dict
    from .checkpoint import weights_of

    return weights_of(read_state_dict(path))


def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> list[str]:
    """Load the tensors `state` into `model` by name (see the module's rules); the head's
    keys left freshly initialised because their output size differs."""
    given = unwrapped(state)
    own = model.state_dict()
    keys = compare(given, own, head_modules(model))
    problems = [f"{kind} {few(keys[kind])}" for kind in ("missing", "unexpected") if keys[kind]]
    if keys["resized"]:
        problems.append("different shapes for " + few([f"{k} {tuple(given[k].shape)} vs {tuple(own[k].shape)}"
                                                        for k in keys["resized"]]))
    if problems:
        raise CheckpointError(f"{where}: the weights do not fit this network: " + "; ".join(problems),
                              "only a head (the last layer with weights, or an auxiliary classifier's) may "
                              "differ, and only in its number of outputs")
    heads = set(keys["heads"])
    with torch.no_grad():
        for name, tensor in given.items():
            if name not in heads:
                own[name].copy_(tensor.to(own[name].dtype))
    return sorted(heads)
