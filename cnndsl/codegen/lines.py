"""The template's pieces, in Python (the template calls them as it called its macros): a line
with its shape comment, a member's construction (nested Sequentials and one argument a
line past the width included), a side output's resize. Jinja's macros cost more per call
than the rest of the template together, and a template that defines one leaves its render
context in a reference cycle (the macro's closure holds it), so the whole view model lives
on until the cycle collector runs."""

from __future__ import annotations

WRAP = 92  # model.WRAP: the generated code's width


def commented(line: str, comment: str, indent: str, col: int = 0) -> str:
    """A line and its shape comment; on a line of its own below where it would pass the
    width, and left out where even that line would (a block's shape in long terms of its
    parameters)."""
    if not comment:
        return line
    if len(indent) + 2 + len(comment) > WRAP:
        return line
    if col + len(line.split("\n")[-1]) + 4 + len(comment) > WRAP:
        return f"{line}\n{indent}# {comment}"
    return f"{line}  # {comment}"


def ctor(c, indent: str, lead: int = 0, tail: int = 0) -> str:
    """A construction (a `model.Ctor`) at `indent`: `lead` is what stands before the call on
    its line, past the indent; `tail` what after."""
    if c.sequential:
        out = ["nn.ModuleList([" if c.listed else "nn.Sequential(", "OrderedDict([" if c.keyed else "", "\n"]
        inner = indent + "    "
        for key, child, comment in c.children:
            if c.keyed:
                opening = f'("{key}", '
                line = f"{inner}{opening}{ctor(child, inner, len(opening), 2)}),"
            else:
                line = f"{inner}{ctor(child, inner, 0, 1)},"
            out.append(commented(line, comment, inner))
            out.append("\n")
        out.append(f"{indent}{'])' if c.keyed or c.listed else ''}{'' if c.listed else ')'}")
        return "".join(out)
    if c.choice and len(indent) + lead + len(c.text) + tail > WRAP:
        return f"(\n{choice(c, indent + '    ')}\n{indent})"
    if len(indent) + lead + len(c.text) + tail > WRAP:
        callee, args = c.wrapped_args
        if not args:
            return f"{callee}(\n{indent})"
        inner = f"{indent}    "
        return f"{callee}(\n{inner}" + f",\n{inner}".join(args) + f",\n{indent})"
    return c.text


def choice(c, indent: str) -> str:
    """A choice `a if condition else b` (codegen/toggles.py) over three lines, as black writes a long one."""
    condition, a, b = c.choice
    return f"{indent}{ctor(a, indent)}\n{indent}if {condition.text}\n{indent}else {ctor(b, indent, 5)}"


def append(layers: str, child, comment: str, indent: str) -> str:
    """`layers.append(child)` of a Sequential built from a list (codegen/toggles.py), on one
    line where it fits."""
    if not child.sequential and len(indent) + len(layers) + len(child.text) + 9 <= WRAP:
        return commented(f"{layers}.append({child.text})", comment, indent, len(indent))
    inner = choice(child, indent + "    ") if child.choice else f"{indent}    {ctor(child, indent + '    ')}"
    return f"{layers}.append(\n{inner}\n" + commented(f"{indent})", comment, indent)


def resize(s, indent: str) -> str:
    """A side output's resize to the size of an element (the aux head's, to the input's):
    `s.parts` are the size's local, the interpolation's options and the shape comment."""
    call = f"{s.var} = nn.functional.interpolate({s.var}, size={s.parts[0]}{s.parts[1]})"
    if len(indent) + len(call) + 4 + len(s.parts[2]) > WRAP:
        return (f"{s.var} = nn.functional.interpolate(\n{indent}    {s.var}, size={s.parts[0]}{s.parts[1]}\n"
                f"{indent})  # {s.parts[2]}")
    return f"{call}  # {s.parts[2]}"
