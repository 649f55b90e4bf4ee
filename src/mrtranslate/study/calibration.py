"""Calibration: measure this machine's costs for the study planner.

:func:`calibrate_and_plan` times a few training steps per model at the quick settings (in the
resolved precision, with each convolution's algorithm measured fastest) and the measures'
cost per pixel, then hands the numbers to the planner (:func:`mrtranslate.study.plan.build_plan`,
a pure function of measurements). The planned size is always one that was measured.
:func:`quick_step_seconds` and :func:`metrics_seconds` are shared with ``mrtranslate bench``.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from mrtranslate.data.tensors import crop_shape, working_shape
from mrtranslate.hardware import timed_calls
from mrtranslate.methods import build_method, make_config
from mrtranslate.study.plan import (
    BATCH,
    CostModel,
    StudyPlan,
    build_plan,
    candidate_crops,
    candidate_factors,
    crop_key,
)
from mrtranslate.study.shape import StudyShape
from mrtranslate.training.decisions import decide
from mrtranslate.training.trainer import Trainer, TrainingData


@contextmanager
def random_data_trainer(
    model: str, cfg, size: tuple[int, int], batch: int, device: torch.device, precision: str
) -> Iterator[Trainer]:
    """A trainer of ``model`` (config ``cfg``) on random images, in a temporary run folder, in
    ``precision`` (already resolved: ``fp32`` or ``bf16``) on ``device``."""
    train = dataclasses.replace(cfg.train, precision=precision)  # the caller's cfg unchanged
    decisions = decide(train, device)
    torch.manual_seed(0)
    method = build_method(model, cfg.net, cfg.loss, size).to(device)
    channels = cfg.net.context  # 2.5D: stacks of neighbouring slices
    data = TrainingData(
        t1w=torch.rand(max(batch, 4), channels, *size) * 2 - 1,
        t2w=torch.rand(max(batch, 4), channels, *size) * 2 - 1,
    )
    with tempfile.TemporaryDirectory() as tmp:
        yield Trainer(method, train, data, Path(tmp), decisions, progress=False)


# Each model's step is timed over at least this long (3 steps at least): a cheap step timed 3
# times once measured 0.105 s for a step that then trained at 0.048 s (Simple, 96x96 crops).
MIN_TIMED_SECONDS = 1.0


def quick_step_seconds(
    model: str,
    size: tuple[int, int],
    batch: int,
    device: torch.device,
    precision: str,
    repeats: int = 3,
) -> tuple[float, dict[str, str]]:
    """Median seconds of a training step of ``model`` at the quick profile's networks, on random
    images of ``size`` (after two warm-up steps; ``repeats`` steps at least, and at least
    ``MIN_TIMED_SECONDS`` of them), with each convolution's algorithm measured
    fastest here: the study planner's calibration. Returns (seconds, algorithm per layer)."""
    cfg = make_config(model, "quick")
    cfg.train.batch_size, cfg.train.steps_per_epoch = batch, 1000
    with random_data_trainer(model, cfg, size, batch, device, precision) as trainer:
        choice = trainer.prepare_convolutions()
        step = iter(range(10**6))
        seconds = statistics.median(
            timed_calls(
                lambda: trainer.train_step(next(step)),
                repeats,
                warmup=2,
                device=device,
                min_seconds=MIN_TIMED_SECONDS,
            )
        )
        return seconds, choice.algorithms


def metrics_seconds(shape: tuple[int, int], count: int, seed: int = 0) -> float:
    """Seconds to compute all measures (whole image and inside the mask) for ``count`` pairs."""
    from mrtranslate.evaluation.evaluate import measure_stack

    rng = np.random.default_rng(seed)
    real = rng.random((count, *shape), dtype=np.float32)
    synthetic = np.clip(real + 0.1 * rng.standard_normal(real.shape, dtype=np.float32), 0, 1)
    masks = np.zeros(real.shape, dtype=bool)
    masks[:, shape[0] // 8 : -shape[0] // 8, shape[1] // 8 : -shape[1] // 8] = True
    start = time.perf_counter()
    measure_stack(real, synthetic, masks, progress=False)
    return time.perf_counter() - start


class Calibration:
    """Step times measured on this machine (quick settings, resolved precision)."""

    def __init__(self, study: StudyShape, device, precision: str, say: Callable[[str], None]):
        self.study, self.device, self.precision, self.say = study, device, precision, say
        self.start = time.perf_counter()
        self.crops = None
        if study.native:
            self.crops, self.base = candidate_crops(study.data_shape)
            self.factors = list(self.crops)
        else:
            self.factors, self.base = candidate_factors(study.data_shape)
        self.step_seconds: dict = {}
        self.conv_algorithms: dict = {}
        h, w = self.shape(self.base)
        self.metric_cost = metrics_seconds((h, w), 16) / (16 * h * w)

    def shape(self, factor: float) -> tuple[int, int]:
        """The training size of a rung (a crop in native mode)."""
        if self.crops is not None:
            return crop_shape(tuple(self.study.data_shape), self.crops[factor])
        return working_shape(self.study.data_shape, factor)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def measured(self) -> set[float]:
        """The rungs whose step times were measured."""
        return {f for _, f in self.step_seconds}

    def measure(self, factor: float) -> None:
        shape = self.shape(factor)
        for model in self.study.models:
            seconds, algorithms = quick_step_seconds(
                model, shape, BATCH, self.device, self.precision
            )
            self.step_seconds[(model, factor)] = seconds
            self.conv_algorithms[(model, factor)] = algorithms
        self.say(
            f"calibration at {shape[0]}x{shape[1]}: "
            + ", ".join(
                f"{m} {self.step_seconds[(m, factor)]:.3f} s/step" for m in self.study.models
            )
        )

    def plan(self, budget_minutes: float, spent_seconds: float) -> StudyPlan:
        study = self.study
        cost = CostModel(
            tuple(study.models),
            tuple(study.data_shape),
            study.test_images,
            self.metric_cost,
            dict(self.step_seconds),
            crops=self.crops,
            volume_slices=study.volume_slices,
            plane_slices=study.plane_slices,
            volume_voxels=study.volume_voxels,
            planes=study.planes,
        )
        record = {
            "seconds": self.seconds,
            "step_seconds": {
                f"{m}@{'x'.join(map(str, self.shape(f)))}": t
                for (m, f), t in self.step_seconds.items()
            },
            "metric_seconds_per_pixel": self.metric_cost,
        }
        return build_plan(
            cost,
            self.factors,
            self.base,
            budget_minutes,
            spent_seconds + self.seconds,
            study.train_images,
            str(self.device),
            self.precision,
            record,
            self.conv_algorithms,
        )


def calibrate_and_plan(
    study: StudyShape,
    budget_minutes: float,
    spent_seconds: float,
    device,
    precision: str,
    say: Callable[[str], None] = lambda message: None,
) -> StudyPlan:
    """Measure this machine's step times and plan. The planned size is always one that was
    measured, with the convolution algorithms the plan fixes: when the plan picks another size
    it is measured and the plan made again; should the plans keep moving between unmeasured
    sizes, the last plan is made over the measured sizes only."""
    calibration = Calibration(study, device, precision, say)
    calibration.measure(calibration.base)
    plan = calibration.plan(budget_minutes, spent_seconds)
    for _ in range(MAX_REMEASUREMENTS):
        rung = _rung(study, plan)
        if rung in calibration.measured():
            return plan
        calibration.measure(rung)
        plan = calibration.plan(budget_minutes, spent_seconds)
    if _rung(study, plan) not in calibration.measured():
        calibration.factors = [f for f in calibration.factors if f in calibration.measured()]
        plan = calibration.plan(budget_minutes, spent_seconds)
    return plan


MAX_REMEASUREMENTS = 4


def _rung(study: StudyShape, plan: StudyPlan) -> float:
    return crop_key(study.data_shape, plan.crop) if study.native else plan.downsample
