"""Typed run configuration and validated ``--set key=value`` overrides.

A run's configuration is a :class:`RunConfig` with three sections: ``net`` and ``loss``, the
model's own settings (each model declares subclasses of :class:`NetSettings` and
:class:`LossSettings` in its method module, with the paper's values as defaults), and ``train``,
which every model shares. Every key can be overridden as ``section.key=value`` (for example
``--set train.epochs=3`` or ``--set net.context=3``). Unknown keys and values of the wrong type are
rejected. The values of each model under each profile (paper, quick, tiny) live with the model
(its ``ModelSpec``; :func:`mrtranslate.methods.registry.make_config`).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

PROFILES = ("paper", "quick", "tiny")
CONV_ALGORITHM_CHOICES = ("auto", "direct")
FAST_PATH_CHOICES = ("auto", "on", "off")
PRECISIONS = ("auto", "fp32", "bf16")
MAX_CONTEXT = 9  # slices of 2.5D context at most


def check_profile(profile: str) -> str:
    """``profile`` if it is one of :data:`PROFILES`, else a ``ValueError`` naming them."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    return profile


# The keys of the one flat net/loss section that every model shared before each model owned its
# settings (config.json and checkpoints of older runs hold all of them): on loading, the keys a
# model's settings do not have (and do not rename) are dropped, not reported as unknown.
LEGACY_KEYS = {
    "net": frozenset(
        {
            "gen_width",
            "gen_blocks",
            "gen_upsample",
            "disc_width",
            "unit_width",
            "unit_blocks",
            "unit_scales",
            "unit_disc_width",
            "unit_dropout",
            "unit_upsample",
            "simple_width",
        }
    ),
    "loss": frozenset(
        {
            "cycle",
            "supervised",
            "identity",
            "pool_size",
            "unit_adv",
            "unit_kl",
            "unit_rec",
            "unit_cycle",
            "unit_kl_cycle",
        }
    ),
}


@dataclass
class Settings:
    """A section of settings (``net`` or ``loss``) that a model extends with its own fields.

    Class attributes a subclass may set:
        positive: fields that must be > 0 (every number must be >= 0).
        choices: field -> the values it may take.
        renamed: old flat key (before each model owned its settings) -> this class's field.
    """

    positive: ClassVar[tuple[str, ...]] = ()
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}
    renamed: ClassVar[dict[str, str]] = {}

    def validate(self, section: str) -> None:
        """Check every field; ``section`` (``net`` or ``loss``) names the keys in errors."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str):
                allowed = self.choices.get(f.name)
                if allowed and value not in allowed:
                    raise ValueError(
                        f"{section}.{f.name} must be one of {', '.join(allowed)}, got {value!r}"
                    )
            elif value < 0 or (f.name in self.positive and value <= 0):
                bound = "positive" if f.name in self.positive else ">= 0"
                raise ValueError(f"{section}.{f.name} must be {bound}, got {value}")

    @classmethod
    def from_dict(cls, values: dict[str, Any], section: str) -> Settings:
        """The settings in ``values`` (a ``config.json`` section, possibly of an older run).

        Raises:
            ValueError: a key that is neither this model's nor an old shared one.
        """
        own = {f.name for f in dataclasses.fields(cls)}
        # The flat format (it holds an old name of this model's): a key that this model now
        # uses as a new name was another model's there (CycleGAN's "cycle" beside UNIT's
        # "unit_cycle"), so only the old name gives that field its value.
        flat = any(key in cls.renamed for key in values)
        taken = set(cls.renamed.values()) if flat else set()
        kept = {}
        for key, value in values.items():
            if key in taken:
                continue
            name = cls.renamed.get(key, key)
            if name in own:
                kept[name] = value
            elif key not in LEGACY_KEYS[section]:
                raise ValueError(f"unknown setting {section}.{key} for this model")
        return cls(**kept)


@dataclass
class NetSettings(Settings):
    """Network settings every model has: how the images enter the networks. A model's spec
    names its own subclass (widths, depths, ...) with the paper's values as defaults."""

    # 2.5D context: neighbouring slices given as channels (odd; 1 = the paper's single slice).
    # Every network maps a stack of `context` slices to the same stack translated; the centre
    # channel is the translation of the slice itself.
    context: int = 1
    # Brain voxels enter the networks at no less than this [0, 1] intensity, so dark tissue
    # (T1w CSF) differs from the background (0: the paper's plain scaling).
    brain_floor: float = 0.0
    # Whole volumes are translated slice by slice along this many planes and the translations
    # averaged voxel by voxel: 1 = axial slices (the paper); 3 = axial, coronal and sagittal
    # (needs near-cubic voxels and a run at its data's resolution; inference only).
    planes: int = 1

    def validate(self, section: str = "net") -> None:
        super().validate(section)
        if self.context < 1 or self.context % 2 == 0 or self.context > MAX_CONTEXT:
            raise ValueError(
                f"{section}.context must be an odd number of slices from 1 to {MAX_CONTEXT}, "
                f"got {self.context}"
            )
        if self.planes not in (1, 3):
            raise ValueError(f"{section}.planes must be 1 or 3, got {self.planes}")
        if not self.brain_floor < 0.5:
            raise ValueError(f"{section}.brain_floor must be in [0, 0.5), got {self.brain_floor}")


@dataclass
class LossSettings(Settings):
    """Loss settings every model has; a model's spec names its own subclass (its weights)."""

    # the supervised L1 inside the pair's brain mask only (the translation is judged, and
    # written, inside the brain only; off in the paper); models without a supervised term
    # ignore it
    brain_only: bool = False

    def validate(self, section: str = "loss") -> None:
        super().validate(section)


@dataclass
class TrainConfig:
    """Optimisation, data sampling, precision, logging and checkpointing."""

    epochs: int = 200
    decay_epochs: int = 100  # lr decays linearly to 0 over the last decay_epochs (0 = constant)
    steps_per_epoch: int = 0  # 0 = one pass over the training images
    batch_size: int = 1
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    weight_decay: float = 0.0  # L2 added to the gradient (Adam weight_decay)
    downsample: float = 1.0  # train at the data size divided by this (rounded to 4); 0 = auto
    crop: int = 0  # train on random square crops of this side (centred on brain pixels); 0 = off
    flip: bool = False  # mirror each training image (a pair together) left-right with p = 1/2
    max_train_images: int = 0  # 0 = all training images
    precision: str = "auto"  # auto (bf16 where natively fast, else fp32), fp32 or bf16
    seed: int = 0
    device: str = "auto"  # auto, cpu, cuda or cuda:N
    threads: int = 0  # torch intra-op threads; 0 = PyTorch's default
    channels_last: bool = False  # NHWC memory format (measured slower: docs/commands/bench.md)
    compile: bool = False  # torch.compile each network (pays off for long runs)
    conv_algorithm: str = "auto"  # auto: fastest measured per layer; direct: PyTorch's own
    fast_path: str = "auto"  # on: fused Adam, no host sync per step; auto: on for CUDA only
    log_every: int = 25  # steps between TensorBoard scalars
    checkpoint_every: int = 0  # steps between extra checkpoints (0 = at each epoch end only)

    def validate(self) -> None:
        positive = ("epochs", "batch_size", "log_every")
        for key in positive:
            if getattr(self, key) <= 0:
                raise ValueError(f"train.{key} must be positive, got {getattr(self, key)}")
        for key in (
            "downsample",
            "decay_epochs",
            "steps_per_epoch",
            "max_train_images",
            "checkpoint_every",
            "threads",
            "weight_decay",
            "crop",
        ):
            if getattr(self, key) < 0:
                raise ValueError(f"train.{key} must be >= 0, got {getattr(self, key)}")
        if self.crop and (self.crop < 32 or self.crop % 4):
            raise ValueError(f"train.crop must be 0 or a multiple of 4 >= 32, got {self.crop}")
        if self.decay_epochs > self.epochs:
            raise ValueError("train.decay_epochs cannot exceed train.epochs")
        if not self.lr > 0:
            raise ValueError(f"train.lr must be positive, got {self.lr}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError("train.beta1 and train.beta2 must be in [0, 1)")
        if self.fast_path not in FAST_PATH_CHOICES:
            raise ValueError(f"train.fast_path must be one of {', '.join(FAST_PATH_CHOICES)}")
        if self.conv_algorithm not in CONV_ALGORITHM_CHOICES:
            raise ValueError(
                f"train.conv_algorithm must be one of {', '.join(CONV_ALGORITHM_CHOICES)}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(f"train.precision must be one of {', '.join(PRECISIONS)}")
        if not (self.device in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", self.device)):
            raise ValueError(f"train.device must be auto, cpu, cuda or cuda:N, got {self.device}")


@dataclass
class RunConfig:
    """Everything that defines a training run: the model's own ``net`` and ``loss`` settings
    (subclasses of :class:`NetSettings` and :class:`LossSettings` named by its spec) and the
    ``train`` section every model shares."""

    model: str
    profile: str
    net: NetSettings = field(default_factory=NetSettings)
    loss: LossSettings = field(default_factory=LossSettings)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> None:
        """Check every value (the model name is checked by the model registry)."""
        check_profile(self.profile)
        self.net.validate("net")
        self.loss.validate("loss")
        self.train.validate()

    def sections(self) -> dict[str, Any]:
        """The sections by name: ``net``, ``loss``, ``train``."""
        return {"net": self.net, "loss": self.loss, "train": self.train}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(
        cls,
        data: dict[str, Any],
        net_settings: type[NetSettings] = NetSettings,
        loss_settings: type[LossSettings] = LossSettings,
    ) -> RunConfig:
        """The configuration recorded in ``data`` (``config.json``), with the model's settings
        classes; an older run's flat sections are mapped onto them (:attr:`Settings.renamed`).

        Raises:
            KeyError, TypeError, ValueError: a section is missing or holds unknown settings.
        """
        return cls(
            model=data["model"],
            profile=data["profile"],
            net=net_settings.from_dict(data["net"], "net"),
            loss=loss_settings.from_dict(data["loss"], "loss"),
            train=TrainConfig(**data["train"]),
        )


def apply_values(cfg: RunConfig, values: dict[str, Any]) -> None:
    """Set ``section.key`` values (already typed) on ``cfg``, without validation."""
    for key, value in values.items():
        section, name = key.split(".")
        setattr(getattr(cfg, section), name, value)


_KINDS = {"int": int, "float": float, "str": str, "bool": bool}


def _kind(annotation: Any) -> type:
    """The type of a field annotation (a string under ``from __future__ import annotations``)."""
    return _KINDS[annotation if isinstance(annotation, str) else annotation.__name__]


def _convert(text: str, kind: type, key: str) -> Any:
    if kind is bool:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{key} expects true or false, got {text!r}")
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{key} expects a value of type {kind.__name__}, got {text!r}") from None


def apply_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    """Apply ``section.key=value`` strings to ``cfg`` (in place) and validate the result.

    Raises:
        ValueError: malformed override, unknown key, or a value of the wrong type or range.
    """
    sections = cfg.sections()
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set expects section.key=value, got {item!r}")
        section_name, _, name = key.partition(".")
        section = sections.get(section_name)
        types = {f.name: f.type for f in dataclasses.fields(section)} if section else {}
        if name not in types:
            raise ValueError(_unknown_key(cfg, key))
        setattr(section, name, _convert(text.strip(), _kind(types[name]), key))
    cfg.validate()
    return cfg


def has_key(cfg: RunConfig, override: str) -> bool:
    """Whether ``cfg`` has the ``section.key`` that ``override`` (``section.key=value``) sets."""
    section_name, _, name = override.partition("=")[0].strip().partition(".")
    section = cfg.sections().get(section_name)
    return section is not None and name in {f.name for f in dataclasses.fields(section)}


def _unknown_key(cfg: RunConfig, key: str) -> str:
    """The one-line error for ``key``: its new name if it was renamed, else the valid keys."""
    section_name, _, name = key.partition(".")
    section = cfg.sections().get(section_name)
    new = getattr(section, "renamed", {}).get(name)
    if new:
        return f"{key} is now {section_name}.{new} (each model names its own settings)"
    valid = ", ".join(
        f"{s}.{f.name}" for s, obj in cfg.sections().items() for f in dataclasses.fields(obj)
    )
    return f"unknown config key {key!r} for {cfg.model}; valid keys: {valid}"
