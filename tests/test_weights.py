"""torchvision's habits: `cnndsl.build(NAME, weights=PATH)` loads a state_dict file as
torchvision publishes its weights (`torch.save(model.state_dict())`, read with
`weights_only=True`) or a safetensors file, strictly; with `num_classes` it keeps all
but the head and says so; and `torch.hub.load(CHECKOUT, NAME, source="local")`.
The torchvision-format files are made here: the built-ins' state_dict keys, order and
shapes are torchvision's (tests/test_zoo.py checks them against the reference)."""

from __future__ import annotations

import warnings
from collections import OrderedDict

import pytest

torch = pytest.importorskip("torch")

import cnndsl  # noqa: E402
from cnndsl.errors import CnndslError  # noqa: E402

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A resnet18 state_dict unlike a fresh initialisation, saved as torchvision saves one."""
    torch.manual_seed(3)
    model = cnndsl.build("resnet18")
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.05, 0.05)
    state = OrderedDict((k, v.clone()) for k, v in model.state_dict().items())
    path = tmp_path_factory.mktemp("weights") / "resnet18-f37072fd.pth"
    torch.save(state, path)
    return state, path


def same_state(a, b, skip=()) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a if k not in skip)


def test_a_torchvision_pth_loads_strictly(trained):
    state, path = trained
    model = cnndsl.build("resnet18", weights=path)
    assert same_state(model.state_dict(), state)


def test_a_safetensors_file_loads(trained, tmp_path):
    from safetensors.torch import save_file

    state, _ = trained
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "resnet18.safetensors")
    model = cnndsl.build("resnet18", weights=str(tmp_path / "resnet18.safetensors"))
    assert same_state(model.state_dict(), state)


def test_a_training_checkpoint_holding_the_state_dict_under_model_loads(trained, tmp_path):
    state, _ = trained
    torch.save({"model": state, "epoch": 89}, tmp_path / "checkpoint.pth")
    assert same_state(cnndsl.build("resnet18", weights=tmp_path / "checkpoint.pth").state_dict(), state)


def test_missing_and_unexpected_keys_are_named(trained, tmp_path):
    state, _ = trained
    renamed = OrderedDict(("head.weight" if k == "fc.weight" else k, v) for k, v in state.items())
    torch.save(renamed, tmp_path / "renamed.pth")
    with pytest.raises(CnndslError) as info:
        cnndsl.build("resnet18", weights=tmp_path / "renamed.pth")
    message = str(info.value)
    assert "1 missing (fc.weight)" in message and "1 unexpected (head.weight)" in message
    assert "ResNet18" in message and info.value.hint and "state_dict" in info.value.hint


def test_other_weights_are_refused_with_the_keys_counted(trained):
    with pytest.raises(CnndslError) as info:
        cnndsl.build("resnet34", weights=trained[1])
    assert "missing (layer1.2.conv1.weight" in str(info.value) and "and " in str(info.value)


def test_num_classes_keeps_everything_but_the_head_and_says_so(trained):
    state, path = trained
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = cnndsl.build("resnet18", num_classes=10, weights=path)
    said = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(said) == 1 and "everything but the head (fc.weight, fc.bias" in said[0]
    assert "1000 outputs in the file, num_classes=10" in said[0]
    assert model.fc.weight.shape == (10, 512)
    own = model.state_dict()
    assert all(torch.equal(own[k], state[k]) for k in state if not k.startswith("fc."))


def test_a_head_of_another_size_without_num_classes_is_an_error_with_the_way_out(trained, tmp_path):
    state, _ = trained
    small = OrderedDict(state)
    small["fc.weight"], small["fc.bias"] = state["fc.weight"][:10], state["fc.bias"][:10]
    torch.save(small, tmp_path / "ten.pth")
    with pytest.raises(CnndslError) as info:
        cnndsl.build("resnet18", weights=tmp_path / "ten.pth")
    assert "2 of another shape (fc.weight: file 10x512, model 1000x512" in str(info.value)
    assert "num_classes=N" in info.value.hint
    assert cnndsl.build("resnet18", num_classes=10, weights=tmp_path / "ten.pth").fc.weight.shape == (10, 512)


def test_a_pickled_whole_model_is_refused_by_weights_only(tmp_path):
    import os

    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)), tmp_path / "whole.pth")
    (tmp_path / "junk.pth").write_bytes(os.urandom(64))
    for name in ("whole.pth", "junk.pth"):
        with pytest.raises(CnndslError) as info:
            cnndsl.build("lenet5", weights=tmp_path / name)
        assert str(info.value).startswith(f"cannot read weights from {tmp_path / name}")
    with pytest.raises(CnndslError, match="no weights file"):
        cnndsl.build("lenet5", weights=tmp_path / "absent.pth")


def test_torch_hub_load_from_the_checkout(trained):
    state, path = trained
    model = torch.hub.load(str(ROOT), "resnet18", source="local", weights=path)
    assert same_state(model.state_dict(), state)
    tiny = torch.hub.load(str(ROOT), "resnet20", source="local", num_classes=100)
    assert tiny.fc.out_features == 100 and type(tiny).__module__.startswith("cnndsl.built.resnet20_")
    with pytest.raises(CnndslError, match="do not fit ResNet20"):
        torch.hub.load(str(ROOT), "resnet20", source="local", weights=path)


# ---------------------------------------------------------------- the head: one rule for build and --init
def test_the_heads_are_the_last_layer_and_the_auxiliary_classifiers_of_its_form():
    from cnndsl.weights import head_modules

    assert head_modules(cnndsl.build("lenet5")) == ["output"]
    assert head_modules(cnndsl.build("resnet18")) == ["fc"]
    assert head_modules(cnndsl.build("vgg11")) == ["classifier.6"]
    assert head_modules(cnndsl.build("googlenet", aux_logits=True)) == ["aux1.fc2", "aux2.fc2", "fc"]
    flat = "network Flat(num_classes = 4) {\n    input 1x8x8\n    conv(4, 3, pad=1) -> relu -> fc(num_classes)\n}\n"
    # a layer of the main chain is no head, even with as many channels as there are classes
    assert head_modules(cnndsl.build(flat)) == ["fc"]


def test_build_and_fine_tuning_take_the_same_head_and_refuse_the_same_misfits(tmp_path):
    from cnndsl.train.errors import CheckpointError
    from cnndsl.train.weights import load_state

    torch.manual_seed(0)
    source = cnndsl.build("googlenet", aux_logits=True)
    state = {f"module.{k}": v for k, v in source.state_dict().items()}  # as DDP saves it: both drop the prefix
    torch.save(state, tmp_path / "googlenet.pth")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        built = cnndsl.build("googlenet", aux_logits=True, num_classes=10, weights=tmp_path / "googlenet.pth")
    said = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    heads = ["aux1.fc2.weight", "aux1.fc2.bias", "aux2.fc2.weight", "aux2.fc2.bias", "fc.weight", "fc.bias"]
    assert len(said) == 1 and f"everything but the head ({', '.join(heads)}: 1000 outputs" in said[0]
    tuned = cnndsl.build("googlenet", aux_logits=True, num_classes=10)
    assert load_state(tuned, state, "googlenet.pth") == sorted(heads)
    own, file = built.state_dict(), source.state_dict()
    for key in ("conv1.conv.weight", "aux1.fc1.weight", "inception5b.branch4.1.bn.running_var"):
        assert torch.equal(own[key], file[key]) and torch.equal(tuned.state_dict()[key], file[key])
    assert own["fc.weight"].shape == (10, 1024) == tuned.state_dict()["fc.weight"].shape

    # the last layer's inputs differ (another backbone's width): no head rule explains that
    lenet = {k: v.clone() for k, v in cnndsl.build("lenet5").state_dict().items()}
    lenet["output.weight"] = lenet["output.weight"][:, :42]
    torch.save(lenet, tmp_path / "narrow.pth")
    with pytest.raises(CnndslError, match="of another shape \\(output.weight: file 10x42, model 10x84"):
        cnndsl.build("lenet5", num_classes=10, weights=tmp_path / "narrow.pth")
    with pytest.raises(CheckpointError, match="different shapes for output.weight"):
        load_state(cnndsl.build("lenet5"), lenet, "narrow.pth")
