"""Plan a study to a time budget: how many training steps, at which image size.

The planner is a pure function of measured costs (:func:`choose`, :func:`build_plan`);
:func:`mrtranslate.calibration.calibrate_and_plan` measures those costs on this machine (a few
training steps per model at the quick settings, in the resolved precision) and builds a
:class:`StudyPlan` with it.

All models get the same image size (batch 4, as in the quick profile), so that their results
stay comparable, and the same number of steps, except in native mode (below), where each
model gets the same training time. As the budget grows the plan grows along one ladder, never
giving fewer steps or a smaller image for more time:

1. below ``MIN_STEPS`` at the base size (the quick profile's, 76x64 for the phantom): a coarser
   image size with ``MIN_STEPS`` steps (or fewer, at the coarsest size, when even that does not
   fit; the plan then says it does not fit);
2. at the base size: from ``MIN_STEPS`` up to ``TARGET_STEPS`` steps;
3. finer sizes with ``TARGET_STEPS`` steps, up to the data set's full size;
4. at full size: more steps, up to the paper's 200 epochs.

**Native resolution on crops** (the study's mode for data imported from volumes): images stay
at the data's resolution (no down-sampling) and training uses random square crops around the
brain (``train.crop``); the ladder's rungs are crop sides instead of down-sampling factors
(``BASE_CROP`` is the base rung, smaller crops below it, larger ones above, the whole image
last), and a larger crop up to ``NATIVE_STEP_CROP`` (96) is taken as soon as it gets
``NATIVE_TARGET_STEPS`` (fewer than ``TARGET_STEPS``: at equal work 96x96 crops measured better
than 64x64), a larger one only once it gets ``NATIVE_LARGE_CROP_STEPS`` (at equal work, more
steps on 96x96 crops measured better than larger crops). A rung's key is
``sqrt(image pixels / crop pixels)``, so larger keys stay cheaper, as with factors.
Evaluation and the whole-volume judgement translate whole slices at full size. The rung and
its steps are chosen as if every model trained the same steps; that training time is then
shared equally, so a model whose step is cheaper trains more steps (``equal_time_steps``):
measured on real scans, Generators_s gains much from more steps and the adversarial models
stay unusable at the steps a CPU budget allows (README, "The same training time per model").
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from mrtranslate.config import RunConfig
from mrtranslate.data.tensors import auto_downsample, crop_shape, tile_starts, working_shape

MIN_STEPS = 210  # a sensible minimum (35 x 6): every model already beats copying the input
TARGET_STEPS = 600  # steps reached at the base size before the images grow
# Native mode (crops of volume data): the crops grow once a larger one gets this many steps.
# Measured (Generators_s, three open-ms folds, equal work): 96x96 crops with 360 steps beat
# 64x64 with 804 in MAE on every fold (r -0.00 / +0.01 / +0.06), 128x128 with
# 204 steps did not; 112x112 with 402 steps matched 80x80 with 786 (README, "Crop or steps").
NATIVE_TARGET_STEPS = 360
# ... but only up to this side; a larger crop needs NATIVE_LARGE_CROP_STEPS. Measured
# (Generators_s, equal work): 96x96 with 1,608 steps beat 192x184 with 402 on two folds of two
# (T1w->T2w r 0.77 vs 0.73, 0.75 vs 0.69), and 96x96 with 804 beat 112x112 with 402 and 80x80
# with 786 on all three (README, "Steps before larger crops").
NATIVE_STEP_CROP = 96
NATIVE_LARGE_CROP_STEPS = 1608
STEP_MULTIPLE = 6  # steps are a multiple of the quick profile's 6 epochs
FLOOR_STEPS = 12  # never fewer steps than this, budget or not
FACTORS = (8, 6, 5, 4, 3.5, 3, 2.5, 2, 1.5, 1)  # candidate down-sampling factors, coarse to fine
PLANNED_FRACTION = 0.9  # the plan fills this fraction of the budget; the rest absorbs error
EPOCHS = 6
DEFAULT_BUDGET_MINUTES = 15.0  # the study's budget when none is given
BATCH = 4
CROPS = (48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256, 320, 384)  # candidate sides
BASE_CROP = 64
# Whole-volume judgement (evaluate-volumes): seconds to measure one candidate volume per voxel
# (measured: about 5 s for a 182x218x182 volume on 2 cores)
VOLUME_MEASURE_SECONDS_PER_VOXEL = 5.0 / (182 * 218 * 182)
# Three-plane translation of the test volumes (net.planes=3) only while the whole-volume stage
# is planned at most this share of the budget (else the volumes are translated axially); the
# estimate of that stage's translating is about half the time measured on an AVX-512 CPU
PLANES_MAX_SHARE = 0.15


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


def _round_steps(steps: float) -> int:
    return max(FLOOR_STEPS, int(steps) // STEP_MULTIPLE * STEP_MULTIPLE)


def choose(
    factors: list[float],
    base: float,
    cost: Callable[[float], SizeCost],
    seconds: float,
    max_steps: int,
    min_steps: int = MIN_STEPS,
    target_steps: int | Callable[[float], int] = TARGET_STEPS,
    fill: bool = False,
) -> tuple[float, int, bool]:
    """The (down-sampling factor, steps, fits) of the ladder's largest rung within ``seconds``.

    Args:
        factors: candidate factors from coarse to fine (each a valid size), containing ``base``.
        base: the quick profile's factor.
        cost: the study's cost at a factor (cost grows as the factor falls).
        seconds: time available for training and the fixed costs.
        max_steps: the steps of the paper's schedule (the cap at full size).
        target_steps: the steps a rung above the base needs before the plan takes it (and
            the base's before finer rungs are considered); a function of the rung when rungs
            differ (native mode: larger crops need more).
        fill: on the chosen rung above the base, train as many steps as fit (at least
            ``target_steps``) instead of exactly ``target_steps`` (native mode: the budget is
            used, not left between rungs).
    Returns:
        the factor, the steps per model (a multiple of 6) and whether it fits in ``seconds``.
    """
    finest = factors[-1]
    target = target_steps if callable(target_steps) else lambda _: target_steps
    at = {f: cost(f).steps_within(seconds) for f in factors}
    if at[base] >= min_steps:
        if at[base] < target(base):
            return base, _round_steps(at[base]), True
        finer = [f for f in factors if f < base and at[f] >= target(f)]
        if not finer:
            steps = min(at[base], max_steps) if fill else target(base)
            return base, _round_steps(steps), True
        factor = min(finer)
        if factor == finest or fill:
            return factor, _round_steps(min(at[factor], max_steps)), True
        return factor, _round_steps(target(factor)), True
    coarser = [f for f in factors if f > base and at[f] >= min_steps]
    if coarser:
        return min(coarser), _round_steps(min_steps), True
    coarsest = max(factors)
    steps = _round_steps(at[coarsest])
    return coarsest, steps, at[coarsest] >= FLOOR_STEPS


def candidate_factors(data_shape: tuple[int, int]) -> tuple[list[float], float]:
    """Valid factors (coarse to fine, one per distinct size) and the base (quick) factor."""
    base = auto_downsample(data_shape)
    factors, seen = [], set()
    for factor in FACTORS:
        try:
            shape = working_shape(data_shape, factor)
        except ValueError:
            continue
        if shape not in seen:
            seen.add(shape)
            factors.append(factor)
    if base not in factors:
        factors = sorted({*factors, base}, reverse=True)
    return factors, base


def crop_key(data_shape: tuple[int, int], crop: int) -> float:
    """The ladder key of crop side ``crop`` (0 = the whole image): sqrt(image / crop pixels)."""
    h, w = data_shape
    ch, cw = crop_shape(tuple(data_shape), crop)
    return math.sqrt(h * w / (ch * cw))


def native_target_steps(crops: dict[float, int]) -> Callable[[float], int]:
    """Steps a crop rung needs before a native plan takes it: ``NATIVE_TARGET_STEPS`` up to
    ``NATIVE_STEP_CROP`` pixels, ``NATIVE_LARGE_CROP_STEPS`` above (and for whole images)."""

    def target(key: float) -> int:
        side = crops[key]
        small = 0 < side <= NATIVE_STEP_CROP
        return NATIVE_TARGET_STEPS if small else NATIVE_LARGE_CROP_STEPS

    return target


def candidate_crops(data_shape: tuple[int, int]) -> tuple[dict[float, int], float]:
    """Crop rungs for native-resolution training: key -> crop side (0 = whole image), and the
    base key. Crops that cover the whole image collapse into the whole-image rung."""
    rungs: dict[float, int] = {}
    for crop in CROPS:
        if crop < max(data_shape):
            rungs.setdefault(crop_key(data_shape, crop), crop)
    rungs[1.0] = 0
    base = crop_key(data_shape, BASE_CROP) if max(data_shape) > BASE_CROP else 1.0
    return dict(sorted(rungs.items(), reverse=True)), base


@dataclass
class ModelPlan:
    """One model's share of the plan."""

    model: str
    seconds_per_step: float
    train_seconds: float
    evaluate_seconds: float
    # this model's training steps; 0: the plan's ``steps`` (plans written before native mode
    # shared the training time equally)
    steps: int = 0
    # algorithm per convolution layer, measured in the calibration at the planned size; a
    # replayed plan trains with exactly these (layers not named: direct)
    conv_algorithms: dict[str, str] = field(default_factory=dict)
    # the first plan's steps when the study re-planned them from the speed it measured while
    # running (mrtranslate.pacing); 0: never re-planned
    calibrated_steps: int = 0


@dataclass
class StudyPlan:
    """What the study will do, and what it expects to take (recorded in ``study.json``)."""

    budget_minutes: float
    device: str
    precision: str
    data_shape: list[int]
    downsample: float
    image_shape: list[int]
    steps: int
    batch_size: int
    epochs: int
    fits: bool
    models: list[ModelPlan]
    fixed_seconds: dict[str, float] = field(default_factory=dict)
    calibration: dict = field(default_factory=dict)
    crop: int = 0  # side of the random training crops at full size (0: whole images)
    # supervised losses inside the brain only (volume data: measured better on real scans)
    brain_only: bool = False
    # whole volumes translated along this many planes, averaged (net.planes; 3 for data
    # imported with --planes 3)
    planes: int = 1
    # each re-planning of the steps while the study ran (mrtranslate.pacing): after which
    # model, the seconds left, the measured speeds against the calibration, the new steps
    replans: list[dict] = field(default_factory=list)

    @property
    def estimated_seconds(self) -> float:
        per_model = sum(m.train_seconds + m.evaluate_seconds for m in self.models)
        return per_model + sum(self.fixed_seconds.values())

    def steps_of(self, model: str) -> int:
        """Training steps of ``model`` (the plan's ``steps`` unless the model has its own)."""
        own = next((m.steps for m in self.models if m.model == model), 0)
        return own or self.steps

    def apply(self, cfg: RunConfig) -> RunConfig:
        """Give ``cfg`` (any model's) this plan's image size, the model's steps, batch,
        precision, crops and loss region, in place; returns it, validated."""
        train = cfg.train
        train.downsample = float(self.downsample)
        train.epochs = self.epochs
        train.steps_per_epoch = self.steps_of(cfg.model) // self.epochs
        train.batch_size = self.batch_size
        train.precision = self.precision
        train.crop = self.crop
        cfg.loss.brain_only = self.brain_only
        cfg.net.planes = self.planes
        cfg.validate()
        return cfg

    def conv_algorithms_of(self, model: str) -> dict[str, str]:
        """The convolution algorithms this plan measured for ``model`` (layers not named:
        direct), so that replaying the plan gives the same numbers."""
        return next((m.conv_algorithms for m in self.models if m.model == model), {})

    def to_dict(self) -> dict:
        return {**asdict(self), "estimated_seconds": self.estimated_seconds}

    @classmethod
    def from_dict(cls, data: dict) -> StudyPlan:
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        values["models"] = [ModelPlan(**m) for m in data["models"]]
        return cls(**values)

    def table(self) -> str:
        """The plan as printed before training."""
        h, w = self.image_shape
        if self.crop:
            ch, cw = crop_shape(tuple(self.image_shape), self.crop)
            size = f"{h}x{w} pixels (the data's resolution), training on {ch}x{cw} crops"
            size += ", supervised losses inside the brain" if self.brain_only else ""
            size += ", volumes translated along 3 planes" if self.planes == 3 else ""
        else:
            size = (
                f"{h}x{w} pixels (data {self.data_shape[0]}x{self.data_shape[1]}, "
                f"{self.downsample:g}x down-sampled)"
            )
        steps = {self.steps_of(m.model) for m in self.models}
        if len(steps) > 1:
            share = f"the same training time per model ({min(steps)}-{max(steps)} steps"
            share += f" of batch {self.batch_size})"
        else:
            share = f"{self.steps} steps of batch {self.batch_size} per model"
        lines = [
            f"plan for {self.budget_minutes:g} minutes on {self.device} ({self.precision}): "
            f"{size}, {share}",
            f"  {'model':<14}{'s/step':>8}{'steps':>7}{'train min':>11}{'evaluate min':>14}",
        ]
        for m in self.models:
            lines.append(
                f"  {m.model:<14}{m.seconds_per_step:>8.3f}{self.steps_of(m.model):>7}"
                f"{m.train_seconds / 60:>11.1f}{m.evaluate_seconds / 60:>14.1f}"
            )
        fixed = ", ".join(f"{k} {v:.0f} s" for k, v in self.fixed_seconds.items())
        lines.append(f"  other: {fixed}; estimated total {self.estimated_seconds / 60:.1f} min")
        if not self.fits:
            lines.append(
                "  warning: even the smallest plan does not fit this budget; it will run over"
            )
        return "\n".join(lines)


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
    overhead_per_model: float = 4.0  # start-up, loading images, checkpoints, TensorBoard
    crops: dict | None = None  # native-resolution mode: rung key -> crop side (0 = whole)
    volume_slices: int = 0  # axial slices of the test volumes judged whole (evaluate-volumes)
    plane_slices: int = 0  # their slices along all three axes (net.planes=3)
    volume_voxels: int = 0  # their voxels
    planes: int = 1  # planes each test volume is translated along (net.planes)

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

    def evaluate_seconds(self, model: str, factor: float) -> float:
        """Translating the test split both ways (and timing it), plus the measures (the
        model's stage in the study; its whole test volumes come later, in
        :meth:`volumes_seconds`)."""
        per_image = self._image_seconds(model, factor)
        translate = self.test_images * 2 * 1.4 * per_image
        pixels = self.eval_pixels(factor)
        measures = self.test_images * 2 * 2 * pixels * self.metric_seconds_per_pixel
        return translate + measures + 2.0

    def model_volumes_seconds(self, model: str, factor: float) -> float:
        """Translating the whole test volumes both ways with ``model`` (along three planes: every
        axis's slices, each costing about an axial slice) and measuring them."""
        slices = self.plane_slices if self.planes == 3 else self.volume_slices
        volumes = slices * 2 * self._image_seconds(model, factor)
        return volumes + 2 * self.volume_voxels * VOLUME_MEASURE_SECONDS_PER_VOXEL

    def volumes_seconds(self, factor: float) -> float:
        """The study's whole-volume stage (after every model is evaluated): each model's
        volumes and the baselines (copy and lookup, both directions); 0 without volumes."""
        if not self.volume_slices and not self.volume_voxels:
            return 0.0
        baselines = 2 * 2 * self.volume_voxels * VOLUME_MEASURE_SECONDS_PER_VOXEL
        return baselines + sum(self.model_volumes_seconds(m, factor) for m in self.models)

    def references_seconds(self, factor: float) -> float:
        """The reference points, measured once per study (4 stacks of the test split)."""
        pixels = self.eval_pixels(factor)
        return self.test_images * 8 * pixels * self.metric_seconds_per_pixel + 2.0

    def __call__(self, factor: float) -> SizeCost:
        step = sum(self.model_step(m, factor) for m in self.models)
        fixed = sum(self.evaluate_seconds(m, factor) for m in self.models)
        fixed += self.references_seconds(factor) + self.volumes_seconds(factor)
        fixed += self.overhead_per_model * len(self.models)
        return SizeCost(step_seconds=step, fixed_seconds=fixed + REPORT_SECONDS)


REPORT_SECONDS = 5.0
VOLUMES_STAGE = "whole volumes"  # the key of the whole-volume stage in a plan's fixed_seconds


def equal_time_steps(step_seconds: dict[str, float], steps: int, max_steps: int) -> dict[str, int]:
    """Steps per model that share equally the training time of ``steps`` steps of every model:
    each model trains (sum of the step times x ``steps``) / (number of models) seconds, so a
    model with a cheaper step trains more steps (a multiple of the 6 epochs, at least
    ``FLOOR_STEPS``, at most ``max_steps``, the paper's schedule)."""
    share = steps * sum(step_seconds.values()) / len(step_seconds)
    return {m: _round_steps(min(share / max(t, 1e-9), max_steps)) for m, t in step_seconds.items()}


def build_plan(
    cost: CostModel,
    factors: list[float],
    base: float,
    budget_minutes: float,
    spent_seconds: float,
    train_images: int,
    device: str,
    precision: str,
    calibration: dict | None = None,
    conv_algorithms: dict | None = None,
) -> StudyPlan:
    """Choose size and steps for the time left (``PLANNED_FRACTION`` of the budget, less what
    was already spent) and describe the result. Three-plane data (``cost.planes``) whose volume
    stage would take over :data:`PLANES_MAX_SHARE` of the budget is translated axially: a short
    budget cannot pay three planes (measured: a 15-minute study left its models 12 steps)."""
    seconds = PLANNED_FRACTION * budget_minutes * 60 - spent_seconds
    max_steps = 200 * math.ceil(train_images / BATCH)
    native = cost.crops is not None
    target = native_target_steps(cost.crops) if native else TARGET_STEPS
    factor, steps, fits = choose(
        factors, base, cost, seconds, max_steps, target_steps=target, fill=native
    )
    step_seconds = {m: cost.model_step(m, factor) for m in cost.models}
    own = equal_time_steps(step_seconds, steps, max_steps) if native else {}
    models = [
        ModelPlan(
            model=m,
            seconds_per_step=step_seconds[m],
            train_seconds=step_seconds[m] * own.get(m, steps) + cost.overhead_per_model,
            evaluate_seconds=cost.evaluate_seconds(m, factor),
            steps=own.get(m, 0),
            conv_algorithms=dict((conv_algorithms or {}).get((m, factor), {})),
        )
        for m in cost.models
    ]
    plan = StudyPlan(
        budget_minutes=budget_minutes,
        device=device,
        precision=precision,
        data_shape=list(cost.data_shape),
        downsample=1.0 if cost.crops is not None else factor,
        image_shape=list(cost.eval_shape(factor)),
        crop=cost.crops[factor] if cost.crops is not None else 0,
        brain_only=cost.crops is not None,
        planes=cost.planes,
        steps=steps,
        batch_size=BATCH,
        epochs=EPOCHS,
        fits=fits,
        models=models,
        fixed_seconds=_fixed_seconds(cost, factor, spent_seconds),
        calibration=calibration or {},
    )
    volumes = plan.fixed_seconds.get(VOLUMES_STAGE, 0.0)
    if plan.planes == 3 and volumes > PLANES_MAX_SHARE * budget_minutes * 60:
        axial = dataclasses.replace(cost, planes=1)
        args = (factors, base, budget_minutes, spent_seconds, train_images, device, precision)
        return build_plan(axial, *args, calibration, conv_algorithms)
    return plan


def _fixed_seconds(cost: CostModel, factor: float, spent_seconds: float) -> dict[str, float]:
    """The plan's stages outside the models': spent, references, whole volumes, report."""
    volumes = cost.volumes_seconds(factor)
    return {
        "already spent": spent_seconds,
        "references": cost.references_seconds(factor),
        **({VOLUMES_STAGE: volumes} if volumes else {}),
        "report": REPORT_SECONDS,
    }


@dataclass
class StudyShape:
    """What the planner needs to know about the study: models and data set sizes."""

    models: list[str]
    data_shape: tuple[int, int]
    train_images: int
    test_images: int
    native: bool = False  # train at the data's resolution on crops (volume data)
    volume_slices: int = 0  # axial slices of the test volumes (judged whole after training)
    plane_slices: int = 0  # their slices along all three axes
    volume_voxels: int = 0
    planes: int = 1  # 3: the training data holds slices along three planes (import --planes 3)
