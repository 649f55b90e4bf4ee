"""The model registry: one :class:`ModelSpec` per model, the only list of models there is.

A spec says everything the rest of the package needs to know about a model: its CLI and display
names, whether it trains on pairs, the method class that builds it, and its configuration: its
own ``net`` and ``loss`` settings classes (the paper's values as defaults) and the quick and tiny
profiles' values, as ``section.key`` values. Config, CLI, help texts, the study, the bench and
the tests iterate over :func:`specs`.

Adding a model: write its method, its settings and its ``SPEC`` in a new module of this package,
and add one line to :mod:`mrtranslate.methods` that registers it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mrtranslate.config import (
    LossSettings,
    NetSettings,
    RunConfig,
    apply_values,
    check_profile,
)

# The quick profile's shared settings (the CPU profile behind ``mrtranslate study``).
QUICK_COMMON: dict[str, Any] = {
    "train.epochs": 6,
    "train.batch_size": 4,
    "train.downsample": 0,  # auto: 4x for the 304x256 phantom (76x64), less for small images
}

# The tiny profile (tests): small images, a few steps; the same for every model (each spec adds
# its small networks in ``tiny``).
TINY_COMMON: dict[str, Any] = {
    "train.epochs": 2,
    "train.decay_epochs": 1,
    "train.batch_size": 2,
    "train.steps_per_epoch": 3,
    "train.downsample": 2,
    "train.log_every": 1,
}


@dataclass(frozen=True)
class ModelSpec:
    """Everything about one model that is not in its method class.

    Attributes:
        name: the CLI name (``cyclegan_s``).
        display_name: as shown in reports (``CycleGAN_s``).
        paired: trains on paired T1w/T2w images (supervised) or not.
        method: the :class:`~mrtranslate.methods.base.Method` subclass; it is built with
            ``method.from_config(spec=..., net=..., loss=..., image_shape=...)``.
        summary: one line for ``mrtranslate models`` and help texts.
        net_settings, loss_settings: the model's own settings classes (the ``net`` and
            ``loss`` sections of its configuration; defaults: the paper's values).
        defaults: config values of this model in every profile (``section.key`` -> value).
        paper: config values of the paper profile only.
        quick: config values of the quick profile only (on top of :data:`QUICK_COMMON`).
        tiny: config values of the tiny profile only (on top of :data:`TINY_COMMON`): small
            networks for the tests.
        in_study: trained by ``mrtranslate study`` when ``--models`` is not given (the
            paper's five; a model joins once measurements say it earns its share of a budget).
    """

    name: str
    display_name: str
    paired: bool
    method: type
    summary: str
    net_settings: type[NetSettings] = NetSettings
    loss_settings: type[LossSettings] = LossSettings
    defaults: dict[str, Any] = field(default_factory=dict)
    paper: dict[str, Any] = field(default_factory=dict)
    quick: dict[str, Any] = field(default_factory=dict)
    tiny: dict[str, Any] = field(default_factory=dict)
    in_study: bool = True

    def overrides(self, profile: str) -> dict[str, Any]:
        """The ``section.key`` values of ``profile`` for this model, in the order applied."""
        check_profile(profile)
        extra = {
            "paper": self.paper,
            "quick": {**QUICK_COMMON, **self.quick},
            "tiny": {**TINY_COMMON, **self.tiny},
        }
        return {**self.defaults, **extra[profile]}


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` (a new name; the order of registration is the order shown everywhere)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"a model called {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a model (for tests that register a throw-away one)."""
    _REGISTRY.pop(name, None)


def specs() -> list[ModelSpec]:
    """All registered models, in registration order (the paper's order)."""
    return list(_REGISTRY.values())


def names() -> list[str]:
    """The CLI names of all registered models."""
    return list(_REGISTRY)


def study_names() -> list[str]:
    """The models ``mrtranslate study`` trains when ``--models`` is not given."""
    return [name for name, spec in _REGISTRY.items() if spec.in_study]


def get(name: str) -> ModelSpec:
    """The spec called ``name``; ``KeyError`` with the valid names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; choose from {', '.join(_REGISTRY)}") from None


def make_config(model: str, profile: str = "quick") -> RunConfig:
    """The configuration of ``model`` under ``profile``.

    - ``paper``: the paper's settings: full-size images, batch 1, CycleGAN(_s) 200 epochs with
      linear decay over the last 100, UNIT 100 epochs at lr 1e-4 with weight decay and dropout,
      supervised models 200 epochs with Adam's Keras defaults as in the seed code.
    - ``quick``: the CPU settings behind ``mrtranslate study``: images down-sampled up to 4x
      (76x64 for the default phantom), narrower networks, batch 4 and 6 epochs; the study's
      planner then sets the steps and image size to fit its time budget.
    - ``tiny``: for tests: small images and networks, a few steps.

    Raises:
        ValueError: an unknown model or profile.
    """
    check_profile(profile)
    try:
        spec = get(model)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None
    cfg = RunConfig(
        model=model, profile=profile, net=spec.net_settings(), loss=spec.loss_settings()
    )
    apply_values(cfg, spec.overrides(profile))
    return cfg


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """The configuration recorded in a run folder (``config.json`` or a checkpoint), read with
    its model's settings classes; older runs' shared flat sections load too.

    Raises:
        ValueError: an unknown model, a missing section or a setting the model does not have.
    """
    model = data.get("model")
    if model not in _REGISTRY:
        raise ValueError(f"the recorded model {model!r} is not one of {', '.join(_REGISTRY)}")
    spec = _REGISTRY[model]
    try:
        return RunConfig.from_dict(data, spec.net_settings, spec.loss_settings)
    except KeyError as exc:
        raise ValueError(f"no {exc.args[0]} in the recorded configuration") from None
    except TypeError as exc:
        raise ValueError(f"the recorded configuration does not fit: {exc}") from None
