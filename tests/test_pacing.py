"""Re-planning a running study from the speed it measures (mrtranslate.study.pacing), on a fake
clock:
the study must still end when the plan said, however the machine's speed changed after the
calibration."""

from __future__ import annotations

import json

import pytest

from mrtranslate.study.pacing import Pace
from mrtranslate.study.plan import FLOOR_STEPS, VOLUMES_STAGE, ModelPlan, StudyPlan

# Calibrated s/step and steps of an equal-time plan (the 30-minute sub-19 study's, AVX-512 CPU)
CALIBRATED = {
    "cyclegan": (0.281, 972),
    "cyclegan_s": (0.267, 1020),
    "unit": (0.278, 978),
    "generators_s": (0.141, 1938),
    "simple": (0.059, 4596),
}
OVERHEAD = 4.0
FIXED = {"already spent": 28.0, "references": 12.0, VOLUMES_STAGE: 112.0, "report": 5.0}


def _plan(evaluate: float = 20.0, own_steps: bool = True) -> StudyPlan:
    models = [
        ModelPlan(
            model=m,
            seconds_per_step=t,
            train_seconds=t * steps + OVERHEAD,
            evaluate_seconds=evaluate,
            steps=steps if own_steps else 0,
        )
        for m, (t, steps) in CALIBRATED.items()
    ]
    return StudyPlan(30, "cpu", "bf16", [220, 184], 1.0, [220, 184], 972, 4, 6, True, models,
                     fixed_seconds=dict(FIXED), crop=96, brain_only=True)  # fmt: skip


def _run(plan: StudyPlan, train_speed: dict[str, float], evaluate_speed: float = 1.0,
         adaptive: bool = True, max_steps: int = 10**6, budget: float | None = None):  # fmt: skip
    """Play the study on a fake clock: each model's training takes its planned steps at its
    calibrated step time x ``train_speed[model]`` (plus the overhead), evaluations and the
    fixed stages their estimates x ``evaluate_speed``. Returns (end, planned end, pace)."""
    clock = [FIXED["already spent"]]
    pace = Pace(0.0, plan, list(CALIBRATED), adaptive=adaptive, max_steps=max_steps,
                budget_seconds=budget, now=lambda: clock[0])  # fmt: skip
    planned_end = pace.end
    for i, entry in enumerate(plan.models, start=1):
        began = clock[0]
        clock[0] += (entry.seconds_per_step * entry.steps + OVERHEAD) * train_speed[entry.model]
        pace.stage_done(entry.model, "train", began)
        began = clock[0]
        references = FIXED["references"] if i == 1 else 0.0
        clock[0] += (entry.evaluate_seconds + references) * evaluate_speed
        pace.stage_done(entry.model, "evaluate", began)
        pace.replan(i)
    clock[0] += (FIXED[VOLUMES_STAGE] + FIXED["report"]) * evaluate_speed
    return clock[0], planned_end, pace


def _replan_after_cyclegan(plan: StudyPlan, speed: float) -> str | None:
    """CycleGAN, the first model, trains at ``speed`` x its planned time; the re-planning's
    message (the plan is changed in place)."""
    clock = [0.0]
    pace = Pace(0.0, plan, list(CALIBRATED), adaptive=True, max_steps=10**6,
                now=lambda: clock[0])  # fmt: skip
    clock[0] = plan.models[0].train_seconds * speed
    pace.stage_done("cyclegan", "train", 0.0)
    return pace.replan(1)


def _train_time(plan: StudyPlan, model: str) -> float:
    entry = next(m for m in plan.models if m.model == model)
    return entry.seconds_per_step * entry.steps


def test_the_planned_end_is_the_plans_estimate():
    plan = _plan()
    end, planned_end, _ = _run(plan, dict.fromkeys(CALIBRATED, 1.0))
    assert planned_end == pytest.approx(plan.estimated_seconds)
    assert end == pytest.approx(planned_end)  # on speed: nothing changes
    assert not plan.replans and all(m.calibrated_steps == 0 for m in plan.models)


@pytest.mark.parametrize("speed", [0.6, 1.4, 2.0])
def test_a_machine_slower_or_faster_than_calibrated_still_ends_on_time(speed):
    plan = _plan()
    end, planned_end, _ = _run(plan, dict.fromkeys(CALIBRATED, speed), evaluate_speed=speed)
    fixed_plan = _plan()
    fixed_end, _, _ = _run(fixed_plan, dict.fromkeys(CALIBRATED, speed), speed, adaptive=False)
    assert abs(fixed_end / planned_end - 1) > 0.25  # without re-planning: far off
    # Only the first model runs at the calibrated steps; the rest absorb its error.
    assert end == pytest.approx(planned_end, rel=0.01)
    for entry, (_, calibrated) in zip(plan.models[1:], list(CALIBRATED.values())[1:]):
        assert entry.calibrated_steps == calibrated
        assert (entry.steps < calibrated) == (speed > 1)
        assert entry.steps % 6 == 0
    assert [m.steps for m in fixed_plan.models] == [s for _, s in CALIBRATED.values()]
    assert plan.replans[0]["after"] == "cyclegan"
    assert plan.replans[0]["train_drift"] == pytest.approx(speed, rel=0.01)


def test_the_measured_speeds_of_a_real_study_land_within_its_budget():
    """Each model's training ran at its own ratio to the calibration in the sub-19 study run
    again alone (train seconds / planned): 18% over the budget without re-planning."""
    speeds = {"cyclegan": 1.36, "cyclegan_s": 1.41, "unit": 1.28, "generators_s": 0.95,
              "simple": 1.72}  # fmt: skip
    budget = 30 * 60
    fixed_end, _, _ = _run(_plan(), speeds, adaptive=False)
    end, planned_end, _ = _run(_plan(), speeds)
    assert fixed_end > 1.1 * budget
    assert 0.85 * budget <= end <= 1.05 * budget
    assert abs(end - planned_end) < abs(fixed_end - planned_end) / 3
    end, _, _ = _run(_plan(), speeds, budget=budget)  # aiming at 95% of the budget
    assert 0.9 * budget <= end <= 1.1 * budget


def test_a_study_planned_in_this_call_aims_closer_to_its_budget_once_measured():
    """The plan aims at 90% of the budget; re-planned, the study aims at REPLANNED_FRACTION of
    it (from the study's start), never earlier than the plan's own end."""
    from mrtranslate.study.pacing import REPLANNED_FRACTION

    budget = 30 * 60
    for speed in (0.8, 1.0, 1.3):
        end, planned_end, pace = _run(_plan(), dict.fromkeys(CALIBRATED, speed), budget=budget)
        assert planned_end == pytest.approx(REPLANNED_FRACTION * budget)
        assert end == pytest.approx(REPLANNED_FRACTION * budget, rel=0.01)
    late = _plan()  # a plan that does not fit keeps its own (later) end
    late.models[0].train_seconds += 600
    assert Pace(0.0, late, list(CALIBRATED), adaptive=True, budget_seconds=budget,
                now=lambda: 0.0).end == pytest.approx(late.estimated_seconds - 28.0)  # fmt: skip
    # not adaptive (single slices, a replayed plan): the plan's end
    fixed = Pace(0.0, _plan(own_steps=False), list(CALIBRATED), adaptive=True,
                 budget_seconds=budget, now=lambda: 0.0)  # fmt: skip
    assert fixed.end < 0.9 * budget


def test_each_re_planning_shares_the_time_left_equally():
    """Each re-planning gives the remaining models equal training time (the plan's shares);
    the models trained later absorb the error of those before them."""
    plan = _plan()
    assert _replan_after_cyclegan(plan, 1.3)
    times = [_train_time(plan, m) for m in ("cyclegan_s", "unit", "generators_s", "simple")]
    # equal up to rounding to a multiple of 6 steps
    assert max(times) - min(times) < 6 * max(t for t, _ in CALIBRATED.values())
    assert plan.replans[0]["steps"] == {m.model: m.steps for m in plan.models[1:]}


def test_re_planning_respects_the_floor_and_the_paper_schedule():
    plan = _plan()
    _run(plan, dict.fromkeys(CALIBRATED, 4.0), evaluate_speed=4.0)
    assert min(m.steps for m in plan.models) >= FLOOR_STEPS
    plan = _plan()
    _run(plan, dict.fromkeys(CALIBRATED, 0.3), max_steps=3000)
    assert max(m.steps for m in plan.models) == 3000  # Simple capped


def test_plans_without_own_steps_and_replayed_plans_are_never_re_planned():
    """Single-slice plans give every model the same steps (comparable, as in the paper), and
    a replayed --plan must train exactly what it says."""
    for plan, adaptive in ((_plan(own_steps=False), True), (_plan(), False)):
        before = [m.steps for m in plan.models]
        _run(plan, dict.fromkeys(CALIBRATED, 1.5), adaptive=adaptive)
        assert [m.steps for m in plan.models] == before and not plan.replans


def test_a_resumed_stage_says_nothing_about_the_speed():
    clock = [0.0]
    plan = _plan()
    pace = Pace(0.0, plan, list(CALIBRATED), adaptive=True, now=lambda: clock[0])
    clock[0] = 10.0  # a resumed training: a few seconds for what was planned as minutes
    pace.stage_done("cyclegan", "train", 0.0, counted=False)
    assert pace.drift("train") is None and pace.replan(1) is None
    pace.stage_done("cyclegan_s", "train", 0.0)
    assert pace.drift("train") == pytest.approx(0.25)  # 10 s / 276 s, clamped


def test_models_finished_before_this_call_are_not_in_the_time_left():
    plan = _plan()
    whole = Pace(0.0, plan, list(CALIBRATED), now=lambda: 0.0)
    later = Pace(0.0, plan, list(CALIBRATED), finished=("cyclegan",), now=lambda: 0.0)
    cyclegan = plan.models[0]
    assert whole.end - later.end == pytest.approx(
        cyclegan.train_seconds + cyclegan.evaluate_seconds
    )


def test_a_re_planned_plan_round_trips_and_says_what_changed():
    plan = _plan()
    message = _replan_after_cyclegan(plan, 1.5)
    assert "took 1.50x" in message and "steps: cyclegan_s 1020 -> " in message
    again = StudyPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again.replans == plan.replans
    assert [(m.steps, m.calibrated_steps) for m in again.models] == [
        (m.steps, m.calibrated_steps) for m in plan.models
    ]
    assert again.steps_of("cyclegan_s") < 1020


@pytest.mark.slow
def test_a_study_re_plans_its_remaining_models_and_records_it(
    small_phantom, tmp_path, monkeypatch, capsys
):
    """A plan whose step times are far too optimistic: after the first model the study cuts the
    second one's steps, trains exactly those, and records the change where --plan and a resumed
    study read it."""
    from mrtranslate.cli import main
    from mrtranslate.study import run as study

    def optimistic_plan(data_dir, models, budget, spent, device, precision):
        entries = [ModelPlan(m, 1e-4, 24e-4, 1e-3, steps=24) for m in models]
        return StudyPlan(1.0, "cpu", "fp32", [64, 64], 2, [32, 32], 24, 2, 6, True, entries,
                         fixed_seconds={"report": 0.0})  # fmt: skip

    monkeypatch.setattr(study, "_plan_study", optimistic_plan)
    aims = []  # the budget each call's pace aims at (a study planned in the call: its budget)

    def recorded_pace(*args, **kwargs):
        aims.append(kwargs["budget_seconds"])
        return Pace(*args, **kwargs)

    monkeypatch.setattr(study, "Pace", recorded_pace)
    out = tmp_path / "s"
    args = ["study", "--data", str(small_phantom), "--out", str(out), "--quiet"]
    assert main([*args, "--budget", "0.01", "--models", "generators_s", "simple"]) == 0
    printed = capsys.readouterr().out
    assert "re-planned the remaining steps: simple 24 -> 12" in printed
    plan = json.loads((out / "plan.json").read_text())
    recorded = json.loads((out / "study.json").read_text())
    assert recorded["plan"] == plan and recorded["adaptive"] is True
    assert [(m["steps"], m["calibrated_steps"]) for m in plan["models"]] == [(24, 0), (12, 24)]
    assert plan["replans"][0]["after"] == "generators_s"
    assert plan["replans"][0]["train_drift"] == 4.0  # far slower than planned (clamped)
    for model, steps in (("generators_s", 24), ("simple", 12)):
        config = json.loads((out / "runs" / model / "config.json").read_text())
        assert config["train"]["epochs"] * config["train"]["steps_per_epoch"] == steps
    # Continuing the finished study keeps the re-planned plan (and re-planning, should a model
    # still train) and trains nothing again.
    assert main([*args, "--models", "generators_s", "simple"]) == 0
    assert capsys.readouterr().out.count("already trained") == 2
    assert json.loads((out / "plan.json").read_text()) == plan
    assert study._existing_mode(out).adaptive
    assert aims == [pytest.approx(0.6), None]  # --budget 0.01, then the plan's estimate
    # Replaying the plan trains the steps the study trained, and never re-plans.
    again = tmp_path / "again"
    replay = ["study", "--data", str(small_phantom), "--out", str(again), "--quiet"]
    assert (
        main([*replay, "--plan", str(out / "plan.json"), "--models", "generators_s", "simple"]) == 0
    )
    assert "re-planned" not in capsys.readouterr().out
    assert not study._existing_mode(again).adaptive and aims[-1] is None
    for model in ("generators_s", "simple"):
        trained = [json.loads((o / "runs" / model / "config.json").read_text())["train"]
                   for o in (out, again)]  # fmt: skip
        assert trained[0] == trained[1]
