"""Every name the generated Python holds, in one place: what the generator writes itself,
what `torch.nn.Module` already means, and a `Namer` that hands out the names the
generator makes up (a block's second class `S2`, a residual's saved `identity2`, a
member's `conv1`) so that none can be one the user chose or one Python or PyTorch owns.

The resolve pass rejects user names that would collide with these (a label
`set_submodule`, a parameter named like a block class); the code generator draws its
own names from a `Namer` that knows every user name. Nothing here imports torch: the
attributes of `nn.Module` are listed, and a test keeps the list in step with torch.
"""

from __future__ import annotations

import builtins
import keyword

# What a generated module defines or imports at its top level.
HELPERS = frozenset({"MinPool2d", "Maxout", "StochasticDepth", "zero_pad_shortcut", "center_crop", "center_pad",
                     "LayerNorm2d", "Permute"})
MODULE_LEVEL = frozenset({"torch", "nn", "OrderedDict", "annotations", "__all__"}) | HELPERS
# The locals and parameters the generator writes in every class.
LOCALS = frozenset({"self", "x", "identity", "in_channels"})
GENERATED_NAMES = MODULE_LEVEL | LOCALS

# torch.nn.Module's public attributes (torch 2.4 to 2.13): a member of that name would be
# hidden by the method, or would replace it. tests/test_adversarial.py compares with torch.
MODULE_ATTRIBUTES = frozenset({
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children", "compile",
    "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer",
    "get_extra_state", "get_parameter", "get_submodule", "half", "ipu", "load_state_dict", "modules", "mtia",
    "named_buffers", "named_children", "named_modules", "named_parameters", "parameters",
    "register_backward_hook", "register_buffer", "register_forward_hook", "register_forward_pre_hook",
    "register_full_backward_hook", "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_module", "register_parameter", "register_state_dict_post_hook",
    "register_state_dict_pre_hook", "requires_grad_", "set_extra_state", "set_submodule", "share_memory",
    "state_dict", "to", "to_empty", "train", "training", "type", "xpu", "zero_grad",
})


def python_reserved(name: str) -> bool:
    """A keyword or a built-in: never a name to make up."""
    return keyword.iskeyword(name) or keyword.issoftkeyword(name) or hasattr(builtins, name)


class Namer:
    """Fresh names in one Python namespace: `fresh("S")` is `S` if free, else `S2`, `S3`...
    skipping every name taken, reserved, a keyword or a built-in."""

    def __init__(self, taken=(), reserved=frozenset()) -> None:
        self.taken = set(taken)
        self.reserved = frozenset(reserved)

    def free(self, name: str) -> bool:
        return name not in self.taken and name not in self.reserved and not python_reserved(name)

    def take(self, name: str) -> str:
        self.taken.add(name)
        return name

    def fresh(self, base: str, start: int = 2, plain: bool = True) -> str:
        if plain and self.free(base):
            return self.take(base)
        index = start
        while not self.free(f"{base}{index}"):
            index += 1
        return self.take(f"{base}{index}")
