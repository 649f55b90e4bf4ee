"""Plan a study to a time budget: how many training steps, at which image size.

The planner is a pure function of measured costs (:func:`choose`); :func:`calibrate_and_plan`
measures those costs on this machine (a few training steps per model at the quick settings, in
the resolved precision, at most about a minute in all) and builds a :class:`StudyPlan`.

All models get the same image size and the same number of steps (batch 4, as in the quick
profile), so that their results stay comparable. As the budget grows the plan grows along one
ladder, never giving fewer steps or a smaller image for more time:

1. below ``MIN_STEPS`` at the base size (the quick profile's, 76x64 for the phantom): a coarser
   image size with ``MIN_STEPS`` steps (or fewer, at the coarsest size, when even that does not
   fit; the plan then says it does not fit);
2. at the base size: from ``MIN_STEPS`` up to ``TARGET_STEPS`` steps;
3. finer sizes with ``TARGET_STEPS`` steps, up to the data set's full size;
4. at full size: more steps, up to the paper's 200 epochs.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from mrtranslate.data.tensors import auto_downsample, working_shape

MIN_STEPS = 210  # a sensible minimum (35 x 6): every model already beats copying the input
TARGET_STEPS = 600  # steps reached at the base size before the images grow
STEP_MULTIPLE = 6  # steps are a multiple of the quick profile's 6 epochs
FLOOR_STEPS = 12  # never fewer steps than this, budget or not
FACTORS = (8, 6, 5, 4, 3.5, 3, 2.5, 2, 1.5, 1)  # candidate down-sampling factors, coarse to fine
PLANNED_FRACTION = 0.9  # the plan fills this fraction of the budget; the rest absorbs error
EPOCHS = 6
BATCH = 4


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
    target_steps: int = TARGET_STEPS,
) -> tuple[float, int, bool]:
    """The (down-sampling factor, steps, fits) of the ladder's largest rung within ``seconds``.

    Args:
        factors: candidate factors from coarse to fine (each a valid size), containing ``base``.
        base: the quick profile's factor.
        cost: the study's cost at a factor (cost grows as the factor falls).
        seconds: time available for training and the fixed costs.
        max_steps: the steps of the paper's schedule (the cap at full size).
    Returns:
        the factor, the steps per model (a multiple of 6) and whether it fits in ``seconds``.
    """
    finest = factors[-1]
    at = {f: cost(f).steps_within(seconds) for f in factors}
    if at[base] >= min_steps:
        if at[base] < target_steps:
            return base, _round_steps(at[base]), True
        finer = [f for f in factors if f < base and at[f] >= target_steps]
        if not finer:
            return base, _round_steps(target_steps), True
        factor = min(finer)
        if factor == finest:
            return factor, _round_steps(min(at[factor], max_steps)), True
        return factor, _round_steps(target_steps), True
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


@dataclass
class ModelPlan:
    """One model's share of the plan."""

    model: str
    seconds_per_step: float
    train_seconds: float
    evaluate_seconds: float
    # algorithm per convolution layer, measured in the calibration at the planned size; a
    # replayed plan trains with exactly these (layers not named: direct)
    conv_algorithms: dict[str, str] = field(default_factory=dict)


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

    @property
    def estimated_seconds(self) -> float:
        per_model = sum(m.train_seconds + m.evaluate_seconds for m in self.models)
        return per_model + sum(self.fixed_seconds.values())

    def overrides(self) -> list[str]:
        """The ``--set`` overrides that give every model this plan's size, steps and precision."""
        per_epoch = self.steps // self.epochs
        return [
            f"train.downsample={self.downsample:g}",
            f"train.epochs={self.epochs}",
            f"train.steps_per_epoch={per_epoch}",
            f"train.batch_size={self.batch_size}",
            f"train.precision={self.precision}",
        ]

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
        lines = [
            f"plan for {self.budget_minutes:g} minutes on {self.device} ({self.precision}): "
            f"{h}x{w} pixels (data {self.data_shape[0]}x{self.data_shape[1]}, "
            f"{self.downsample:g}x down-sampled), {self.steps} steps of batch {self.batch_size} "
            "per model",
            f"  {'model':<14}{'s/step':>8}{'steps':>7}{'train min':>11}{'evaluate min':>14}",
        ]
        for m in self.models:
            lines.append(
                f"  {m.model:<14}{m.seconds_per_step:>8.3f}{self.steps:>7}"
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

    def pixels(self, factor: float) -> int:
        h, w = working_shape(self.data_shape, factor)
        return h * w

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
        """Translating the test split both ways (and timing it), plus the measures."""
        # one generator forward per image: well under a tenth of a training step per image
        per_image = self.model_step(model, factor) / BATCH / 8
        translate = self.test_images * 2 * 1.4 * per_image
        measures = self.test_images * 2 * 2 * self.pixels(factor) * self.metric_seconds_per_pixel
        return translate + measures + 2.0

    def references_seconds(self, factor: float) -> float:
        """The reference points, measured once per study (4 stacks of the test split)."""
        return self.test_images * 8 * self.pixels(factor) * self.metric_seconds_per_pixel + 2.0

    def __call__(self, factor: float) -> SizeCost:
        step = sum(self.model_step(m, factor) for m in self.models)
        fixed = sum(self.evaluate_seconds(m, factor) for m in self.models)
        fixed += self.references_seconds(factor) + self.overhead_per_model * len(self.models)
        return SizeCost(step_seconds=step, fixed_seconds=fixed + REPORT_SECONDS)


REPORT_SECONDS = 5.0


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
    was already spent) and describe the result."""
    seconds = PLANNED_FRACTION * budget_minutes * 60 - spent_seconds
    max_steps = 200 * math.ceil(train_images / BATCH)
    factor, steps, fits = choose(factors, base, cost, seconds, max_steps)
    models = [
        ModelPlan(
            model=m,
            seconds_per_step=cost.model_step(m, factor),
            train_seconds=cost.model_step(m, factor) * steps + cost.overhead_per_model,
            evaluate_seconds=cost.evaluate_seconds(m, factor),
            conv_algorithms=dict((conv_algorithms or {}).get((m, factor), {})),
        )
        for m in cost.models
    ]
    return StudyPlan(
        budget_minutes=budget_minutes,
        device=device,
        precision=precision,
        data_shape=list(cost.data_shape),
        downsample=factor,
        image_shape=list(working_shape(cost.data_shape, factor)),
        steps=steps,
        batch_size=BATCH,
        epochs=EPOCHS,
        fits=fits,
        models=models,
        fixed_seconds={
            "already spent": spent_seconds,
            "references": cost.references_seconds(factor),
            "report": REPORT_SECONDS,
        },
        calibration=calibration or {},
    )


@dataclass
class StudyShape:
    """What the planner needs to know about the study: models and data set sizes."""

    models: list[str]
    data_shape: tuple[int, int]
    train_images: int
    test_images: int


class _Calibration:
    """Step times measured on this machine (quick settings, resolved precision)."""

    def __init__(self, study: StudyShape, device, precision: str, say: Callable[[str], None]):
        from mrtranslate.bench import metrics_seconds

        self.study, self.device, self.precision, self.say = study, device, precision, say
        self.start = time.perf_counter()
        self.factors, self.base = candidate_factors(study.data_shape)
        self.step_seconds: dict = {}
        self.conv_algorithms: dict = {}
        h, w = working_shape(study.data_shape, self.base)
        self.metric_cost = metrics_seconds((h, w), 16) / (16 * h * w)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def measure(self, factor: float) -> None:
        from mrtranslate.bench import quick_step_seconds

        shape = working_shape(self.study.data_shape, factor)
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
        )
        record = {
            "seconds": self.seconds,
            "step_seconds": {
                f"{m}@{'x'.join(map(str, working_shape(study.data_shape, f)))}": t
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
    max_calibration_seconds: float = 60.0,
) -> StudyPlan:
    """Measure this machine's step times and plan; measures again at the chosen size when it
    differs from the measured ones (up to three sizes, within ``max_calibration_seconds``)."""
    calibration = _Calibration(study, device, precision, say)
    calibration.measure(calibration.base)
    plan = calibration.plan(budget_minutes, spent_seconds)
    for _ in range(3):
        measured = {f for _, f in calibration.step_seconds}
        if plan.downsample in measured or calibration.seconds > max_calibration_seconds:
            break
        calibration.measure(plan.downsample)
        plan = calibration.plan(budget_minutes, spent_seconds)
    return plan
