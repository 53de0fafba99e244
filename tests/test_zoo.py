"""The model zoo: every built-in in specs/ compiles without a warning, runs, has the
parameter count of torchvision's model or of its paper, and the torchvision ones have
exactly torchvision's state_dict (keys, order, shapes).

Expected figures come from ../shared/reference (torchvision_models.json and the paper
table of its README) and from the lecture notes in ../shared/seeds. Big models are
built on the meta device: no memory is allocated for their weights.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import cnndsl
from cnndsl.compiler import builtins, compile_network, load, source_from_text
from cnndsl.resources import catalog
from cnndsl.summary import rows

from conftest import ROOT, run_cli

torch = pytest.importorskip("torch")

SHARED = Path("/work/shared")
if not SHARED.is_dir():  # a checkout beside the shared folder
    SHARED = ROOT.parent / "shared"
REFERENCE = json.loads((SHARED / "reference" / "torchvision_models.json").read_text())
SEEDS = SHARED / "seeds"

REGNET_Y = ["400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf", "128gf"]
REGNET_X = ["400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf"]
# The built-ins of issue 3 and 11.
ZOO = ["lenet5", "alexnet", "alexnet_paper", "zfnet",
       "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
       "vgg_a_lrn", "vgg_c", "googlenet",
       "resnet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
       "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2",
       "cifar_resnet", "resnet20", "resnet56", "preact_resnet18", "unet", "unet_padded", "localizer",
       "fcn", "fcn_resnet50", "fcn_resnet101", "deeplabv3", "deeplabv3_resnet50", "deeplabv3_resnet101",
       "deeplabv3_mobilenet", "deeplabv3_mobilenet_v3_large", "lraspp", "lraspp_mobilenet_v3_large",
       "squeezenet", "squeezenet1_0", "squeezenet1_1",
       "shufflenet_v2", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
       "inception_v3", "convnext", "convnext_tiny", "convnext_small", "convnext_base", "convnext_large",
       "regnet", *(f"regnet_{kind}_{size}" for kind, sizes in (("y", REGNET_Y), ("x", REGNET_X)) for size in sizes),
       "mobilenetv2", "mobilenet_v2", "mobilenetv3", "mobilenet_v3_large", "mobilenet_v3_small",
       "mnasnet", "mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3",
       "efficientnet", *(f"efficientnet_b{i}" for i in range(8)),
       "efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l",
       "densenet", "densenet121", "densenet161", "densenet169", "densenet201"]
MOBILE = [name for name in ZOO if name.startswith(("mobilenet", "mnasnet", "efficientnet"))]
VGG = [name for name in ZOO if name.startswith("vgg")]
SEGMENTERS = {"unet", "unet_padded", "fcn", "fcn_resnet50", "fcn_resnet101",
              "deeplabv3", "deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet",
              "deeplabv3_mobilenet_v3_large", "lraspp", "lraspp_mobilenet_v3_large"}

# Reference entries that are a built-in with parameters set.
VARIANTS = {"googlenet_aux": ("googlenet", {"aux_logits": True})}

# Paper figures (reference/README.md): exact counts, and VGG's Table 2 in millions.
PAPER_EXACT = {"lenet5": 61_706, "alexnet_paper": 62_378_344}
PAPER_MILLIONS = {"vgg11": 133, "vgg_a_lrn": 133, "vgg13": 133, "vgg_c": 134, "vgg16": 138, "vgg19": 144}
# He et al. 2015, Table 6: ResNet-20 0.27M, ResNet-56 0.85M.
CIFAR_MILLIONS = {"resnet20": 0.27, "resnet56": 0.85}

# A small input per built-in for the forward pass: (parameters to compile with, input).
SMALL = {
    "lenet5": ({}, (2, 1, 32, 32)),
    "alexnet": ({"size": 64}, (2, 3, 64, 64)),
    "alexnet_paper": ({}, (1, 3, 227, 227)),
    "zfnet": ({}, (1, 3, 224, 224)),
    "googlenet": ({"size": 64}, (2, 3, 64, 64)),
    "cifar_resnet": ({}, (2, 3, 32, 32)),
    "resnet20": ({}, (2, 3, 32, 32)),
    "resnet56": ({}, (2, 3, 32, 32)),
    "preact_resnet18": ({}, (2, 3, 32, 32)),
    "unet": ({"pad": 1, "size": 32}, (2, 1, 32, 32)),
    "unet_padded": ({"size": 32, "base": 8}, (2, 3, 32, 32)),
    "localizer": ({}, (2, 1, 64, 64)),
    **{name: ({"size": 32}, (1, 3, 32, 32)) for name in ("fcn", "fcn_resnet50", "fcn_resnet101")},
    **{name: ({"size": 32}, (2, 3, 32, 32)) for name in ("deeplabv3", "deeplabv3_resnet50", "deeplabv3_resnet101",
                                                          "deeplabv3_mobilenet", "deeplabv3_mobilenet_v3_large",
                                                          "lraspp", "lraspp_mobilenet_v3_large")},
    "inception_v3": ({"size": 75, "aux_logits": False}, (1, 3, 75, 75)),  # 75x75: torchvision's smallest
    **{name: ({"size": 32}, (1, 3, 32, 32)) for name in ("convnext", "convnext_tiny", "convnext_small", "convnext_base",
                                                          "convnext_large")},
    **{name: ({"size": 64}, (2, 3, 64, 64)) for name in ("squeezenet", "squeezenet1_0", "squeezenet1_1")},
    **{name: ({"size": 32}, (1, 3, 32, 32)) for name in ("densenet", "densenet121", "densenet161", "densenet169",
                                                          "densenet201")},
    **{name: ({"size": 32}, (2, 3, 32, 32)) for name in ("shufflenet_v2", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0",
                                                          "shufflenet_v2_x1_5", "shufflenet_v2_x2_0")},
    **{name: ({"size": 32}, (2, 3, 32, 32)) for name in VGG},
    **{name: ({"size": 32}, (2, 3, 32, 32)) for name in ZOO if name.startswith("regnet")},
    **{name: ({"size": 32}, (2, 3, 32, 32)) for name in ZOO if name.startswith(("resnet", "resnext", "wide_"))
       and name not in ("resnet20", "resnet56")},
    **{name: ({"size": 32}, (1, 3, 32, 32)) for name in MOBILE},
}


def meta_build(name: str, **params):
    """The generated module, its tensors on the meta device (shapes only, no memory)."""
    with torch.device("meta"):
        return cnndsl.build(name, **params)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_the_zoo_is_the_builtins():
    assert sorted(ZOO) == sorted(builtins())
    assert set(SMALL) == set(ZOO)


@pytest.mark.parametrize("name", ZOO)
def test_builtin_compiles_without_a_warning(name):
    compiled = compile_network(load(name), {})
    assert compiled.warnings == []


def _title_line(name: str) -> str:
    """A spec file's first line; a variant's: the line above its declaration."""
    lines = (ROOT / "specs" / f"{catalog()[name].family}.cnn").read_text().splitlines()
    if name == catalog()[name].family:
        return lines[0]
    return lines[next(i for i, line in enumerate(lines) if line.startswith(f"network {name} =")) - 1]


def test_every_builtin_has_a_title_line_that_list_shows():
    result = run_cli("list")
    assert result.returncode == 0, result.stderr
    for name in ZOO:
        first = _title_line(name)
        match = re.fullmatch(r"# (\S.*?): (\S.*)", first)
        assert match, f"{name}: title line {first!r} is not '# Title: description'"
        line = next((line for line in result.stdout.splitlines() if line.split()[:1] == [name]), None)
        assert line is not None and line.split(None, 1)[1] == first[2:], (name, line)


def test_blocks_of_the_same_name_are_the_same_in_every_spec():
    """No import yet: each spec defines its blocks, and a block name means one thing."""
    seen: dict[str, tuple[str, str]] = {}
    for name in sorted({catalog()[name].family for name in ZOO}):
        text = (ROOT / "specs" / f"{name}.cnn").read_text()
        for match in re.finditer(r"^block (\w+)\(.*?^\}$", text, re.M | re.S):
            block, body = match.group(1), match.group(0)
            if block in seen:
                assert body == seen[block][1], f"block {block} differs in {name} and {seen[block][0]}"
            else:
                seen[block] = (name, body)
    assert {"BasicBlock", "Bottleneck", "BasicConv", "Inception"} <= set(seen)


# The largest variants' forwards allocate gigabytes on the CPU; their shapes are the
# checker's and their state_dicts are tested without memory (tests/test_families.py).
HUGE = {"regnet_y_128gf", "regnet_y_32gf", "regnet_x_32gf", "regnet_y_16gf"}


@pytest.mark.parametrize("name", [name for name in ZOO if name not in HUGE])
def test_forward_pass_gives_the_expected_shape(name):
    """A real CPU forward on a small input (weights left uninitialised: only shapes matter)."""
    params, shape = SMALL[name]
    params = {**params, "num_classes": 7}
    compiled = compile_network(load(name), params)
    model = meta_build(name, **params).to_empty(device="cpu").eval()
    with torch.no_grad():
        y = model(torch.zeros(shape))
    if compiled.network.outputs:  # named outputs: a dict, its class scores under `scores`
        assert {k: tuple(v.shape[1:]) for k, v in y.items()} == compiled.network.output_shapes
        main = "scores" if "scores" in y else "out"  # a localiser's class scores, a segmenter's
        y = y[main]
        out = compiled.network.output_shapes[main]
    else:
        out = compiled.network.body.stats.out_shape
    assert tuple(y.shape) == (shape[0], *out)
    assert out == ((7, *shape[2:]) if name in SEGMENTERS else (7,))  # class scores, or a score per pixel
    assert tuple(shape[1:]) == compiled.network.input


def test_googlenet_aux_logits_while_training():
    model = meta_build("googlenet", aux_logits=True, size=64, num_classes=5).to_empty(device="cpu").train()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 64, 64))
    assert isinstance(out, tuple) and [tuple(t.shape) for t in out] == [(2, 5)] * 3
    model.eval()
    with torch.no_grad():
        assert tuple(model(torch.zeros(2, 3, 64, 64)).shape) == (2, 5)
    assert not any(key.startswith("aux") for key in meta_build("googlenet").state_dict())


@pytest.mark.parametrize("name", VGG)
def test_vgg_on_cifar_size(name):
    """On 3x32x32 the features end at 512x1x1; torchvision's adaptive pool repeats that to
    7x7 (so the classifier, and the weights, stay the same), and the checker says so."""
    compiled = compile_network(load(name), {"size": 32})
    assert compiled.network.input == (3, 32, 32)
    assert [w.code for w in compiled.warnings] == ["upsample"]
    assert "enlarges a 1x1 input" in compiled.warnings[0].message
    layers = {row.path: row.layer for row in rows(compiled.network)}
    assert layers["avgpool"].stats.in_shape == (512, 1, 1)
    assert layers["classifier.0"].stats.in_shape == (512, 7, 7)


def test_resnet50_build_returns_a_ready_module():
    model = cnndsl.build("resnet50", num_classes=10)
    assert isinstance(model, torch.nn.Module)
    assert all(p.device.type == "cpu" and p.is_floating_point() for p in model.parameters())
    assert model.fc.out_features == 10
    with torch.no_grad():
        y = model.eval()(torch.randn(1, 3, 64, 64))
    assert tuple(y.shape) == (1, 10) and torch.isfinite(y).all()


# -- parameter counts ---------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(set(REFERENCE) - set(VARIANTS)))
def test_parameter_count_is_torchvisions(name):
    assert n_params(meta_build(name)) == REFERENCE[name]["num_params"]


@pytest.mark.parametrize("name", sorted(PAPER_EXACT))
def test_parameter_count_is_the_papers(name):
    model = meta_build(name)
    assert n_params(model) == PAPER_EXACT[name]
    assert compile_network(load(name)).network.body.stats.params == PAPER_EXACT[name]


@pytest.mark.parametrize("name", sorted(PAPER_MILLIONS))
def test_vgg_parameter_count_is_table_2(name):
    assert round(n_params(meta_build(name)) / 1e6) == PAPER_MILLIONS[name]


@pytest.mark.parametrize("name", sorted(CIFAR_MILLIONS))
def test_cifar_resnet_parameter_count(name):
    assert round(n_params(meta_build(name)) / 1e6, 2) == CIFAR_MILLIONS[name]


def test_cifar_resnet_depth_is_6n_plus_2():
    """Section 4.2: 6n + 2 weighted layers (convolutions and the fc); option A adds none."""
    for name, n in (("resnet20", 3), ("resnet56", 9)):
        weights = [k for k, v in meta_build(name).state_dict().items() if k.endswith("weight") and v.dim() in (2, 4)]
        assert len(weights) == 6 * n + 2 == int(name[6:])


def test_zfnet_is_the_notes_alexnet_with_the_papers_sizes():
    """Notes: CONV1 7x7 stride 2, CONV3-5 512/1024/512 filters. Zeiler and Fergus, Figure 3:
    110x110x96 after CONV1, 55x55 after pool 1, 26x26x256 after CONV2, 13x13, 6x6."""
    compiled = compile_network(load("zfnet"))
    layers = [row.layer for row in rows(compiled.network)]
    convs = [layer for layer in layers if layer.kind == "conv"]
    pools = [layer for layer in layers if layer.kind == "maxpool"]
    assert [(c.values["size"], c.values["stride"]) for c in convs][:1] == [(7, 2)]
    assert [c.values["filters"] for c in convs] == [96, 256, 512, 1024, 512]
    assert convs[0].stats.out_shape == (96, 110, 110)
    assert convs[1].stats.out_shape == (256, 26, 26)
    assert [p.stats.out_shape[1] for p in pools] == [55, 13, 6]
    # The notes' count per CONV layer: F*F*D1 weights per filter, K filters, K biases.
    for conv in convs:
        f, k, d1 = conv.values["size"], conv.values["filters"], conv.stats.in_shape[0]
        assert conv.stats.params == f * f * d1 * k + k
    assert n_params(meta_build("zfnet")) == compiled.network.body.stats.params


def test_preact_resnet18_has_resnet18s_convolutions():
    """Same 3x3 convolutions and 1x1 projections as torchvision's ResNet-18, on a 3x3 stem."""
    ours = {k: list(v.shape) for k, v in meta_build("preact_resnet18").state_dict().items()}
    theirs = {k: s for k, s in REFERENCE["resnet18"]["state_dict"] if re.search(r"conv\d\.weight|downsample\.0", k)}
    assert ours["conv1.weight"] == [64, 3, 3, 3]
    del theirs["conv1.weight"]
    for key, shape in theirs.items():
        assert ours[key] == shape, key
    # Pre-activation: no BN in the projection, no BN after the stem, one BN after the last unit.
    assert not any(re.search(r"downsample\.1|^bn1\.", k) for k in ours)
    assert ours["bn.weight"] == [512]


# -- state_dict: torchvision's keys, order and shapes ---------------------------------

def _reference_build(entry: str):
    name, params = VARIANTS.get(entry, (entry, {}))
    return meta_build(name, **params)


def _listing(model) -> list:
    return [[key, list(value.shape)] for key, value in model.state_dict().items()]


@pytest.mark.parametrize("entry", [e for e in REFERENCE if e not in VARIANTS])
def test_state_dict_is_torchvisions(entry):
    model = _reference_build(entry)
    assert all(p.device.type == "meta" for p in model.parameters())
    assert _listing(model) == REFERENCE[entry]["state_dict"]
    assert n_params(model) == REFERENCE[entry]["num_params"]


def test_googlenet_aux_state_dict_order_is_torchvisions():
    assert _listing(_reference_build("googlenet_aux")) == REFERENCE["googlenet_aux"]["state_dict"]


# -- the notes' listings ------------------------------------------------------------

def _notes_alexnet() -> list[str]:
    """The notes' "Full (simplified) AlexNet architecture", without the bold marks."""
    for path in sorted(SEEDS.glob("*.txt")):
        lines = [line.strip().replace("**", "") for line in path.read_text().splitlines()]
        if "[227x227x3] INPUT" in lines:
            start = lines.index("[227x227x3] INPUT")
            listing = [line for line in lines[start:] if line.startswith("[")]
            end = next(i for i, line in enumerate(listing) if "FC8" in line)
            return listing[:end + 1]
    raise AssertionError("no AlexNet listing in the seeds")


def test_alexnet_paper_summary_is_the_notes_listing():
    notes = _notes_alexnet()
    assert notes[1] == "[55x55x96] CONV1: 96 11x11 filters at stride 4, pad 0" and len(notes) == 14
    result = run_cli("summary", "alexnet_paper", "--style", "cs231n")
    assert result.returncode == 0, result.stderr
    listing = result.stdout.split("\n\n")[0].splitlines()
    assert listing == notes
    assert "62,378,344 with biases" in result.stdout


def test_alexnet_paper_layer_counts_are_the_notes():
    """Notes: CONV1 has (11*11*3)*96 = 35K weights; 34,944 with biases. FC6 37,752,832."""
    model = meta_build("alexnet_paper")
    assert n_params(model.conv1) == 11 * 11 * 3 * 96 + 96 == 34_944
    assert n_params(model.fc6) == 37_752_832


# -- the language, as the zoo's specs use it ------------------------------------------

def test_a_comment_holding_an_arrow_stays_a_comment():
    text = "network N() {\n    input 3x8x8\n    conv(4, 3)\n    # a -> b\n    relu\n}\n"
    compiled = compile_network(source_from_text(text, "arrow.cnn"))
    assert [row.layer.kind for row in rows(compiled.network)] == ["conv", "relu"]


def test_projection_shortcut_does_not_warn_about_fit():
    """A 1x1 stride-2 projection on an even map skips pixels by design."""
    compiled = compile_network(load("resnet18"), {"size": 224})
    assert compiled.warnings == []
    assert any(".downsample." in row.path for row in rows(compiled.network))


def test_generated_folder_has_one_file_per_builtin():
    """tests/test_codegen.py compares each generated/NAME.py with `cnndsl compile NAME`."""
    assert sorted(p.stem for p in (ROOT / "generated").glob("*.py")) == sorted(ZOO)
