"""Typed records of a run folder: ``run.json`` and ``eval/summary.json``.

Both are plain dataclasses written as JSON; reading tolerates records of older versions
(missing fields take their defaults, unknown fields are ignored) and refuses damaged files with
a one-line :class:`~mrtranslate.errors.UsageError`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mrtranslate.errors import UsageError


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"cannot read the {what} {path}: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise UsageError(f"the {what} {path} is not a JSON object")
    return data


def _known(cls, data: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass
class RunRecord:
    """``run.json``: where a run came from and how its training went.

    Shapes are (height, width) in pixels; ``data`` is the data set's description with its
    absolute ``path``; ``precision`` is the resolved training precision (fp32 or bf16).
    """

    model: str
    display_name: str
    profile: str
    data: dict[str, Any] = field(default_factory=dict)
    data_image_shape: list[int] = field(default_factory=list)
    model_image_shape: list[int] = field(default_factory=list)
    train_images: int = 0
    seed: int = 0
    precision: str = "fp32"
    precision_choice: dict[str, Any] | None = None
    conv_algorithms: dict[str, Any] | None = None  # per-layer algorithm and its measurements
    device: str = "cpu"
    world_size: int = 1
    parameters: dict[str, int] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] | None = None
    steps_done: int = 0
    total_steps: int = 0
    steps_per_epoch: int = 0
    finished: bool = False
    seconds_per_epoch: list[float] = field(default_factory=list)
    mean_seconds_per_epoch: float | None = None
    images_per_epoch: int = 0

    @property
    def data_path(self) -> str | None:
        """The absolute path of the data set the run was trained on."""
        return self.data.get("path")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        return cls(**_known(cls, data))

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        data = _read_json(path, "run record")
        try:
            return cls.from_dict(data)
        except TypeError as exc:
            raise UsageError(f"the run record {path} is incomplete: {exc}") from None


@dataclass
class EvalSummary:
    """``eval/summary.json``: a run's evaluation on the test split.

    ``measures[direction][column]`` and ``references[name][direction][column]`` hold
    ``{mean, std, median, ci95_low, ci95_high, n}``; ``evaluation_shape`` is the (height, width)
    the images were compared at; ``training`` and ``synthesis`` hold timings, precision and device;
    ``checkpoint`` is the SHA-256 of the checkpoint that was evaluated (empty in older summaries);
    ``measures_by_site[site]`` holds ``measures`` of each site's test images alone, for data
    imported from several sites (empty otherwise).
    """

    model: str
    display_name: str
    profile: str
    data: str
    test_images: int
    evaluation_shape: list[int]
    measures: dict[str, dict[str, dict[str, Any]]]
    training: dict[str, Any] = field(default_factory=dict)
    synthesis: dict[str, Any] = field(default_factory=dict)
    references: dict[str, Any] = field(default_factory=dict)
    checkpoint: str = ""
    measures_by_site: dict[str, dict[str, dict[str, dict[str, Any]]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def load(cls, path: Path) -> EvalSummary:
        data = _read_json(path, "evaluation summary")
        try:
            summary = cls(**_known(cls, data))
        except TypeError as exc:
            raise UsageError(f"the evaluation summary {path} is incomplete: {exc}") from None
        shape = summary.evaluation_shape
        if (
            not isinstance(summary.test_images, int)
            or summary.test_images < 1
            or not isinstance(shape, list)
            or len(shape) != 2
            or not all(isinstance(v, int) and v > 0 for v in shape)
            or not isinstance(summary.measures, dict)
            or not isinstance(summary.display_name, str)
        ):
            raise UsageError(f"the evaluation summary {path} is damaged (unexpected values)")
        return summary
