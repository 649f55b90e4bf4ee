"""Translation methods: each owns its networks and loss weights and exposes its steps.

Models are listed once, in :mod:`mrtranslate.methods.registry`: each method module defines the
``SPEC`` of its model(s) and the lines below register them, in the paper's order (pix2pix,
Isola et al. 2017, the field's paired baseline, after the paper's five).
"""

from __future__ import annotations

from mrtranslate.methods import cyclegan, pix2pix, supervised, unit
from mrtranslate.methods.base import Method
from mrtranslate.methods.registry import (
    ModelSpec,
    get,
    make_config,
    names,
    register,
    specs,
    study_names,
)

register(cyclegan.SPEC)
register(cyclegan.SPEC_S)
register(unit.SPEC)
register(supervised.SPEC_GENERATORS_S)
register(supervised.SPEC_SIMPLE)
register(pix2pix.SPEC)

__all__ = [
    "Method",
    "ModelSpec",
    "build_method",
    "display_name",
    "get",
    "make_config",
    "names",
    "specs",
    "study_names",
]


def display_name(name: str) -> str:
    """The name of model ``name`` as shown in reports (``cyclegan_s`` -> ``CycleGAN_s``)."""
    return get(name).display_name


def build_method(name: str, net, loss, image_shape: tuple[int, int]) -> Method:
    """Build the model called ``name`` from its network and loss sub-configs."""
    spec = get(name)
    return spec.method.from_config(spec=spec, net=net, loss=loss, image_shape=image_shape)
