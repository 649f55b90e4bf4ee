"""Plan a study to a time budget: how many training steps, at which image size.

The planner is a pure function of measured costs (:func:`choose`, :func:`build_plan`);
:func:`mrtranslate.study.calibration.calibrate_and_plan` measures those costs on this machine (a few
training steps per model at the quick settings, in the resolved precision) and builds a
:class:`StudyPlan` with it.

All models get the same image size (batch 4, as in the quick profile), so that their results
stay comparable, and the same number of steps, except in native mode (below), where each
model gets the same training time. As the budget grows the plan grows along one ladder, never
giving a smaller image for more time, nor fewer steps at the same image size; on every rung the
models train as many steps as the budget pays, so no time is left between rungs:

1. below ``MIN_STEPS`` at the base size (the quick profile's, 76x64 for the phantom): the finest
   coarser image size that gets ``MIN_STEPS`` steps (or, at the coarsest size, fewer, when even
   that does not fit; the plan then says it does not fit);
2. at the base size: from ``MIN_STEPS`` steps on, until a finer size gets ``TARGET_STEPS``;
3. the finest size that gets ``TARGET_STEPS`` steps, up to the data set's full size;
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
stay unusable at the steps a CPU budget allows
(docs/experiments/2026-12-02-the-same-training-time-per-model-and-skips.md).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from mrtranslate.config import RunConfig
from mrtranslate.data.tensors import auto_downsample, crop_shape, working_shape
from mrtranslate.hardware import PrecisionChoice
from mrtranslate.study.cost import (
    REPORT_SECONDS,
    VOLUMES_STAGE,
    CostModel,
    SizeCost,
)

MIN_STEPS = 210  # a sensible minimum (35 x 6): every model already beats copying the input
# The floor: the least training that makes a model worth judging. Every model of a plan gets
# at least MIN_STEPS steps and, in native mode, crops of at least FLOOR_CROP pixels a side;
# a budget that cannot pay it is refused before anything runs (study --force runs anyway and
# the report marks those models under-trained). Measured on BraTS, Generators_s at native
# resolution (docs/experiments/2026-12-04-the-study-on-any-data-set.md): T1w->T2w r 0.09 after
# 72 steps of 48x48 crops, 0.43 after 210 of 64x64, 0.51 after 600: below the floor a model is
# judged mostly on how little it trained.
FLOOR_CROP = 64
TARGET_STEPS = 600  # steps reached at the base size before the images grow
# Native mode (crops of volume data): the crops grow once a larger one gets this many steps.
# Measured (Generators_s, three open-ms folds, equal work): 96x96 crops with 360 steps beat
# 64x64 with 804 in MAE on every fold (r -0.00 / +0.01 / +0.06), 128x128 with
# 204 steps did not; 112x112 with 402 steps matched 80x80 with 786
# (docs/experiments/2026-12-02-crop-or-steps.md).
NATIVE_TARGET_STEPS = 360
# ... but only up to this side; a larger crop needs NATIVE_LARGE_CROP_STEPS. Measured
# (Generators_s, equal work): 96x96 with 1,608 steps beat 192x184 with 402 on two folds of two
# (T1w->T2w r 0.77 vs 0.73, 0.75 vs 0.69), and 96x96 with 804 beat 112x112 with 402 and 80x80
# with 786 on all three (docs/experiments/2026-12-02-steps-before-larger-crops.md).
NATIVE_STEP_CROP = 96
NATIVE_LARGE_CROP_STEPS = 1608
STEP_MULTIPLE = 6  # steps are a multiple of the quick profile's 6 epochs
FLOOR_STEPS = 12  # never fewer steps than this, budget or not
FACTORS = (8, 6, 5, 4, 3.5, 3, 2.5, 2, 1.5, 1)  # candidate down-sampling factors, coarse to fine
PLANNED_FRACTION = 0.93  # the plan fills this fraction of the budget; the rest absorbs error
EPOCHS = 6
DEFAULT_BUDGET_MINUTES = 15.0  # the study's budget when none is given
BATCH = 4
CROPS = (48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256, 320, 384)  # candidate sides
BASE_CROP = 64
# Three-plane translation of the test volumes (net.planes=3) only while the whole-volume stage
# is planned at most this share of the budget (else the volumes are translated axially); the
# estimate of that stage's translating is about half the time measured on an AVX-512 CPU
PLANES_MAX_SHARE = 0.15


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
            differ (native mode: larger crops need more). The chosen rung trains as many
            steps as fit (up to ``max_steps``), so the budget is used, not left between
            rungs (a phantom study ended at 80% of its budget when a rung kept exactly
            ``target_steps``: docs/experiments/2026-12-07-the-budget-kept-on-every-data-set.md).
    Returns:
        the factor, the steps per model (a multiple of 6) and whether it fits in ``seconds``.
    """
    target = target_steps if callable(target_steps) else lambda _: target_steps
    at = {f: cost(f).steps_within(seconds) for f in factors}
    if at[base] >= min_steps:
        finer = [f for f in factors if f < base and at[f] >= target(f)]
        factor = min(finer) if finer else base
        return factor, _round_steps(min(at[factor], max_steps)), True
    coarser = [f for f in factors if f > base and at[f] >= min_steps]
    if coarser:
        return min(coarser), _round_steps(min(at[min(coarser)], max_steps)), True
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
    # running (mrtranslate.study.pacing); 0: never re-planned
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
    # studies recorded before pacing became fair re-planned their remaining models' steps
    # while running: after which model, the seconds left, the measured speeds, the new steps
    replans: list[dict] = field(default_factory=list)
    # models this plan trains below the floor (MIN_STEPS steps, crops of FLOOR_CROP): each
    # with what it gets; empty when every model is worth judging
    under_trained: dict[str, str] = field(default_factory=dict)
    # how the study resolved its precision (mrtranslate.hardware.PrecisionChoice as a dict):
    # resolved once from the command line, handed to every run so that each records what was
    # asked (auto) and why it became ``precision``; empty in plans recorded before
    precision_choice: dict = field(default_factory=dict)

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

    def precision_choice_on(self, device: str) -> PrecisionChoice | None:
        """The study's precision choice when the run trains on the ``device`` it was made for
        (else None: a run on another device resolves its own)."""
        choice = self.precision_choice
        if (
            not choice
            or choice.get("device") != device
            or choice.get("precision") != self.precision
        ):
            return None
        return PrecisionChoice(**choice)

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
        for model, what in self.under_trained.items():
            lines.append(f"  under-trained: {model} ({what})")
        return "\n".join(lines)


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
        factors,
        base,
        cost,
        seconds,
        max_steps,
        min_steps=_equal_time_min_steps(cost, base) if native else MIN_STEPS,
        target_steps=target,
    )
    models = _model_plans(cost, factor, steps, max_steps, conv_algorithms)
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
    plan.under_trained = below_floor(plan)
    volumes = plan.fixed_seconds.get(VOLUMES_STAGE, 0.0)
    if plan.planes == 3 and volumes > PLANES_MAX_SHARE * budget_minutes * 60:
        axial = dataclasses.replace(cost, planes=1)
        args = (factors, base, budget_minutes, spent_seconds, train_images, device, precision)
        return build_plan(axial, *args, calibration, conv_algorithms)
    return plan


def _model_plans(
    cost: CostModel, factor: float, steps: int, max_steps: int, conv_algorithms: dict | None
) -> list[ModelPlan]:
    """Each model's share at rung ``factor``: ``steps`` each, or in native mode the same
    training time (:func:`equal_time_steps`)."""
    step_seconds = {m: cost.model_step(m, factor) for m in cost.models}
    own = equal_time_steps(step_seconds, steps, max_steps) if cost.crops is not None else {}
    return [
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


def _equal_time_min_steps(cost: CostModel, rung: float) -> int:
    """The equal steps a native plan needs at ``rung`` so that, once the training time is
    shared equally (:func:`equal_time_steps`), the model with the dearest step still gets
    ``MIN_STEPS``."""
    times = [cost.model_step(m, rung) for m in cost.models]
    return math.ceil(MIN_STEPS * max(times) * len(times) / sum(times))


def below_floor(plan: StudyPlan) -> dict[str, str]:
    """The models ``plan`` trains below the floor, each with what it gets (fewer than
    ``MIN_STEPS`` steps, or native crops smaller than ``FLOOR_CROP``)."""
    small_crop = 0 < plan.crop < FLOOR_CROP
    out = {}
    for entry in plan.models:
        steps = plan.steps_of(entry.model)
        if steps < MIN_STEPS or small_crop:
            crop = f" of {plan.crop}x{plan.crop} crops" if plan.crop else ""
            out[entry.model] = f"{steps} steps{crop}; floor {MIN_STEPS}" + (
                f" steps of crops of at least {FLOOR_CROP}x{FLOOR_CROP}" if plan.crop else " steps"
            )
    return out


def floor_budget_minutes(
    cost: CostModel,
    factors: list[float],
    base: float,
    spent_seconds: float,
    train_images: int,
    limit_minutes: float = 24 * 60,
) -> float | None:
    """The smallest budget (whole minutes) whose plan trains every model at or above the
    floor, from the same measured costs; None if none up to ``limit_minutes`` does."""

    def fits(minutes: float) -> bool:
        plan = build_plan(cost, factors, base, minutes, spent_seconds, train_images, "", "")
        return not plan.under_trained

    low, high = 1, int(limit_minutes)
    if not fits(high):
        return None
    while low < high:
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle + 1
    return float(low)


def _fixed_seconds(cost: CostModel, factor: float, spent_seconds: float) -> dict[str, float]:
    """The plan's stages outside the models': spent, references, whole volumes, report."""
    volumes = cost.volumes_seconds(factor)
    return {
        "already spent": spent_seconds,
        "references": cost.references_seconds(factor),
        **({VOLUMES_STAGE: volumes} if volumes else {}),
        "report": REPORT_SECONDS,
    }
