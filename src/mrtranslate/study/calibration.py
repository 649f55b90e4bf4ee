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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mrtranslate.data.tensors import crop_shape, working_shape
from mrtranslate.hardware import timed_calls
from mrtranslate.inference.batches import tiles_to_translate, translate_stack
from mrtranslate.methods import build_method, make_config
from mrtranslate.study.cost import TranslationCounts
from mrtranslate.study.plan import (
    BATCH,
    CostModel,
    StudyPlan,
    build_plan,
    candidate_crops,
    candidate_factors,
    crop_key,
    floor_budget_minutes,
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


# Test slices the translation of each model is timed on (evenly spaced through the test split)
TRANSLATION_SAMPLE = 8
# Translation is timed over at least this long per model (one warm-up call first)
MIN_TRANSLATION_SECONDS = 0.5


def translated_pixels(
    masks: np.ndarray, tile: tuple[int, int] | None, skip: bool, whole: tuple[int, int]
) -> int:
    """Pixels the network computes to translate images whose brain masks are ``masks``
    (N, H, W): tiles of ``tile`` (the training crop; without a brain pixel skipped when
    ``skip``), or whole images of ``whole`` (h, w) pixels when ``tile`` is None or covers
    the image (inference/batches.py)."""
    count, height, width = masks.shape
    if tile is None or (tile[0] >= height and tile[1] >= width):
        return count * whole[0] * whole[1]
    keep = tiles_to_translate(
        torch.from_numpy(np.ascontiguousarray(masks)) if skip else None,
        count,
        (height, width),
        tile,
    )
    return int(keep.sum()) * min(tile[0], height) * min(tile[1], width)


def translation_pixel_seconds(
    model: str,
    train_size: tuple[int, int],
    masks: np.ndarray,
    tile: tuple[int, int] | None,
    whole: tuple[int, int],
    device: torch.device,
    precision: str,
) -> float:
    """Seconds per translated pixel of ``model``'s quick networks (built for ``train_size``)
    translating images with the brain masks ``masks`` (N, H, W) as evaluation does: at the
    inference precision for ``precision`` training, in tiles of ``tile`` that hold brain (or
    whole images resized to ``whole``), in the evaluation's batches. The images are random:
    the time depends on the tiles, not on their values."""
    from mrtranslate.hardware import inference_precision

    cfg = make_config(model, "quick")
    torch.manual_seed(0)
    method = build_method(model, cfg.net, cfg.loss, train_size).to(device)
    count = masks.shape[0]
    shape = tuple(masks.shape[1:]) if tile is not None else tuple(whole)
    images = torch.rand(count, cfg.net.context, *shape) * 2 - 1
    skip = tile is not None
    mask_tensor = torch.from_numpy(np.ascontiguousarray(masks)) if skip else None
    chosen = inference_precision(precision, device)

    def translate() -> None:
        translate_stack(method, images, "t1-to-t2", 16, device, chosen, tile, masks=mask_tensor)

    seconds = statistics.median(
        timed_calls(translate, 1, warmup=1, device=device, min_seconds=MIN_TRANSLATION_SECONDS)
    )
    pixels = translated_pixels(masks, tile, skip, whole)
    return seconds / max(pixels, 1)


@dataclass
class VolumeProbe:
    """One test volume's brain mask (RAS+) and the time to load a participant and to measure
    one candidate volume, measured on this machine."""

    brain: np.ndarray
    load_seconds: float
    measure_seconds: float


def probe_volume(dataset) -> VolumeProbe | None:
    """Load the first test participant's volumes (timed) and measure one candidate volume (a
    perturbed copy of the target, timed); None for data without volumes."""
    from mrtranslate.evaluation.volume_measures import volume_measures
    from mrtranslate.evaluation.volumes import load_participant

    sources = dataset.volume_sources("test") if dataset.has_volumes() else []
    if not sources:
        return None
    start = time.perf_counter()
    person = load_participant(sources[0])
    load_seconds = time.perf_counter() - start
    real = person.volume["t2w"]
    synthetic = real * 0.9 + 0.05 * float(real.max())
    start = time.perf_counter()
    volume_measures(real, synthetic, person.brain, person.lesion)
    return VolumeProbe(person.brain, load_seconds, time.perf_counter() - start)


# A training run's fixed cost besides loading its images: start-up, the checkpoint of each of
# the 6 epochs, TensorBoard (measured on BraTS: 10 s per model, 6 of them loading 4,329 slices)
OVERHEAD_SECONDS = 4.0
TRAIN_LOAD_SAMPLE = 256


def training_load_seconds(dataset, shape: tuple[int, int]) -> float:
    """Seconds to load the training split's two contrasts and masks at ``shape`` (as a training
    run and the reference points do), timed on a block of :data:`TRAIN_LOAD_SAMPLE` images from
    the middle of the split, read in order as they are (scattered picks read twice as slowly
    as the whole split was then loaded), and scaled to all of them."""
    from mrtranslate.data.tensors import load_images, load_masks

    split = dataset.split("train")
    if not len(split):
        return 0.0
    first = max(0, (len(split) - TRAIN_LOAD_SAMPLE) // 2)
    picks = np.arange(first, min(len(split), first + TRAIN_LOAD_SAMPLE))
    start = time.perf_counter()
    for contrast in ("t1w", "t2w"):
        load_images(split, contrast, shape, picks)
    load_masks(split, shape, picks)
    return (time.perf_counter() - start) * len(split) / len(picks)


def plane_masks(brain: np.ndarray, data_shape: tuple[int, int]) -> dict[int, np.ndarray]:
    """Per axis (RAS+), the slices of ``brain`` that hold brain, fitted to that plane's canvas
    at native resolution (inference/volumes.py), (n, h, w) bool."""
    from mrtranslate.data.volumes import axial_slice, fit_to
    from mrtranslate.inference.volumes import PLANE_AXES, plane_canvas

    out = {}
    for axis in PLANE_AXES[3]:
        shape, _ = plane_canvas(data_shape, data_shape, brain.shape, axis)
        moved = np.ascontiguousarray(np.moveaxis(brain, axis, 0))  # slices contiguous
        fitted = [
            fit_to(axial_slice(moved, k, 0), shape) for k in range(len(moved)) if moved[k].any()
        ]
        out[axis] = np.stack(fitted) if fitted else np.zeros((0, *shape), bool)
    return out


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
        self.pixel_seconds: dict = {}  # (model, rung) -> seconds per translated pixel
        # the measures run at the evaluation's size: the data's in native mode
        h, w = tuple(study.data_shape) if study.native else self.shape(self.base)
        self.metric_cost = metrics_seconds((h, w), 16) / (16 * h * w)
        self.test_masks, self.probe, self.counts = None, None, None
        self.train_load_seconds = 0.0
        if study.data is not None:
            self._measure_data()

    def _measure_data(self) -> None:
        """The test split's masks, a probe of one test volume (loading and measuring it, timed)
        and what evaluation and the whole-volume stage translate at every rung."""
        from mrtranslate.data.dataset import open_dataset
        from mrtranslate.evaluation.reuse import reusable_images
        from mrtranslate.inference.volumes import PLANE_AXES

        dataset = open_dataset(self.study.data)
        # training loads whole images at the working size (the data's in native mode)
        load_shape = (
            tuple(self.study.data_shape) if self.crops is not None else self.shape(self.base)
        )
        self.train_load_seconds = training_load_seconds(dataset, load_shape)
        split = dataset.split("test")
        self.test_masks = np.asarray(split.mask) > 0.5
        self.probe = probe_volume(dataset)
        volumes = {"test": 0, "train": 0}
        if dataset.has_volumes():
            volumes = {k: len(dataset.volume_sources(k)) for k in volumes}
        planes = (1, 3) if self.study.planes == 3 else (1,)
        fitted = plane_masks(self.probe.brain, self.study.data_shape) if self.probe else {}
        # axial slices of the test volumes that evaluation translates: taken, not translated again
        reusable = reusable_images(split) if fitted else np.zeros(len(split), dtype=bool)
        eval_pixels, volume_pixels, reused_pixels = {}, {}, {}
        for rung in self.factors:
            tile, whole = self.tile(rung), self.shape(rung) if self.crops is None else None
            whole = whole or tuple(self.study.data_shape)
            eval_pixels[rung] = translated_pixels(self.test_masks, tile, True, whole)
            reused = reused_pixels[rung] = (
                translated_pixels(self.test_masks[reusable], tile, True, whole)
                if reusable.any()
                else 0
            )
            for count in planes if fitted else ():
                pixels = sum(
                    translated_pixels(fitted[axis], tile, True, fitted[axis].shape[1:])
                    if self.crops is not None
                    else len(fitted[axis]) * whole[0] * whole[1]
                    for axis in PLANE_AXES[count]
                )
                volume_pixels[(rung, count)] = max(pixels * volumes["test"] - reused, 0)
        self.counts = TranslationCounts(
            eval_pixels, volume_pixels, volumes["test"], volumes["train"], reused_pixels
        )
        if self.probe is not None:
            self.say(
                f"calibration on the data: {len(split)} test slices, "
                f"{volumes['test']} test and {volumes['train']} training volumes, "
                f"{int(reusable.sum())} test slices translated once for both stages "
                f"(loading one {self.probe.load_seconds:.1f} s, measuring one "
                f"{self.probe.measure_seconds:.1f} s)"
            )

    def tile(self, factor: float) -> tuple[int, int] | None:
        """The tile whole slices are translated in at a rung: the training crop (native
        mode, smaller than the image), else None (whole images)."""
        if self.crops is None or self.crops[factor] == 0:
            return None
        return crop_shape(tuple(self.study.data_shape), self.crops[factor])

    def measure_translation(self, factor: float) -> None:
        """Seconds per translated pixel of every model at rung ``factor``, timed on test slices
        of this data set (their masks, evenly spaced through the split)."""
        if self.test_masks is None or not len(self.test_masks):
            return
        picks = np.unique(
            np.linspace(0, len(self.test_masks) - 1, TRANSLATION_SAMPLE).round().astype(int)
        )
        tile = self.tile(factor)
        whole = tuple(self.study.data_shape) if self.crops is not None else self.shape(factor)
        for model in self.study.models:
            self.pixel_seconds[(model, factor)] = translation_pixel_seconds(
                model,
                self.shape(factor),
                self.test_masks[picks],
                tile,
                whole,
                self.device,
                self.precision,
            )

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
        self.measure_translation(factor)
        self.say(
            f"calibration at {shape[0]}x{shape[1]}: "
            + ", ".join(
                f"{m} {self.step_seconds[(m, factor)]:.3f} s/step" for m in self.study.models
            )
        )

    def cost_model(self, **changes) -> CostModel:
        """The study's costs from what was measured (``changes``: other ``models`` or
        ``planes`` than the study's)."""
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
            pixel_seconds=dict(self.pixel_seconds),
            counts=self.counts,
            volume_measure_seconds=self.probe.measure_seconds if self.probe else None,
            volume_load_seconds=self.probe.load_seconds if self.probe else None,
            overhead_per_model=OVERHEAD_SECONDS + self.train_load_seconds,
            train_load_seconds=self.train_load_seconds,
        )
        return dataclasses.replace(cost, **changes)

    def floor_advice(self, budget_minutes: float, spent_seconds: float) -> dict:
        """What would give every model its floor, from the measured costs: the budget, the
        budget with volumes translated axially (three-plane data), and the models (dearest
        step dropped first) whose plan fits ``budget_minutes``."""
        spent = spent_seconds + self.seconds
        args = (self.factors, self.base, spent, self.study.train_images)
        advice = {"budget_minutes": floor_budget_minutes(self.cost_model(), *args)}
        if self.study.planes == 3:
            axial = floor_budget_minutes(self.cost_model(planes=1), *args)
            if axial and (advice["budget_minutes"] is None or axial < advice["budget_minutes"]):
                advice["budget_minutes_axial"] = axial
        models = list(self.study.models)
        base = self.base
        while len(models) > 1:
            models.remove(max(models, key=lambda m: self.cost_model().model_step(m, base)))
            cost = self.cost_model(models=tuple(models))
            plan = build_plan(cost, *args[:2], budget_minutes, *args[2:], "", "")
            if not plan.under_trained:
                advice["models"] = models
                break
        return advice

    def plan(self, budget_minutes: float, spent_seconds: float) -> StudyPlan:
        study = self.study
        cost = self.cost_model()
        record = {
            "seconds": self.seconds,
            "step_seconds": {
                f"{m}@{'x'.join(map(str, self.shape(f)))}": t
                for (m, f), t in self.step_seconds.items()
            },
            "metric_seconds_per_pixel": self.metric_cost,
            "train_load_seconds": self.train_load_seconds,
            "translation_seconds_per_megapixel": {
                f"{m}@{'x'.join(map(str, self.shape(f)))}": 1e6 * t
                for (m, f), t in self.pixel_seconds.items()
            },
            **(
                {
                    "volume_load_seconds": self.probe.load_seconds,
                    "volume_measure_seconds": self.probe.measure_seconds,
                    "volume_megapixels_taken_from_evaluation": {
                        "x".join(map(str, self.shape(f))): p / 1e6
                        for f, p in self.counts.reused_pixels.items()
                    },
                }
                if self.probe
                else {}
            ),
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
            break
        calibration.measure(rung)
        plan = calibration.plan(budget_minutes, spent_seconds)
    if _rung(study, plan) not in calibration.measured():
        calibration.factors = [f for f in calibration.factors if f in calibration.measured()]
        plan = calibration.plan(budget_minutes, spent_seconds)
    if plan.under_trained:
        plan.calibration["floor_advice"] = calibration.floor_advice(budget_minutes, spent_seconds)
    return plan


MAX_REMEASUREMENTS = 4


def _rung(study: StudyShape, plan: StudyPlan) -> float:
    return crop_key(study.data_shape, plan.crop) if study.native else plan.downsample
