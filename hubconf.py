"""torch.hub entry points: every built-in spec, built by `cnndsl.build`.

    model = torch.hub.load("path/to/cnndsl", "resnet50", source="local")
    model = torch.hub.load("path/to/cnndsl", "resnet50", source="local", weights="resnet50.pth")
    model = torch.hub.load("path/to/cnndsl", "resnet20", source="local", num_classes=100)

Keyword arguments are the spec's parameters (`num_classes`, `aux_logits`, ...) and
`weights=PATH`, a state_dict in torchvision's format (see `cnndsl.build`).
Each entry point is a function of this file named after its built-in.
"""

import cnndsl as _cnndsl
from cnndsl import resources as _resources

dependencies = ["torch", "lark", "jinja2", "click"]


def _entry(name: str):
    def entry(weights=None, **params):
        return _cnndsl.build(name, weights=weights, **params)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = (_resources.catalog()[name].about or name) + \
        "\n\nKeyword arguments: the spec's parameters, and weights=PATH (a state_dict)."
    return entry


globals().update({_name: _entry(_name) for _name in _resources.builtins()})
