"""Keep a planned study on its budget while it runs: an ETA, and re-planning the steps.

The plan's step times come from a calibration of a few seconds; a 2-core machine's speed can
change by a third between then and training (measured: a study calibrated at 0.28 s per
CycleGAN step trained at 0.39, and ran 18% over its budget). After each model, :class:`Pace`
compares the time its stages took with the plan's estimates and, for a plan that shares the
training time between the models (volume data), rescales the remaining models' steps so that
the study ends at its aim (``REPLANNED_FRACTION`` of the budget for a study planned in this
call, else when the plan said): the time left before that end, less the remaining evaluation,
whole-volume and report stages (scaled by how evaluation ran so far), is shared between the
remaining models in the plan's proportions, at the training speed measured so far.

The changes are written into the plan (``ModelPlan.steps``; ``calibrated_steps`` keeps the
first plan's, ``StudyPlan.replans`` says when and why), so ``plan.json`` replays the study as
it ran. A replayed ``--plan`` is never re-planned.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mrtranslate.study.plan import FLOOR_STEPS, REPORT_SECONDS, STEP_MULTIPLE, StudyPlan

# A measured speed further than this from the calibration's is taken as this far (one stage
# is a short sample; a stage interrupted and resumed is not counted at all).
DRIFT_RANGE = (0.25, 4.0)
# The end a re-planned study aims at, as a fraction of its budget: the plan aims at 90% (its
# step times come from seconds of calibration); once the models' real speed is measured only
# the last model's own deviation is left to absorb (measured, 30 minutes: aiming at the
# plan's 89%, studies ended at 81%, 86% and 87%, the last model faster than the others).
REPLANNED_FRACTION = 0.95
NOT_STAGES = ("already spent",)  # fixed costs paid before training (no part of the time left)


class Pace:
    """Elapsed time, an ETA and re-planning for a study running ``models`` in order.

    ``now`` is the clock (seconds; ``time.perf_counter`` by default, a fake one in tests). The
    end the plan aims at is fixed when the object is made: now plus the plan's estimate of
    every stage still to run (the training and evaluation of every model not in ``finished``,
    the reference points, the whole volumes and the report); for a study planned in this call
    (``budget_seconds`` given, ``start`` its start) at least ``REPLANNED_FRACTION`` of the
    budget after ``start``. ``adaptive``: re-plan (a plan that shares the training time
    only); ``max_steps``: the most steps a model may get.
    """

    def __init__(
        self,
        start: float,
        plan: StudyPlan | None,
        models: list[str],
        *,
        adaptive: bool = False,
        max_steps: int = 0,
        finished: tuple[str, ...] = (),
        budget_seconds: float | None = None,
        now: Callable[[], float] = time.perf_counter,
    ):
        self.start = start
        self.plan = plan
        self.models = models
        self.finished = set(finished)  # trained and evaluated before this call
        self.adaptive = adaptive and plan is not None and all(m.steps for m in plan.models)
        self.max_steps = max_steps
        self.now = now
        self.spent = {"train": [0.0, 0.0], "evaluate": [0.0, 0.0]}  # estimated, actual
        self.references_due = True  # the first evaluation in a process measures them
        self.end = now() + self.left(0)
        if self.adaptive and budget_seconds:
            # the study planned in this call: after measuring, aim closer to the budget
            self.end = max(self.end, start + REPLANNED_FRACTION * budget_seconds)

    def _estimate(self, model: str):
        if self.plan is None or model in self.finished:
            return None
        return next((m for m in self.plan.models if m.model == model), None)

    def _remaining(self, done: int) -> list:
        """The plan's entries of the models after the first ``done`` (not finished before)."""
        return [e for name in self.models[done:] if (e := self._estimate(name)) is not None]

    def stage_done(self, model: str, stage: str, began: float, counted: bool = True) -> None:
        """Account for a finished ``train`` or ``evaluate`` stage of ``model`` that began at
        ``began``; ``counted=False`` for a stage that did not run whole in this call (a resumed
        training), which says nothing about the speed."""
        estimate = self._estimate(model)
        if estimate is None:
            return
        if stage == "evaluate" and self.references_due:
            self.references_due = False
            extra = self.plan.fixed_seconds.get("references", 0.0)
        else:
            extra = 0.0
        if counted:
            totals = self.spent[stage]
            totals[0] += getattr(estimate, f"{stage}_seconds") + extra
            totals[1] += self.now() - began

    def drift(self, stage: str) -> float | None:
        """Actual / estimated seconds of the ``stage`` stages counted so far (None: none)."""
        estimated, actual = self.spent[stage]
        if estimated <= 0.0:
            return None
        return min(max(actual / estimated, DRIFT_RANGE[0]), DRIFT_RANGE[1])

    def _fixed_left(self, done: int, evaluate_drift: float) -> float:
        """Seconds of the stages after the first ``done`` models other than their training:
        their evaluation, the reference points (until the first evaluation), the whole volumes
        and the report."""
        if self.plan is None:
            return REPORT_SECONDS
        evaluations = sum(e.evaluate_seconds for e in self._remaining(done))
        fixed = {k: v for k, v in self.plan.fixed_seconds.items() if k not in NOT_STAGES}
        if not self.references_due:
            fixed.pop("references", None)
        fixed.setdefault("report", REPORT_SECONDS)
        return (evaluations + sum(fixed.values())) * evaluate_drift

    def left(self, done: int) -> float:
        """Estimated seconds for the models after the first ``done`` ones and the stages after
        them, corrected by the speed measured so far."""
        train = sum(e.train_seconds for e in self._remaining(done))
        train_drift = self.drift("train") or 1.0
        return train * train_drift + self._fixed_left(done, self.drift("evaluate") or 1.0)

    def eta(self, done: int) -> str:
        elapsed = self.now() - self.start
        left = max(0.0, self.left(done))
        finish = time.strftime("%H:%M", time.localtime(time.time() + left))
        return f"{elapsed / 60:.1f} min elapsed, about {left / 60:.1f} min left (ETA {finish})"

    def replan(self, done: int) -> str | None:
        """After the first ``done`` models: rescale the remaining models' steps to the time
        left before the planned end, at the training speed measured so far. Returns what
        changed (one line), or None when nothing did (not adaptive, nothing measured yet, no
        model left, or the same steps)."""
        remaining = self._remaining(done)
        train_drift = self.drift("train")
        if not self.adaptive or not remaining or train_drift is None:
            return None
        evaluate_drift = self.drift("evaluate") or 1.0
        overheads = sum(e.train_seconds - e.seconds_per_step * e.steps for e in remaining)
        planned = sum(e.seconds_per_step * e.steps for e in remaining)
        seconds_left = self.end - self.now()
        available = seconds_left - self._fixed_left(done, evaluate_drift)
        available -= overheads * train_drift
        scale = max(available, 0.0) / max(planned * train_drift, 1e-9)
        changed = {}
        for e in remaining:
            steps = int(e.steps * scale) // STEP_MULTIPLE * STEP_MULTIPLE
            steps = max(FLOOR_STEPS, min(steps, self.max_steps or steps))
            if steps != e.steps:
                changed[e.model] = (e.steps, steps)
                e.calibrated_steps = e.calibrated_steps or e.steps
                e.train_seconds += e.seconds_per_step * (steps - e.steps)
                e.steps = steps
        if not changed:
            return None
        self.plan.replans.append(
            {
                "after": self.models[done - 1] if done else None,
                "seconds_left": round(seconds_left, 1),
                "train_drift": round(train_drift, 3),
                "evaluate_drift": round(evaluate_drift, 3),
                "steps": {model: new for model, (_, new) in changed.items()},
            }
        )
        steps = ", ".join(f"{m} {old} -> {new}" for m, (old, new) in changed.items())
        measured = self.drift("evaluate")
        evaluation = "" if measured is None else f" (evaluation {measured:.2f}x)"
        return (
            f"training so far took {train_drift:.2f}x its calibrated time{evaluation}; "
            f"{seconds_left / 60:.1f} min left to the planned end: re-planned the remaining "
            f"steps: {steps}"
        )
