"""lraspp_mobilenet_v3_large (issue 12): torchvision's state_dict keys, in order, with their
shapes, its published parameter count and its function.

There is no lraspp entry in shared/reference, so the expected keys are derived here from
torchvision's module structure as its sources write it:
- models/segmentation/lraspp.py: `lraspp_mobilenet_v3_large` builds
  `mobilenet_v3_large(dilated=True)`; `_lraspp_mobilenetv3` wraps its `features` in an
  IntermediateLayerGetter returning features[stage_indices[-4]] as "low" and the last as
  "high" (it keeps the features up to the last one: all of them), and LRASPPHead holds
  `cbr` (Conv2d(high, 128, 1, bias=False), BatchNorm2d, ReLU), `scale`
  (AdaptiveAvgPool2d(1), Conv2d(high, 128, 1, bias=False), Sigmoid), `low_classifier`
  (Conv2d(low, classes, 1)) and `high_classifier` (Conv2d(128, classes, 1)); the weights'
  meta gives num_params 3,221,538.
- models/mobilenetv3.py: `features` is a Conv2dNormActivation stem (conv, BN), one
  InvertedResidual per row of the large table (`block`: the 1x1 expansion where the
  expanded channels differ from the input's, the depthwise conv, SqueezeExcitation's fc1
  and fc2 with biases where the row says SE, the 1x1 projection; each conv then BN), and
  the last Conv2dNormActivation to 6 x 160; `_is_cn` is `cnf.stride > 1` (the table's
  stride, 2 even where `dilated` makes the depthwise stride 1).
"""

from __future__ import annotations

import pytest

import cnndsl
from cnndsl import ir

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

PUBLISHED = 3_221_538  # models/segmentation/lraspp.py, LRASPP_MobileNet_V3_Large_Weights meta num_params

# models/mobilenetv3.py, _mobilenet_v3_conf("mobilenet_v3_large"): input, kernel, expanded,
# out, SE, activation, stride (dilation 2 on the last three rows with dilated=True).
LARGE = [(16, 3, 16, 16, False, 1), (16, 3, 64, 24, False, 2), (24, 3, 72, 24, False, 1),
         (24, 5, 72, 40, True, 2), (40, 5, 120, 40, True, 1), (40, 5, 120, 40, True, 1),
         (40, 3, 240, 80, False, 2), (80, 3, 200, 80, False, 1), (80, 3, 184, 80, False, 1),
         (80, 3, 184, 80, False, 1), (80, 3, 480, 112, True, 1), (112, 3, 672, 112, True, 1),
         (112, 5, 672, 160, True, 2), (160, 5, 960, 160, True, 1), (160, 5, 960, 160, True, 1)]


def _make_divisible(v: float, divisor: int = 8) -> int:  # torchvision's models/_utils.py
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _bn(prefix: str, channels: int) -> list:
    return [[f"{prefix}.{k}", [] if k == "num_batches_tracked" else [channels]]
            for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]


def _conv_bn(prefix: str, out: int, cin: int, k: int) -> list:
    """A Conv2dNormActivation: `.0` the conv (no bias), `.1` the batch norm."""
    return [[f"{prefix}.0.weight", [out, cin, k, k]], *_bn(f"{prefix}.1", out)]


def torchvision_keys(classes: int = 21) -> list:
    keys = _conv_bn("backbone.0", 16, 3, 3)
    for i, (cin, k, expanded, out, se, _) in enumerate(LARGE, start=1):
        block, j = f"backbone.{i}.block", 0
        if expanded != cin:
            keys += _conv_bn(f"{block}.0", expanded, cin, 1)
            j = 1
        dw = f"{block}.{j}"
        keys += [[f"{dw}.0.weight", [expanded, 1, k, k]], *_bn(f"{dw}.1", expanded)]
        j += 1
        if se:
            squeeze = _make_divisible(expanded // 4, 8)
            keys += [[f"{block}.{j}.fc1.weight", [squeeze, expanded, 1, 1]], [f"{block}.{j}.fc1.bias", [squeeze]],
                     [f"{block}.{j}.fc2.weight", [expanded, squeeze, 1, 1]], [f"{block}.{j}.fc2.bias", [expanded]]]
            j += 1
        keys += _conv_bn(f"{block}.{j}", out, expanded, 1)
    keys += _conv_bn("backbone.16", 960, 160, 1)
    low, high, inter = 40, 960, 128
    keys += [["classifier.cbr.0.weight", [inter, high, 1, 1]], *_bn("classifier.cbr.1", inter),
             ["classifier.scale.1.weight", [inter, high, 1, 1]],
             ["classifier.low_classifier.weight", [classes, low, 1, 1]], ["classifier.low_classifier.bias", [classes]],
             ["classifier.high_classifier.weight", [classes, inter, 1, 1]], ["classifier.high_classifier.bias", [classes]]]
    return keys


def _count(keys: list) -> int:
    """Parameters, not buffers: batch norm's running statistics are left out."""
    total = 0
    for key, shape in keys:
        if key.rsplit(".", 1)[1] in ("running_mean", "running_var", "num_batches_tracked"):
            continue
        n = 1
        for d in shape:
            n *= d
        total += n
    return total


def test_the_derived_keys_hold_the_published_count():
    """The derivation above is torchvision's: its keys count the published 3,221,538, and the
    backbone's are mobilenet_v3_large's features (5,483,032 published, less its classifier)."""
    keys = torchvision_keys()
    assert _count(keys) == PUBLISHED
    backbone = _count([row for row in keys if row[0].startswith("backbone.")])
    assert backbone == 5_483_032 - (960 * 1280 + 1280) - (1280 * 1000 + 1000)
    # _lraspp_mobilenetv3's taps: the strided blocks (_is_cn) are features 2, 4, 7, 13
    stage_indices = [0] + [i for i, row in enumerate(LARGE, start=1) if row[5] > 1] + [len(LARGE) + 1]
    assert stage_indices == [0, 2, 4, 7, 13, 16] and stage_indices[-4] == 4 and LARGE[3][3] == 40


def test_lraspp_state_dict_is_torchvisions():
    with torch.device("meta"):
        model = cnndsl.build("lraspp_mobilenet_v3_large")
    listing = [[key, list(value.shape)] for key, value in model.state_dict().items()]
    assert listing == torchvision_keys()
    assert len(listing) == len(torchvision_keys()) == 319
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED
    compiled = cnndsl.compile_spec("lraspp_mobilenet_v3_large")
    assert compiled.network.body.stats.params == PUBLISHED
    (head,) = [n for n in compiled.network.body.items if isinstance(n, ir.BlockInstance)]
    assert head.reads == (("low", "backbone.4"),)  # the low tap, at output stride 8
    with torch.device("meta"):
        other = cnndsl.build("lraspp_mobilenet_v3_large", num_classes=5)
    assert [list(v.shape) for k, v in other.state_dict().items() if "_classifier" in k] == [
        [5, 40, 1, 1], [5], [5, 128, 1, 1], [5]]


class HandLRASPPHead(nn.Module):
    """torchvision's LRASPPHead, written from models/segmentation/lraspp.py."""

    def __init__(self, low_channels: int, high_channels: int, num_classes: int, inter_channels: int) -> None:
        super().__init__()
        self.cbr = nn.Sequential(nn.Conv2d(high_channels, inter_channels, 1, bias=False),
                                 nn.BatchNorm2d(inter_channels), nn.ReLU(inplace=True))
        self.scale = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(high_channels, inter_channels, 1, bias=False),
                                   nn.Sigmoid())
        self.low_classifier = nn.Conv2d(low_channels, num_classes, 1)
        self.high_classifier = nn.Conv2d(inter_channels, num_classes, 1)

    def forward(self, input: dict) -> torch.Tensor:
        low = input["low"]
        high = input["high"]
        x = self.cbr(high)
        s = self.scale(high)
        x = x * s
        x = nn.functional.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.low_classifier(low) + self.high_classifier(x)


class HandLRASPP(nn.Module):
    """torchvision's LRASPP over a features Sequential, IntermediateLayerGetter's taps
    ({"4": "low", "16": "high"}) written out."""

    def __init__(self, features: nn.Sequential, num_classes: int = 21) -> None:
        super().__init__()
        self.backbone = features
        self.classifier = HandLRASPPHead(40, 960, num_classes, 128)

    def forward(self, input: torch.Tensor) -> dict:
        features, x = {}, input
        for name, module in self.backbone.named_children():
            x = module(x)
            if name in ("4", "16"):
                features["low" if name == "4" else "high"] = x
        out = self.classifier(features)
        return {"out": nn.functional.interpolate(out, size=input.shape[-2:], mode="bilinear", align_corners=False)}


def test_lraspp_computes_torchvisions_function():
    """The generated module's output equals the hand-written LRASPP's loaded with the same
    state_dict (strict), on an input whose size is not the spec's."""
    torch.manual_seed(0)
    net = cnndsl.build("lraspp_mobilenet_v3_large").eval()
    with torch.no_grad():
        for module in net.modules():  # batch norm that does something
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    torch.manual_seed(1)  # another model's backbone (torchvision's features), other weights until loaded
    hand = HandLRASPP(cnndsl.build("lraspp_mobilenet_v3_large").backbone).eval()
    assert not torch.equal(hand.classifier.cbr[0].weight, net.classifier.cbr[0].weight)
    hand.load_state_dict(net.state_dict(), strict=True)
    x = torch.randn(2, 3, 96, 80)
    with torch.no_grad():
        got, want = net(x), hand(x)
    assert list(got) == ["out"] and got["out"].shape == (2, 21, 96, 80)
    difference = (got["out"] - want["out"]).abs().max().item()
    print(f"max abs difference {difference:.3g}")
    assert difference <= 1e-5, difference
    assert net.backbone[4](net.backbone[:4](x)).shape[-2:] == (12, 10)  # low: output stride 8
