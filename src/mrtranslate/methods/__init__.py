"""Translation methods: each owns its networks and loss weights and exposes its steps.

The registry maps the CLI names to builders; modules are imported explicitly below.
"""

from __future__ import annotations

from mrtranslate.methods.base import Method
from mrtranslate.methods.cyclegan import CycleGAN
from mrtranslate.methods.supervised import GeneratorsS, Simple
from mrtranslate.methods.unit import Unit

METHODS: dict[str, type[Method]] = {
    "cyclegan": CycleGAN,
    "cyclegan_s": CycleGAN,
    "unit": Unit,
    "generators_s": GeneratorsS,
    "simple": Simple,
}

DISPLAY_NAMES = {
    "cyclegan": "CycleGAN",
    "cyclegan_s": "CycleGAN_s",
    "unit": "UNIT",
    "generators_s": "Generators_s",
    "simple": "Simple",
}

__all__ = ["DISPLAY_NAMES", "METHODS", "Method", "build_method"]


def build_method(name: str, net, loss, image_shape: tuple[int, int]) -> Method:
    """Build the method called ``name`` from its network and loss sub-configs."""
    if name not in METHODS:
        raise KeyError(f"unknown model {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[name].from_config(name=name, net=net, loss=loss, image_shape=image_shape)
