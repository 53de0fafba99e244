"""The network generator's steps for the constructs the language gained after issue 15 was
filed: gate, split, shuffle, per-axis tuples, upsample (scale, size, like=), conv_transpose,
concat skips, named outputs (`outputs(...)`), defs, list parameters and conditionals,
`X * n for i`, quoted and interpolated labels, and heads with two inputs (`add { ... }`,
`mul { ... }`, `from(name)` at a branch's head, a block's `reads(low)` and its use's
`reads(name)`).

`ReachSteps` is a mixin of `fuzz_build.NetGen`: it reads the generator's `rng`, `classes`,
`label()`, `members` (the network chain's labelled elements and their shapes) and adds
top-level `defs`. Each step returns `(text, shape)`, the shape the generator expects (the
checker is the judge: a wrong guess ends in a diagnostic, which the oracle accepts, only a
network `check` calls well-formed must run), or None where it does not apply to the shape.
"""

from __future__ import annotations

# The largest map the generator lets an upsample or a transposed conv make: networks stay
# small, so that forward and backward take milliseconds.
MAX_SIDE = 24


def conv_out(n: int, k: int, s: int, p: int, d: int = 1) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def pair(a: int, b: int) -> str:
    return f"({a}, {b})"


class ReachSteps:
    """Steps of the newer constructs, on a CxHxW volume."""

    def reach_step(self, shape):
        rng = self.rng
        kind = rng.choice(("gate", "split", "shuffle", "tuple conv", "tuple pool", "upsample", "conv_transpose",
                           "skip", "def", "condition", "indexed repetition", "quoted labels", "se block",
                           "add", "mul", "reads head"))
        return getattr(self, "reach_" + kind.replace(" ", "_"))(shape)

    def labelled(self, text: str, out, chance: float = 0.4):
        """`label: text` as a member of the network's chain (one a skip or like= can read)."""
        if self.rng.random() >= chance:
            return text, out
        label = self.label()
        self.members[label] = out
        self.top_labels.append(label)
        return f"{label}: {text}", out

    def reach_gate(self, shape):
        rng = self.rng
        c, h, w = shape
        self.classes.add("gate")
        if rng.random() < 0.65:
            squeeze = max(1, c // rng.choice((1, 2, 4)))
            scale = rng.choice(("sigmoid", "hardsigmoid"))
            parts = ["global_avgpool", f"conv({squeeze}, 1)", "relu", f"conv({c}, 1)", scale]
        else:
            self.classes.add("gate, spatial")
            parts = ["conv(1, 3, pad=1)", "sigmoid"]
        if rng.random() < 0.4:  # the body's members sit in the enclosing scope: named with fresh labels
            parts = [f"{self.label()}: {p}" for p in parts]
        body = " -> ".join(parts)
        return f"gate {{\n        {body}\n    }}", shape

    def reach_split(self, shape):
        rng = self.rng
        c, h, w = shape
        n = next((k for k in rng.sample((2, 3), 2) if c % k == 0), None)
        if n is None:
            return None
        self.classes.add("split")
        share, branches, channels = c // n, [], 0
        for _ in range(n):
            roll, f = rng.random(), rng.choice((2, 3, 4))
            if roll < 0.35:
                branches.append("identity")
                f = share
            elif roll < 0.6:
                branches.append(f"{self.label()}: [conv({f}, 1) -> batchnorm -> relu]")
            elif roll < 0.8:
                branches.append(f"conv({f}, 3, pad=1) -> relu")
            else:
                branches.append(f"[conv({share}, 1) -> relu -> conv({f}, 3, pad=1)]")
            channels += f
        body = "".join(f"        {b}\n" for b in branches)
        return self.labelled(f"split {{\n{body}    }}", (channels, h, w), 0.0)

    def reach_shuffle(self, shape):
        c, h, w = shape
        groups = [g for g in (2, 3, 4) if c % g == 0 and g < c]
        if not groups:
            return None
        self.classes.add("shuffle")
        return self.labelled(f"shuffle({self.rng.choice(groups)})", shape)

    def reach_tuple_conv(self, shape):
        rng = self.rng
        c, h, w = shape
        self.classes.add("per-axis tuples")
        kh, kw = rng.choice((1, 3)), rng.choice((1, 3, 5))
        kh, kw = (kh if kh <= h else 1), (kw if kw <= w else 1)
        sh, sw = (rng.choice((1, 2)) if h > 2 else 1), (rng.choice((1, 2)) if w > 2 else 1)
        ph, pw = kh // 2, kw // 2
        dh = 2 if kh == 3 and h >= 5 and rng.random() < 0.2 else 1
        ph = ph * dh
        f = rng.choice((2, 4, 6))
        text = f"conv({f}, {pair(kh, kw)}, stride={pair(sh, sw)}, pad={pair(ph, pw)}"
        text += f", dilation={pair(dh, 1)}" if dh != 1 else ""
        text += ", floor=true)" if (sh, sw) != (1, 1) else ")"
        return self.labelled(text, (f, conv_out(h, kh, sh, ph, dh), conv_out(w, kw, sw, pw)))

    def reach_tuple_pool(self, shape):
        rng = self.rng
        c, h, w = shape
        kh, kw = (2 if h >= 2 else 1), rng.choice((1, 2)) if w >= 2 else 1
        if (kh, kw) == (1, 1):
            return None
        self.classes.add("per-axis tuples")
        kind = rng.choice(("maxpool", "avgpool"))
        return self.labelled(f"{kind}({pair(kh, kw)})", (c, h // kh, w // kw))

    def reach_upsample(self, shape):
        rng = self.rng
        c, h, w = shape
        mode = rng.choice(("", "", ', mode="bilinear"'))
        likes = [(n, s) for n, s in self.members.items() if len(s) == 3]
        roll = rng.random()
        if roll < 0.4 and likes:
            self.classes.add("upsample(like=)")
            name, (_, lh, lw) = rng.choice(likes)
            return f"upsample(like={name}{mode})", (c, lh, lw)  # like= is not a module: never labelled
        if roll < 0.5:
            self.classes.add("upsample(like=)")
            _, ih, iw = self.input_shape
            return f"upsample(like=input{mode})", (c, ih, iw)
        self.classes.add("upsample")
        if roll < 0.8 and max(h, w) * 2 <= MAX_SIDE:
            return self.labelled(f"upsample(scale=2{mode})", (c, 2 * h, 2 * w))
        size = rng.randint(1, MAX_SIDE // 2)
        return self.labelled(f"upsample(size={size}{mode})", (c, size, size))

    def reach_conv_transpose(self, shape):
        rng = self.rng
        c, h, w = shape
        self.classes.add("conv_transpose")
        k, s = rng.choice((1, 2, 3)), rng.choice((1, 2))
        p = rng.choice((0, k // 2))
        op = rng.choice((0, s - 1))
        out = [(n - 1) * s - 2 * p + (k - 1) + op + 1 for n in (h, w)]
        if min(out) < 1 or max(out) > MAX_SIDE:
            return None
        f = rng.choice((2, 4, 6))
        name = rng.choice(("conv_transpose", "upconv"))
        extra = (f", stride={s}" if s != 1 else "") + (f", pad={p}" if p else "") + \
            (f", output_padding={op}" if op else "")
        return self.labelled(f"{name}({f}, {k}{extra})", (f, *out))

    def reach_skip(self, shape):
        rng = self.rng
        c, h, w = shape
        fits = [(n, s) for n, s in self.members.items() if len(s) == 3 and
                ((s[1] >= h and s[2] >= w) or (s[1] <= h and s[2] <= w))]
        if not fits:
            return None
        self.classes.add("concat skip")
        chosen = rng.sample(fits, min(len(fits), rng.choice((1, 1, 2))))
        names = ", ".join(n for n, _ in chosen)
        channels = sum(s[0] for _, s in chosen)
        if rng.random() < 0.5:
            return f"concat({names})", (channels + c, h, w)
        self.classes.add("concat skip with branches")
        f = rng.choice((2, 4))
        return f"concat({names}) {{\n        conv({f}, 1)\n        identity\n    }}", (channels + f + c, h, w)

    def reach_def(self, shape):
        rng = self.rng
        c, h, w = shape
        self.classes.add("def and lists")
        if not self.defs:
            self.defs = ["def widths = [2, 4, 6]\n", "def half(v, floor_ = 1) = max(floor_, v // 2)\n"]
        roll = rng.random()
        if roll < 0.4:
            i = rng.randrange(3)
            return self.labelled(f"conv(widths[{i}], 1)", ((2, 4, 6)[i], h, w))
        if roll < 0.7:
            return self.labelled(f"conv(half({c}), 3, pad=1)", (max(1, c // 2), h, w))
        self.list_params.setdefault("cfg", "[4, 6]")
        self.classes.add("list parameter")
        return self.labelled(f"conv(cfg[len(cfg) - 1], 1)", (6, h, w))

    def reach_condition(self, shape):
        rng = self.rng
        c, h, w = shape
        self.classes.add("conditional")
        if "w" not in self.params:
            self.params["w"] = rng.choice((4, 8))
        value = self.params["w"]
        roll = rng.random()
        if roll < 0.35:
            return rng.choice(("relu", "batchnorm", f"conv({c}, 3, pad=1)")) + \
                rng.choice(("?(w > 4)", "?(w == 4)", "?(not (w > 4))")), shape
        if roll < 0.7:
            return self.labelled("conv(8 if w > 4 else 4, 1)", (8 if value > 4 else 4, h, w))
        return self.labelled("conv(w, 1)", (value, h, w))

    def reach_indexed_repetition(self, shape):
        rng = self.rng
        c, h, w = shape
        self.classes.add("X * n for i")
        n = rng.choice((1, 2, 3))
        roll = rng.random()
        if roll < 0.4:
            return self.labelled(f"[conv(2 * (i + 1), 3, pad=1) -> relu]*{n} for i", (2 * n, h, w))
        if roll < 0.7:
            self.classes.add("interpolated labels")
            name = self.label()
            self.members[name] = (c, h, w)
            return f'{name}: ["{rng.choice(("block", "layer", "b"))}{{i + 1}}": conv({c}, 1) -> relu]*{n} for i', \
                (c, h, w)
        stride = "2 if i == 0 else 1" if min(h, w) >= 4 else "1"
        out = (4, conv_out(h, 3, 2, 1), conv_out(w, 3, 2, 1)) if stride != "1" else (4, h, w)
        return f"[conv(4, 3, stride={stride}, pad=1, floor=true)]*{n} for i", out

    def reach_quoted_labels(self, shape):
        rng = self.rng
        c, h, w = shape
        self.classes.add("quoted labels")
        group = self.label()
        keys = rng.sample(('"block1-0"', '"0"', '"a b"', '"if"', '"forward"', '"class"', '"1x1"', '"é"'), 2)
        self.members[group] = (4, h, w)
        return f"{group}: [{keys[0]}: conv(4, 1) -> {keys[1]}: relu]", (4, h, w)

    def reach_se_block(self, shape):
        """A block holding only a gate, reading `input.channels` (torchvision's SqueezeExcitation)."""
        self.classes.add("gate")
        self.classes.add("block reading input.channels")
        if not any(b.startswith("block SE(") for b in self.blocks):
            self.blocks.append("block SE(r = 2) {\n    gate {\n        pool: global_avgpool\n"
                               "        fc1: conv(max(1, input.channels // r), 1) -> relu\n"
                               "        fc2: conv(input.channels, 1) -> hardsigmoid\n    }\n}\n")
        return self.labelled(self.rng.choice(("SE()", "SE(1)", "SE(r=4)")), shape)

    def reach_add(self, shape):
        """`add { ... }` of branches that end with the same channels; a branch may read an
        earlier member of the same height and width with `from(name)`."""
        rng = self.rng
        c, h, w = shape
        self.classes.add("add")
        f = rng.choice((c, 2, 4))
        branches = [f"conv({f}, 1)" if f != c or rng.random() < 0.5 else rng.choice(("identity", "relu", "batchnorm"))
                    for _ in range(rng.choice((2, 2, 3)))]
        if rng.random() < 0.3:  # a branch's own label: a member of the enclosing scope
            branches[-1] = f"{self.label()}: {branches[-1]}"
        earlier, before = [n for n, s in self.members.items() if len(s) == 3], ""
        if rng.random() < 0.7:
            self.classes.add("from(name) branch")
            if not earlier:  # a member to read: the add's input, named
                before, _ = self.labelled("relu -> ", shape, chance=1)
                earlier = [before.partition(":")[0]]
            name = rng.choice(earlier)
            resized = "" if self.members[name][1:] == (h, w) else f"upsample(size={pair(h, w)}) -> "
            branches[0] = f"from({name}) {resized}conv({f}, 1)"
        body = "\n        ".join(branches)
        return f"{before}add {{\n        {body}\n    }}", (f, h, w)  # an add takes no label (as concat)

    def reach_mul(self, shape):
        """`mul { ... }`: a per-channel scale broadcast over height and width, as LR-ASPP's."""
        rng = self.rng
        c, h, w = shape
        self.classes.add("mul, broadcast")
        f = rng.choice((c, 4))
        scale = rng.choice(("sigmoid", "hardsigmoid"))
        body = f"[conv({f}, 1) -> relu]\n        [adaptive_avgpool(1) -> conv({f}, 1) -> {scale}]"
        return f"mul {{\n        {body}\n    }}", (f, h, w)

    def reach_reads_head(self, shape):
        """A block with a second input, `block H(k) reads(low)`, used as `H(k) reads(name)`: the
        chain's value upsampled to `low`'s size and added to a conv of `low`."""
        rng = self.rng
        c, h, w = shape
        lows = [n for n, s in self.members.items() if len(s) == 3 and s[1] <= MAX_SIDE and s[2] <= MAX_SIDE]
        if not lows:
            return None
        self.classes.add("block reads(...)")
        if not any(b.startswith("block Head(") for b in self.blocks):
            self.blocks.append("block Head(k = 2) reads(low) {\n    upsample(like=low)\n    add {\n"
                               "        from(low) low_conv: conv(k, 1)\n        high_conv: conv(k, 1)\n    }\n}\n")
        low = rng.choice(lows)
        k = rng.choice((2, 3))
        _, lh, lw = self.members[low]
        return self.labelled(f"Head({k}) reads({low})", (k, lh, lw))

    def outputs_line(self, final: str) -> str | None:
        """`outputs(...)` naming the chain's end, an earlier member and every side output."""
        rng = self.rng
        if rng.random() >= 0.2:
            return None
        self.classes.add("outputs(...)")
        keys = [f"logits={final}" if rng.random() < 0.5 else final]
        keys += list(self.side_names)
        if self.members and rng.random() < 0.5:
            keys.append(f"feature={rng.choice(sorted(self.members))}")
        return f"outputs({', '.join(keys)})"
