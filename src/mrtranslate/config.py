"""Typed run configuration and validated ``--set key=value`` overrides.

A run's configuration is a :class:`RunConfig` with three sections (``net``, ``loss``,
``train``); every key can be overridden as ``section.key=value`` (for example
``--set train.epochs=3``). Unknown keys and values of the wrong type are rejected. The values of
each model under each profile (paper, quick, tiny) live with the model, in
:mod:`mrtranslate.methods.registry` (``make_config``).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import asdict, dataclass, field
from typing import Any

PROFILES = ("paper", "quick", "tiny")
CONV_ALGORITHM_CHOICES = ("auto", "direct")
FAST_PATH_CHOICES = ("auto", "on", "off")
PRECISIONS = ("auto", "fp32", "bf16")
UPSAMPLE_CHOICES = ("transpose", "resize")
MAX_CONTEXT = 9  # slices of 2.5D context at most


def check_profile(profile: str) -> str:
    """``profile`` if it is one of :data:`PROFILES`, else a ``ValueError`` naming them."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    return profile


@dataclass
class NetConfig:
    """Network widths and depths (paper values by default)."""

    gen_width: int = 32  # CycleGAN / Generators_s generator: filters of the first layer
    gen_blocks: int = 9  # residual blocks of that generator
    # generator up-sampling: "transpose" (the paper) or "resize" (no checkerboard; quick profile)
    gen_upsample: str = "transpose"
    disc_width: int = 64  # PatchGAN filters of the first layer
    unit_width: int = 64  # UNIT encoder filters of the first layer (latent: 4x this)
    unit_blocks: int = 3  # UNIT residual blocks per encoder and per decoder
    unit_scales: int = 3  # UNIT discriminator scales
    unit_disc_width: int = 64  # UNIT discriminator filters of the first layer
    unit_dropout: float = 0.0  # dropout in UNIT residual blocks, training only
    # UNIT decoder up-sampling: "transpose" (the paper: 3x3 stride-2 transposed convs, which
    # leave a checkerboard grid) or "resize" (nearest-neighbour x2, then a 3x3 conv)
    unit_upsample: str = "transpose"
    simple_width: int = 256  # filters of the Simple model's hidden 1x1 conv
    # 2.5D context: neighbouring slices given as channels (odd; 1 = the paper's single slice).
    # Every network maps a stack of `context` slices to the same stack translated; the centre
    # channel is the translation of the slice itself.
    context: int = 1
    # Brain voxels enter the networks at no less than this [0, 1] intensity, so dark tissue
    # (T1w CSF) differs from the background (0: the paper's plain scaling).
    brain_floor: float = 0.0


@dataclass
class LossConfig:
    """Loss weights (Welander et al. 2018 and their code)."""

    cycle: float = 10.0  # CycleGAN: L1 cycle loss, each direction
    supervised: float = 10.0  # CycleGAN_s: L1 to the paired ground truth, each direction
    identity: float = 0.0  # CycleGAN: optional identity loss ||G(y) - y||_1 (off in the paper)
    pool_size: int = 50  # CycleGAN: past fakes kept for the discriminators
    # CycleGAN_s, Generators_s, Simple: the supervised L1 inside the pair's brain mask only
    # (the translation is judged, and written, inside the brain only); off in the paper
    brain_only: bool = False
    unit_adv: float = 10.0  # UNIT: adversarial (BCE), generator and discriminator
    unit_kl: float = 0.1  # UNIT: latent prior term of the encoded real images
    unit_rec: float = 100.0  # UNIT: within-domain reconstruction (L1)
    unit_cycle: float = 100.0  # UNIT: cycle reconstruction (L1)
    unit_kl_cycle: float = 0.1  # UNIT: latent prior term of the re-encoded translations


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
    max_train_images: int = 0  # 0 = all training images
    precision: str = "auto"  # auto (bf16 where natively fast, else fp32), fp32 or bf16
    seed: int = 0
    device: str = "auto"  # auto, cpu, cuda or cuda:N
    threads: int = 0  # torch intra-op threads; 0 = PyTorch's default
    channels_last: bool = False  # NHWC memory format (measured slower here: see README)
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
    """Everything that defines a training run."""

    model: str
    profile: str
    net: NetConfig = field(default_factory=NetConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> None:
        """Check every value (the model name is checked by the model registry)."""
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; choose from {', '.join(PROFILES)}")
        for section in (self.net, self.loss):
            for f in dataclasses.fields(section):
                value = getattr(section, f.name)
                if not isinstance(value, str) and value < 0:
                    raise ValueError(f"{f.name} must be >= 0, got {value}")
        for key in (
            "gen_width",
            "disc_width",
            "unit_width",
            "unit_scales",
            "unit_disc_width",
            "simple_width",
        ):
            if getattr(self.net, key) <= 0:
                raise ValueError(f"net.{key} must be positive")
        if self.net.context < 1 or self.net.context % 2 == 0 or self.net.context > MAX_CONTEXT:
            raise ValueError(
                f"net.context must be an odd number of slices from 1 to {MAX_CONTEXT}, got "
                f"{self.net.context}"
            )
        if not self.net.brain_floor < 0.5:
            raise ValueError(f"net.brain_floor must be in [0, 0.5), got {self.net.brain_floor}")
        if not self.net.unit_dropout < 1:
            raise ValueError("net.unit_dropout must be below 1")
        for key in ("gen_upsample", "unit_upsample"):
            if getattr(self.net, key) not in UPSAMPLE_CHOICES:
                raise ValueError(
                    f"net.{key} must be one of {', '.join(UPSAMPLE_CHOICES)}, got "
                    f"{getattr(self.net, key)!r}"
                )
        self.train.validate()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        return cls(
            model=data["model"],
            profile=data["profile"],
            net=NetConfig(**data["net"]),
            loss=LossConfig(**data["loss"]),
            train=TrainConfig(**data["train"]),
        )


def apply_values(cfg: RunConfig, values: dict[str, Any]) -> None:
    """Set ``section.key`` values (already typed) on ``cfg``, without validation."""
    for key, value in values.items():
        section, name = key.split(".")
        setattr(getattr(cfg, section), name, value)


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
    sections = {"net": cfg.net, "loss": cfg.loss, "train": cfg.train}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set expects section.key=value, got {item!r}")
        section_name, _, name = key.partition(".")
        section = sections.get(section_name)
        types = {f.name: f.type for f in dataclasses.fields(section)} if section else {}
        if name not in types:
            valid = ", ".join(
                f"{s}.{f.name}" for s, obj in sections.items() for f in dataclasses.fields(obj)
            )
            raise ValueError(f"unknown config key {key!r}; valid keys: {valid}")
        kind = {"int": int, "float": float, "str": str, "bool": bool}[str(types[name])]
        setattr(section, name, _convert(text.strip(), kind, key))
    cfg.validate()
    return cfg
