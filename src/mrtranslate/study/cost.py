"""What a study costs on this machine: training steps, evaluation, whole volumes, the report.

:class:`CostModel` turns measured costs into seconds per stage at each rung of the planner's
ladder (:mod:`mrtranslate.study.plan`). Every cost the study pays is measured on this machine
and this data set before planning (:mod:`mrtranslate.study.calibration`):

- a training step of each model (at the quick settings, in the resolved precision);
- **translation**, per model: seconds per translated pixel, timed on the test split's own
  slices with their brain masks (tiles of the training crop that hold no brain are skipped, as
  in evaluation); the pixels evaluation and the whole-volume stage translate are *counted* on
  the data (:class:`TranslationCounts`: the test split's tiles, every plane's slices of a test
  volume), so the estimate scales with the real data, not with an assumed ratio;
- the measures per pixel (slice evaluation), per candidate volume (whole volumes, timed on a
  real test volume) and the loading of a participant's volumes.

Without measured translation costs (plans written before they existed, and the planner's unit
tests), a whole image costs a fixed fraction of a training step (``_image_seconds``).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from mrtranslate.data.tensors import crop_shape, tile_starts, working_shape
from mrtranslate.evaluation.evaluate import synthesis_timing_images

REPORT_SECONDS = 5.0
VOLUMES_STAGE = "whole volumes"  # the key of the whole-volume stage in a plan's fixed_seconds
# Whole-volume judgement (evaluate-volumes) when not measured: seconds to measure one candidate
# volume per voxel (measured: about 5 s for a 182x218x182 volume on 2 cores)
VOLUME_MEASURE_SECONDS_PER_VOXEL = 5.0 / (182 * 218 * 182)


@dataclass(frozen=True)
class TranslationCounts:
    """What a study translates, counted on its data set (see the module docstring).

    ``eval_pixels[rung]``: pixels the network computes to translate the test split one way
    (tiles with brain, or whole images); ``volume_pixels[(rung, planes)]``: the same for all
    test volumes along ``planes`` planes (one volume counted, times the number of volumes);
    ``test_volumes`` and ``train_volumes``: how many volumes the whole-volume stage loads;
    ``reused_pixels[rung]``: the pixels of the test images that are axial slices of the test
    volumes, which the volume stage takes from evaluation (evaluation/reuse.py) and
    ``volume_pixels`` therefore leaves out.
    """

    eval_pixels: dict = field(default_factory=dict)
    volume_pixels: dict = field(default_factory=dict)
    test_volumes: int = 0
    train_volumes: int = 0
    reused_pixels: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SizeCost:
    """Measured or estimated cost of the whole study at one image size.

    Attributes:
        step_seconds: seconds of one training step per model, summed over the models.
        fixed_seconds: seconds that do not grow with the steps (evaluation, start-up, saving).
    """

    step_seconds: float
    fixed_seconds: float

    def steps_within(self, seconds: float) -> int:
        """Training steps (per model) that fit in ``seconds`` after the fixed costs."""
        if seconds <= self.fixed_seconds:
            return 0
        return int((seconds - self.fixed_seconds) / max(self.step_seconds, 1e-9))


@dataclass(frozen=True)
class CostModel:
    """How the study's time depends on the image size, given measured step times.

    ``step_seconds[(model, factor)]`` are measured training-step times; sizes not measured are
    estimated with a linear fit of time against pixel count through the measured sizes (with
    a single measured size: proportional to the pixel count).
    """

    models: tuple[str, ...]
    data_shape: tuple[int, int]
    test_images: int
    metric_seconds_per_pixel: float
    step_seconds: dict
    # start-up, checkpoints, TensorBoard and loading the training images (the calibration adds
    # the measured loading: about 6 s of the 10 s measured per model on BraTS' 4,329 slices)
    overhead_per_model: float = 4.0
    # loading both contrasts of the training split (measured; the reference points load them)
    train_load_seconds: float = 0.0
    crops: dict | None = None  # native-resolution mode: rung key -> crop side (0 = whole)
    volume_slices: int = 0  # axial slices of the test volumes judged whole (evaluate-volumes)
    plane_slices: int = 0  # their slices along all three axes (net.planes=3)
    volume_voxels: int = 0  # their voxels
    planes: int = 1  # planes each test volume is translated along (net.planes)
    # measured translation: (model, rung) -> seconds per translated pixel; what is translated
    pixel_seconds: dict = field(default_factory=dict)
    counts: TranslationCounts | None = None
    # measured on a test volume: one candidate volume's measures, loading one participant
    volume_measure_seconds: float | None = None
    volume_load_seconds: float | None = None

    def train_shape(self, factor: float) -> tuple[int, int]:
        """The training images' (or crops') size at rung ``factor``."""
        if self.crops is not None:
            return crop_shape(tuple(self.data_shape), self.crops[factor])
        return working_shape(self.data_shape, factor)

    def eval_shape(self, factor: float) -> tuple[int, int]:
        """The size whole images are translated and measured at."""
        return tuple(self.data_shape) if self.crops is not None else self.train_shape(factor)

    def pixels(self, factor: float) -> int:
        h, w = self.train_shape(factor)
        return h * w

    def eval_pixels(self, factor: float) -> int:
        h, w = self.eval_shape(factor)
        return h * w

    def translated_pixels(self, factor: float) -> int:
        """Pixels a generator computes to translate one whole image: in native mode the
        overlapping tiles of the training crop (inference/batches.py), else the image."""
        if self.crops is None:
            return self.eval_pixels(factor)
        (height, width), (th, tw) = self.eval_shape(factor), self.train_shape(factor)
        return len(tile_starts(height, th)) * len(tile_starts(width, tw)) * th * tw

    def _image_seconds(self, model: str, factor: float) -> float:
        """One generator forward of a whole image: a 32nd of a training step (batch 4) of the
        same size; in native mode, where a large whole slice is translated in tiles after
        training on small crops, an 80th of the step scaled by pixels (measured on 2 cores:
        0.05-0.08 s per 220x184 slice against a 0.29 s step on 48x48 crops)."""
        ratio = self.translated_pixels(factor) / self.pixels(factor)
        return self.model_step(model, factor) * ratio / (32 if self.crops is None else 80)

    def model_step(self, model: str, factor: float) -> float:
        """Seconds per training step of ``model`` at ``factor``: measured, or estimated with a
        least-squares line through the measured sizes (time = a + b * pixels, b >= 0); with one
        measured size, proportional to the pixel count."""
        measured = [(self.pixels(f), t) for (m, f), t in self.step_seconds.items() if m == model]
        if not measured:
            raise KeyError(f"no step time measured for {model}")
        px = self.pixels(factor)
        exact = [t for p, t in measured if p == px]
        if exact:
            return statistics.fmean(exact)
        if len({p for p, _ in measured}) == 1:
            p0, t0 = measured[0]
            return t0 * px / p0
        pixels = [p for p, _ in measured]
        times = [t for _, t in measured]
        slope = max(statistics.linear_regression(pixels, times).slope, 0.0)
        intercept = statistics.fmean(times) - slope * statistics.fmean(pixels)
        smallest = min(measured)
        # never below proportional scaling from the smallest measured size
        return max(intercept + slope * px, smallest[1] * min(1.0, px / smallest[0]))

    def measured_pixel_seconds(self, model: str, factor: float) -> float | None:
        """Measured seconds per translated pixel of ``model`` at rung ``factor`` (the nearest
        measured rung's; None when nothing was measured)."""
        measured = {f: s for (m, f), s in self.pixel_seconds.items() if m == model}
        if not measured:
            return None
        nearest = min(measured, key=lambda f: abs(math.log(f / factor)))
        return measured[nearest]

    def evaluate_seconds(self, model: str, factor: float) -> float:
        """Translating the test split both ways, timing synthesis, and the measures (the
        model's stage in the study; its whole test volumes come later, in
        :meth:`volumes_seconds`)."""
        pixels = self.eval_pixels(factor)
        # the metric cost is of all measures (whole image and inside the mask) of a pair
        measures = self.test_images * 2 * pixels * self.metric_seconds_per_pixel
        per_pixel = self.measured_pixel_seconds(model, factor)
        if per_pixel is None or self.counts is None:
            per_image = self._image_seconds(model, factor)
            return self.test_images * 2 * 1.4 * per_image + measures + 2.0
        translate = self.counts.eval_pixels[factor]
        timing = synthesis_timing_images(self.test_images) * self.translated_pixels(factor)
        return 2 * (translate + timing) * per_pixel + measures + 2.0

    def _volume_measures(self) -> float:
        """Measuring every test volume once (one direction, one candidate)."""
        if self.counts is not None and self.volume_measure_seconds is not None:
            return self.counts.test_volumes * self.volume_measure_seconds
        return self.volume_voxels * VOLUME_MEASURE_SECONDS_PER_VOXEL

    def model_volumes_seconds(self, model: str, factor: float) -> float:
        """Translating the whole test volumes both ways with ``model`` (along three planes: every
        axis's slices) and measuring them."""
        per_pixel = self.measured_pixel_seconds(model, factor)
        if per_pixel is None or self.counts is None:
            slices = self.plane_slices if self.planes == 3 else self.volume_slices
            translate = slices * 2 * self._image_seconds(model, factor)
        else:
            translate = 2 * self.counts.volume_pixels[(factor, self.planes)] * per_pixel
        return translate + 2 * self._volume_measures()

    def volumes_seconds(self, factor: float) -> float:
        """The study's whole-volume stage (after every model is evaluated): loading the
        volumes (the training ones too, for the lookup), each model's volumes and the
        baselines (copy and lookup, both directions); 0 without volumes."""
        if not self.volume_slices and not self.volume_voxels:
            return 0.0
        loads = 0.0
        if self.counts is not None and self.volume_load_seconds is not None:
            volumes = self.counts.test_volumes + self.counts.train_volumes
            loads = volumes * self.volume_load_seconds
        baselines = 2 * 2 * self._volume_measures()
        models = sum(self.model_volumes_seconds(m, factor) for m in self.models)
        return loads + baselines + models

    def references_seconds(self, factor: float) -> float:
        """The reference points, measured once per study (4 stacks of the test split)."""
        pixels = self.eval_pixels(factor)
        measures = self.test_images * 4 * pixels * self.metric_seconds_per_pixel
        return measures + self.train_load_seconds + 2.0

    def __call__(self, factor: float) -> SizeCost:
        step = sum(self.model_step(m, factor) for m in self.models)
        fixed = sum(self.evaluate_seconds(m, factor) for m in self.models)
        fixed += self.references_seconds(factor) + self.volumes_seconds(factor)
        fixed += self.overhead_per_model * len(self.models)
        return SizeCost(step_seconds=step, fixed_seconds=fixed + REPORT_SECONDS)
