"""What expanding a let or a block costs at the least, known before expanding it.

Lets and blocks that use each other twice over double the expansion at each level
(`let L2 = L1 -> L1`): twenty levels are a million steps. `expand.py` stops at MAX_STEPS,
but reaching that limit element by element takes half a second or more; with this lower
bound it refuses such a reference at once. Counted as the expander counts: one step per
element of a chain, and the steps of the let or block an element names. What may expand
to nothing (an optional, a repetition whose count is not a literal, a side output) counts
nothing, so the bound never exceeds what expanding takes.
"""

from __future__ import annotations

from collections import Counter

from .. import ast


class ExpansionCost:
    """`bound(name)`: the least number of steps expanding the let or block `name` takes,
    capped at `cap` (any value above the cap says the same)."""

    def __init__(self, lets: dict, blocks: dict, cap: int):
        self.chains = {name: (d.chain,) for name, d in lets.items()}
        self.chains.update({name: tuple(d.body) for name, d in blocks.items()})
        self.cap = cap
        self.known: dict[str, int] = {}

    def of_chains(self, chains) -> int:
        """The bound for some chains (a network's body)."""
        local, refs = _summary(chains, self.chains)
        return min(local + sum(count * self.bound(ref) for ref, count in refs.items()), self.cap + 1)

    def bound(self, name: str) -> int:
        if name in self.known:
            return self.known[name]
        # Post-order over the definitions `name` reaches, iteratively: a chain of a
        # thousand lets is deeper than Python's recursion limit. A cycle (resolve.py
        # reports those) counts nothing.
        summaries: dict[str, tuple[int, Counter]] = {}
        stack, open_ = [name], set()
        while stack:
            current = stack[-1]
            if current not in summaries:
                summaries[current] = _summary(self.chains[current], self.chains)
                open_.add(current)
                stack.extend(n for n in summaries[current][1] if n not in self.known and n not in open_)
                continue
            stack.pop()
            if current in self.known:
                continue
            local, refs = summaries[current]
            total = local + sum(count * self.known.get(ref, 0) for ref, count in refs.items())
            self.known[current] = min(total, self.cap + 1)
        return self.known[name]


def _summary(chains, definitions: dict) -> tuple[int, Counter]:
    """The steps of some chains themselves, and how often each definition is named."""
    refs: Counter = Counter()
    steps = 0
    pending = list(chains)
    while pending:
        chain = pending.pop()
        for element in chain.elements:
            steps += 1
            node = element.node
            while isinstance(node, ast.Repeat) and isinstance(node.count, ast.Num) and \
                    isinstance(node.count.value, int) and node.count.value > 0:
                node = node.node  # expanded once, however many copies it makes
            if isinstance(node, (ast.Ref, ast.Call)) and node.name in definitions:
                refs[node.name] += 1
            elif isinstance(node, ast.Group):
                pending.extend(node.chains)
            elif isinstance(node, ast.Concat):
                pending.extend(node.branches)
            elif isinstance(node, (ast.Residual, ast.Gate)):
                pending.extend(node.body)
    return steps, refs
