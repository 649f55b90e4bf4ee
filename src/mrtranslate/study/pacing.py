"""Keep a running study honest about its time: an ETA, a warning when it will overrun, and the
planned-against-actual time of every stage.

**Fair to every model.** A study compares models, so no model's training may depend on the
order in which they train. An earlier version rescaled the steps of the models still to train
after each model, from the speed measured so far: when the first models ran slower than
calibrated, the last ones paid for it alone (measured on real data: CycleGAN 396 steps, then
UNIT 36, Generators_s and Simple 12). Now every model keeps the steps of the plan, which gives
them equal training time at whatever speed the machine runs; if the machine runs slower than
the calibration said, the study ends later and says so (:meth:`Pace.check`), with the speed it
measured. The plan's costs are measured on this machine and data set before planning
(:mod:`mrtranslate.study.calibration`), so that the plan itself is right.

**A projection that does not cry wolf.** One model's stage running slow says little about the
next model's (each step time is calibrated on its own; on BraTS the first model trained 1.15x
and evaluated 1.45x its estimate with the reference points, the others 0.99-1.04x and the
volume stage 0.83x, and the study ended at 85% of its budget, after a warning that it would
end 3.7 minutes late). So the speed projected onto the stages left counts the calibration as
one more model's worth of evidence at speed 1 (:meth:`Pace.drift`): a machine that is slower
across the board still shows it after a model or two; one model's error is damped.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mrtranslate.study.cost import REPORT_SECONDS, VOLUMES_STAGE
from mrtranslate.study.plan import StudyPlan

# A measured speed further than this from the calibration's is taken as this far (one stage
# is a short sample; a stage interrupted and resumed is not counted at all).
DRIFT_RANGE = (0.25, 4.0)
# The study warns once its projected end passes the budget by more than this fraction.
OVERRUN_WARNING = 0.05
NOT_STAGES = ("already spent",)  # fixed costs paid before training (no part of the time left)


class Pace:
    """Elapsed time, an ETA and overrun warnings for a study running ``models`` in order.

    ``now`` is the clock (seconds; ``time.perf_counter`` by default, a fake one in tests).
    ``budget_seconds``: the study's budget, counted from ``start``; ``finished``: models
    trained and evaluated before this call (no estimate left for them).
    """

    def __init__(
        self,
        start: float,
        plan: StudyPlan | None,
        models: list[str],
        *,
        finished: tuple[str, ...] = (),
        budget_seconds: float | None = None,
        now: Callable[[], float] = time.perf_counter,
    ):
        self.start = start
        self.plan = plan
        self.models = models
        self.finished = set(finished)
        self.budget_seconds = budget_seconds
        self.now = now
        self.spent = {"train": [0.0, 0.0], "evaluate": [0.0, 0.0]}  # estimated, actual
        self.references_due = True  # the first evaluation in a process measures them
        # the calibration's weight in the projected speed: one (mean) model's stage, at speed 1
        entries = plan.models if plan is not None else []
        self.prior = {
            stage: sum(getattr(e, f"{stage}_seconds") for e in entries) / max(len(entries), 1)
            for stage in self.spent
        }

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

    def measured(self, stage: str) -> float | None:
        """Actual / estimated seconds of the ``stage`` stages counted so far (None: none)."""
        estimated, actual = self.spent[stage]
        return actual / estimated if estimated > 0.0 else None

    def drift(self, stage: str) -> float | None:
        """The speed projected onto the ``stage`` stages left: (actual + p) / (estimated + p)
        over the stages counted so far, p = one mean model's planned ``stage`` seconds (the
        calibration, counted as one more model at speed 1), clamped to :data:`DRIFT_RANGE`;
        None before any stage is counted."""
        estimated, actual = self.spent[stage]
        if estimated <= 0.0:
            return None
        prior = self.prior[stage]
        return min(max((actual + prior) / (estimated + prior), DRIFT_RANGE[0]), DRIFT_RANGE[1])

    def left(self, done: int) -> float:
        """Estimated seconds for the models after the first ``done`` ones and the stages after
        them, corrected by the speed measured so far."""
        if self.plan is None:
            return REPORT_SECONDS
        remaining = self._remaining(done)
        train = sum(e.train_seconds for e in remaining) * (self.drift("train") or 1.0)
        fixed = {k: v for k, v in self.plan.fixed_seconds.items() if k not in NOT_STAGES}
        if not self.references_due:
            fixed.pop("references", None)
        fixed.setdefault("report", REPORT_SECONDS)
        evaluations = sum(e.evaluate_seconds for e in remaining) + sum(fixed.values())
        return train + evaluations * (self.drift("evaluate") or 1.0)

    def eta(self, done: int) -> str:
        elapsed = self.now() - self.start
        left = max(0.0, self.left(done))
        finish = time.strftime("%H:%M", time.localtime(time.time() + left))
        return f"{elapsed / 60:.1f} min elapsed, about {left / 60:.1f} min left (ETA {finish})"

    def projected_end(self, done: int) -> float:
        """Seconds from ``start`` at which the study should end, at the speed measured so far."""
        return self.now() - self.start + max(0.0, self.left(done))

    def check(self, done: int) -> str | None:
        """After the first ``done`` models: one line when the study will overrun its budget by
        more than :data:`OVERRUN_WARNING` at the speed measured so far (every model keeps its
        planned steps), else None."""
        if self.plan is None or not self.budget_seconds:
            return None
        end = self.projected_end(done)
        if end <= (1 + OVERRUN_WARNING) * self.budget_seconds:
            return None
        speeds = ", ".join(
            f"{stage} {value:.2f}x"
            for stage in ("train", "evaluate")
            if (value := self.measured(stage)) is not None
        )
        return (
            f"warning: this machine runs slower than calibrated ({speeds} the planned time); "
            "every model keeps its planned steps so that the comparison stays fair, so the "
            f"study will end about {(end - self.budget_seconds) / 60:.1f} min after its "
            f"{self.budget_seconds / 60:g}-minute budget"
        )


def stage_table(plan: StudyPlan, seconds: dict[str, float]) -> list[dict]:
    """Planned against actual seconds per stage: ``seconds`` holds what this call measured
    (``data``, ``calibration``, ``train_<model>``, ``evaluate_<model>``, ``volumes``,
    ``report``); stages not run in this call are left out."""
    fixed = plan.fixed_seconds
    rows = []

    def add(stage: str, planned: float | None, key: str) -> None:
        if key in seconds and planned is not None:
            rows.append({"stage": stage, "planned": planned, "actual": seconds[key]})

    spent = fixed.get("already spent")
    if "calibration" in seconds and spent is not None:
        rows.append(
            {
                "stage": "data and calibration",
                "planned": spent,
                "actual": seconds.get("data", 0.0) + seconds["calibration"],
            }
        )
    references = fixed.get("references", 0.0)
    for i, entry in enumerate(plan.models):
        add(f"train {entry.model}", entry.train_seconds, f"train_{entry.model}")
        first = i == 0
        add(
            f"evaluate {entry.model}" + (" (+ references)" if first else ""),
            entry.evaluate_seconds + (references if first else 0.0),
            f"evaluate_{entry.model}",
        )
    add("whole volumes", fixed.get(VOLUMES_STAGE), "volumes")
    add("report", fixed.get("report", REPORT_SECONDS), "report")
    if "calibration" in seconds and "total_this_call" in seconds:  # planned in this call
        total = {"planned": plan.estimated_seconds, "actual": seconds["total_this_call"]}
        rows.append({"stage": "total", **total})
    return rows


def format_stage_table(rows: list[dict]) -> str:
    """The planned-against-actual table as printed at the end of a study."""
    lines = [f"  {'stage':<34}{'planned s':>10}{'actual s':>10}{'actual/planned':>16}"]
    for row in rows:
        ratio = row["actual"] / row["planned"] if row["planned"] else float("nan")
        lines.append(
            f"  {row['stage']:<34}{row['planned']:>10.1f}{row['actual']:>10.1f}{ratio:>16.2f}"
        )
    return "\n".join(lines)
