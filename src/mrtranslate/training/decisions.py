"""What a training run decides once about where and how it computes: :class:`RunDecisions`.

The ``train`` settings ``device``, ``precision``, ``fast_path`` and ``conv_algorithm`` may say
``auto``; :func:`decide` resolves them once per run (and once per calibration or benchmark) into
one typed value. The trainer reads only that value, never the settings behind it, and the
checkpoint records it (:meth:`RunDecisions.record`), so that a resumed run keeps the decisions
of its start (:func:`device_to_resume_on`, and ``recorded`` in :func:`decide`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from mrtranslate.config import TrainConfig
from mrtranslate.errors import UsageError
from mrtranslate.hardware import CPU, PrecisionChoice, resolve_precision

MEASURE = "measure"  # time each convolution layer's algorithms on this machine
DIRECT = "direct"  # PyTorch's own convolution everywhere


@dataclass(frozen=True)
class RunDecisions:
    """The run's resolved device, precision, fast path and convolution algorithms.

    Attributes:
        device: the indexed torch device (``cpu``, ``cuda:0``, ...).
        precision: the precision and why (``precision.precision`` is ``fp32`` or ``bf16``).
        fast_path: fused Adam, images kept on the device, no host sync per step.
        conv_algorithms: :data:`MEASURE`, :data:`DIRECT`, or the algorithm of each convolution
            layer fixed by a study plan (layers not named: direct).
    """

    device: torch.device
    precision: PrecisionChoice
    fast_path: bool
    conv_algorithms: str | dict[str, str] = MEASURE

    def record(self) -> dict:
        """What the checkpoint keeps for a resume (``decisions``)."""
        return {
            "device": self.device.type,
            "precision": self.precision.precision,
            "fast_path": self.fast_path,
        }


def device_to_resume_on(train: TrainConfig, recorded: dict | None) -> str:
    """The device setting to resolve: ``train.device``, or with ``auto`` on a resume the kind
    recorded at the run's start (an explicit ``--set train.device`` still wins).

    Raises:
        UsageError: the run started on a GPU and none is visible here.
    """
    if not recorded or train.device != "auto":
        return train.device
    if recorded["device"] == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            "this run started on a GPU (cuda) and no GPU is visible here; resume it where "
            "there is one, or pass --set train.device=cpu to continue on the CPU"
        )
    return recorded["device"]


def decide(
    train: TrainConfig,
    device: torch.device = CPU,
    *,
    recorded: dict | None = None,
    precision: PrecisionChoice | None = None,
    conv_algorithms: dict[str, str] | None = None,
) -> RunDecisions:
    """Resolve ``train``'s settings on ``device`` into :class:`RunDecisions`.

    Args:
        train: the run's ``train`` settings.
        device: the device already resolved (:func:`mrtranslate.hardware.resolve_device`).
        recorded: a resumed run's recorded decisions (:meth:`RunDecisions.record`): settings left
            at ``auto`` keep them.
        precision: the precision already resolved (e.g. rank 0's, shared by every process).
        conv_algorithms: the algorithm per layer fixed by a study plan.

    Raises:
        UsageError: a resumed bf16 run on a device without native bf16 (with ``auto``).
    """
    choice = precision or resolve_precision(train.precision, device)
    if recorded and train.precision == "auto":
        choice = _honour_recorded_precision(choice, recorded["precision"], device)
    if train.fast_path == "auto":
        fast = recorded["fast_path"] if recorded else device.type == "cuda"
    else:
        fast = train.fast_path == "on"
    if conv_algorithms is not None:
        conv = dict(conv_algorithms)
    else:
        conv = DIRECT if train.conv_algorithm == "direct" else MEASURE
    return RunDecisions(device=device, precision=choice, fast_path=fast, conv_algorithms=conv)


def _honour_recorded_precision(
    choice: PrecisionChoice, recorded: str, device: torch.device
) -> PrecisionChoice:
    """``train.precision=auto`` on a resume: the recorded precision, or a one-line stop when
    this machine would have decided otherwise (bf16 recorded but not native here)."""
    if recorded == choice.precision:
        return choice
    if recorded == "bf16":
        raise UsageError(
            f"this run trained in bf16, which {device} does not run natively ({choice.reason}); "
            "pass --set train.precision=bf16 to continue anyway (slowly) or "
            "--set train.precision=fp32 to switch precision"
        )
    return dataclasses.replace(
        choice, precision="fp32", reason="fp32 recorded at the run's start", warning=None
    )
