"""Pass 1, derive_variants: each variant declaration becomes the network it names.

    network resnet50 = ResNet(layers = [3, 4, 6, 3])

is the network `ResNet` with these arguments as the defaults of its parameters (a
positional argument sets the parameter in that position), under the name `resnet50`.
Later passes see an ordinary `NetworkDef`: its class name is the variant's name with the
family's spelling of a shared start (`ResNet50`), its parameters are the family's, so
`--set num_classes=10` still works, and its body is the family's (diagnostics inside it
point there; the network itself, for hover and the generated docstring, is the declaration). A variant may name another variant as its family.
"""

from __future__ import annotations

from .. import ast
from ..traverse import evolve
from .context import Context, alone, finish
from .resolve import suggest


def class_name(variant: str, family: str) -> str:
    """The Python class of a variant: `resnet50` of `ResNet` is `ResNet50`; a name that does
    not start with the family's gets a capital first letter (`wide_resnet50_2`: `Wide_resnet50_2`)."""
    if variant.lower().startswith(family.lower()):
        return family + variant[len(family):]
    return variant[:1].upper() + variant[1:]


def derive_variants(program: ast.Program, context: Context | None = None) -> ast.Program:
    """The program with one more network per variant declaration (see the module's docstring)."""
    context, own = alone(context)
    if not program.variants:
        return finish(program, context, own)
    networks = list(program.networks)
    declared = {n.name: n.name_span for n in networks}
    for variant in program.variants:
        if not _new(variant.name, repr(variant.name), declared, variant.name_span, context):
            continue
        derived = _derive(variant, networks, context)
        if derived is None:
            continue
        if derived.name == variant.name or _new(derived.name, f"variant {variant.name}'s class {derived.name!r}",
                                                declared, variant.name_span, context):
            networks.append(derived)
    if context.errors:
        context.stop()
    return finish(evolve(program, networks=tuple(networks)), context, own)


def _family(variant: ast.VariantDef, networks: list, context: Context) -> ast.NetworkDef | None:
    for network in networks:
        if variant.family in (network.name, network.variant):
            return network
    names = [n.variant or n.name for n in networks]
    guess = suggest(variant.family, names)
    context.error(variant.family_span, f"variant {variant.name}: no network named {variant.family!r}",
                  f"did you mean {guess!r}?" if guess else
                  f"a variant names a network of this file: {', '.join(names) or 'there is none'}", "unknown")
    return None


def _new(name: str, what: str, declared: dict, span, context: Context) -> bool:
    """Whether `name` is new in the file (else reported); it is declared from now on."""
    if name in declared:
        context.error(span, f"{what} is defined twice",
                      f"the first definition is at line {declared[name].line}; rename one")
        return False
    declared[name] = span
    return True


def _derive(variant: ast.VariantDef, networks: list, context: Context) -> ast.NetworkDef | None:
    family = _family(variant, networks, context)
    if family is None:
        return None
    defaults = _arguments(variant, family, context)
    if defaults is None:
        return None
    params = tuple(evolve(p, default=defaults[p.name].value, span=defaults[p.name].span)
                   if p.name in defaults else p for p in family.params)
    return evolve(family, name=class_name(variant.name, family.name), params=params,
                   span=variant.span, name_span=variant.name_span, variant=variant.name)


def _arguments(variant: ast.VariantDef, family: ast.NetworkDef, context: Context) -> dict | None:
    """The variant's arguments by parameter name; None (reported) where one does not fit."""
    names = [p.name for p in family.params]
    found: dict[str, ast.Arg] = {}
    ok = True
    for position, arg in enumerate(variant.args):
        name = arg.name
        if name is None:
            if position >= len(names):
                context.error(arg.span, f"{family.variant or family.name} takes {len(names)} parameter{'s' * (len(names) != 1)}, "
                              f"this is argument {position + 1}", f"its parameters are: {', '.join(names)}",
                              "arguments")
                ok = False
                continue
            name = names[position]
        elif name not in names:
            guess = suggest(name, names)
            context.error(arg.span, f"network {family.variant or family.name} has no parameter {name!r}",
                          f"did you mean {guess!r}?" if guess else f"its parameters are: {', '.join(names)}",
                          "unknown-parameter")
            ok = False
            continue
        if name in found:
            context.error(arg.span, f"parameter {name!r} is given twice", "give it once", "arguments")
            ok = False
            continue
        found[name] = arg
    return found if ok else None


__all__ = ["class_name", "derive_variants"]
