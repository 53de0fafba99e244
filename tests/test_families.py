"""Every torchvision model of the reference files is a built-in that computes torchvision's
function: the same state_dict (keys in order, shapes), the same parameter count, the same
fingerprint (../shared/reference/fingerprint.py: the outputs after a seeded fill, float64);
and every variant torchvision ships in these families has its published parameter count
(tests/data/torchvision_num_params.json, read from torchvision's weight tables by
tests/data/extract_num_params.py).

The reference entries are those of torchvision_families.json and torchvision_fingerprints.json.
An entry is the built-in its constructor calls (`torchvision.models.NAME(...)`), with the
constructor's keyword arguments that the built-in has as parameters (`aux_logits=False`).
Families still being written are listed, not failed: the tests run over the built-ins
that exist, and `test_what_has_no_builtin_yet` prints (and bounds) the rest.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

import cnndsl
from cnndsl.compiler import builtins, compile_network, load

from conftest import ROOT

torch = pytest.importorskip("torch")

SHARED = Path("/work/shared")
if not SHARED.is_dir():  # a checkout beside the shared folder
    SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(SHARED / "reference"))
import fingerprint  # noqa: E402  (../shared/reference/fingerprint.py)

FAMILIES = json.loads((SHARED / "reference" / "torchvision_families.json").read_text())
FINGERPRINTS = json.loads((SHARED / "reference" / "torchvision_fingerprints.json").read_text())
REFERENCE = {**FINGERPRINTS, **FAMILIES}
PUBLISHED = json.loads((ROOT / "tests" / "data" / "torchvision_num_params.json").read_text())["num_params"]


def constructor(entry: str) -> tuple[str, dict]:
    """`torchvision.models.inception_v3(aux_logits=False, init_weights=False)`: the
    builder's name and its keyword arguments."""
    call = ast.parse(REFERENCE[entry]["constructor"], mode="eval").body
    return call.func.attr, {k.arg: ast.literal_eval(k.value) for k in call.keywords}


def parameters(name: str) -> set[str]:
    return {p for p, _ in compile_network(load(name)).network.params}


def arguments(entry: str) -> tuple[str, dict]:
    """The built-in of a reference entry and the parameters to give it."""
    name, kwargs = constructor(entry)
    known = parameters(name)
    return name, {k: v for k, v in kwargs.items() if k in known}


BUILT = [entry for entry in REFERENCE if constructor(entry)[0] in builtins()]
MISSING = [entry for entry in REFERENCE if entry not in BUILT]
COUNTED = [name for name in PUBLISHED if name in builtins()]


def meta_build(name: str, **params):
    with torch.device("meta"):
        return cnndsl.build(name, **params)


def test_what_has_no_builtin_yet():
    """Listed, not failed: the families in progress. The 16 classic ones are all built in."""
    print(f"\nreference entries with no built-in yet ({len(MISSING)}): {', '.join(MISSING) or 'none'}")
    unpublished = [name for name in PUBLISHED if name not in builtins()]
    print(f"published variants with no built-in yet ({len(unpublished)}): {', '.join(unpublished) or 'none'}")
    assert not set(MISSING) & set(FINGERPRINTS)
    assert set(MISSING) <= set(FAMILIES)


@pytest.mark.parametrize("entry", BUILT)
def test_state_dict_and_parameter_count_are_torchvisions(entry):
    name, params = arguments(entry)
    model = meta_build(name, **params)
    listing = [[key, list(value.shape)] for key, value in model.state_dict().items()]
    assert listing == REFERENCE[entry]["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == REFERENCE[entry]["num_params"]
    assert compile_network(load(name), params).network.body.stats.params == REFERENCE[entry]["num_params"]


@pytest.mark.parametrize("entry", BUILT)
def test_fingerprint_is_torchvisions(entry):
    """The same function: outputs after the reference's seeded fill, float64, two scales.
    The model is built without its initialisation (on the meta device, then given memory in
    float64), which the fill would overwrite: a VGG's init and float32 copy cost seconds."""
    name, params = arguments(entry)
    model = meta_build(name, **params).to(torch.float64).to_empty(device="cpu")  # the fill sets every value
    tensors = [key for key, _ in (*model.named_parameters(), *model.named_buffers())]
    assert sorted(tensors) == sorted(model.state_dict())  # so no tensor is left as to_empty made it
    got = fingerprint.fingerprint(model, tuple(REFERENCE[entry]["input"][1:]))
    fingerprint.assert_same(got, REFERENCE[entry]["fingerprint"])


@pytest.mark.parametrize("name", COUNTED)
def test_parameter_count_is_the_published_one(name):
    """The checker's count (no build) against torchvision's weight tables."""
    assert compile_network(load(name)).network.body.stats.params == PUBLISHED[name]


def test_published_counts_agree_with_the_reference_files():
    """The extraction read the right numbers: where a reference entry is the builder's
    default model, its count is the published one."""
    checked = 0
    for entry in REFERENCE:
        name, kwargs = constructor(entry)
        if not kwargs and name in PUBLISHED:
            assert PUBLISHED[name] == REFERENCE[entry]["num_params"], name
            checked += 1
    assert checked >= 25
    assert PUBLISHED["inception_v3"] == REFERENCE["inception_v3_aux"]["num_params"]  # torchvision ships the aux head
