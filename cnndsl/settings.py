"""`--set NAME=VALUE`: the one parser of network parameters given on the command line.

Every command that compiles a spec (compile, check, summary, draw, export, train)
reads its `--set` values through `parse_settings`; the click option itself is declared
once, in `cnndsl.options`.
"""

from __future__ import annotations

from .errors import UsageError
from .text import split_top_level


def parse_setting(text: str) -> tuple[str, object]:
    """`N=3`, `dropout=0.2`, `POOL=false`, `mode=reflect` to a name and a value."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise UsageError(f"--set {text!r} is not NAME=VALUE", "for example --set N=3")
    raw = raw.strip()
    if raw.count("[") + raw.count("(") > 64:
        raise UsageError(f"--set {name}: the list is nested too deep", "lists nest at most 64 deep")
    return name, _value(raw)


def _value(raw: str) -> object:
    """One value: true/false, a number, a list `[6, 12, 24, 16]` (of values), else a string."""
    if raw and raw[0] in "[(" and raw[-1] == {"[": "]", "(": ")"}[raw[0]]:
        return tuple(_value(part) for part in split_top_level(raw[1:-1]))
    lowered = raw.lower()
    if lowered in ("true", "on", "yes"):
        return True
    if lowered in ("false", "off", "no"):
        return False
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        raw = raw[1:-1]
    return raw


def parse_settings(values: tuple[str, ...] | list[str]) -> dict[str, object]:
    return dict(parse_setting(v) for v in values)
