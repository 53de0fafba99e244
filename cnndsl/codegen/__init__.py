"""Code generation: the checked IR to the source of a standalone PyTorch module.

`model.py` computes what to print; `templates/module.py.j2` prints it. The output
depends on the IR alone: the same spec and parameters give the same bytes.
"""

from __future__ import annotations

from functools import lru_cache

from .. import ir
from . import lines
from .model import WRAP, Generator


@lru_cache(maxsize=1)
def _template():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("cnndsl.codegen", "templates"),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # Python source, not HTML: every name is checked by passes/resolve.py
        undefined=jinja2.StrictUndefined,
    )
    env.filters["docstring"] = docstring_text
    env.globals.update(commented=lines.commented, ctor=lines.ctor, append=lines.append, resize=lines.resize)
    return env.get_template("module.py.j2")


def docstring_text(text: str) -> str:
    """Text that stays inside a triple-quoted docstring: a --set value or a file name
    holding three double quotes or a backslash must not end the string and run as code."""
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def generate_module(network: ir.Network) -> str:
    model = Generator(network).module()
    return _template().render(m=model, wrap=WRAP)
