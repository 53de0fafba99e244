"""A model from a checkpoint's own record: the spec's text compiled as text.

A checkpoint's `spec` is the text of the spec it was trained from; it is compiled as
text and never taken for a path or a built-in's name, so a crafted checkpoint cannot
make cnndsl read (and echo) some other file.
"""

from __future__ import annotations

from ..compiler import Compiled, compile_network, source_from_text


def compile_stored(meta: dict) -> Compiled:
    source = source_from_text(meta["spec"], f"<spec stored in {meta.get('path', 'the checkpoint')}>")
    return compile_network(source, dict(meta["params"]), network=meta["network"])


def build_compiled(compiled: Compiled, params: dict):
    """The `torch.nn.Module` of a compiled network, as `cnndsl.build` makes it."""
    from ..api import instantiate

    return instantiate(compiled, params)
