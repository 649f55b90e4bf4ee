"""A running study's pace (mrtranslate.study.pacing), on a fake clock: every model keeps its
planned steps whatever the machine's speed (a fair comparison), the study says when it will
overrun, and it records planned against actual time per stage."""

from __future__ import annotations

import json

import pytest

from mrtranslate.study.pacing import Pace, format_stage_table, stage_table
from mrtranslate.study.plan import VOLUMES_STAGE, ModelPlan, StudyPlan

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
         budget: float | None = None):  # fmt: skip
    """Play the study on a fake clock: each model's training takes its planned steps at its
    calibrated step time x ``train_speed[model]`` (plus the overhead), evaluations and the
    fixed stages their estimates x ``evaluate_speed``. Returns (end, projected end at the
    start, pace, the warnings after each model)."""
    clock = [FIXED["already spent"]]
    pace = Pace(0.0, plan, list(CALIBRATED), budget_seconds=budget, now=lambda: clock[0])
    planned_end = pace.projected_end(0)
    warnings = []
    for i, entry in enumerate(plan.models, start=1):
        began = clock[0]
        steps = plan.steps_of(entry.model)
        clock[0] += (entry.seconds_per_step * steps + OVERHEAD) * train_speed[entry.model]
        pace.stage_done(entry.model, "train", began)
        began = clock[0]
        references = FIXED["references"] if i == 1 else 0.0
        clock[0] += (entry.evaluate_seconds + references) * evaluate_speed
        pace.stage_done(entry.model, "evaluate", began)
        warnings.append(pace.check(i))
    clock[0] += (FIXED[VOLUMES_STAGE] + FIXED["report"]) * evaluate_speed
    return clock[0], planned_end, pace, warnings


def test_the_projected_end_is_the_plans_estimate():
    plan = _plan()
    end, planned_end, pace, warnings = _run(plan, dict.fromkeys(CALIBRATED, 1.0), budget=1800)
    assert planned_end == pytest.approx(plan.estimated_seconds)
    assert end == pytest.approx(planned_end)  # on speed: the plan's end
    assert warnings == [None] * len(CALIBRATED)


@pytest.mark.parametrize("speed", [0.6, 1.4, 2.0])
def test_every_model_keeps_its_planned_steps_whatever_the_speed(speed):
    """A machine slower or faster than calibrated changes no model's steps: each model trains
    the steps that give it the same training time as the others."""
    plan = _plan()
    before = [m.steps for m in plan.models]
    _run(plan, dict.fromkeys(CALIBRATED, speed), evaluate_speed=speed, budget=1800)
    assert [m.steps for m in plan.models] == before
    assert not plan.replans and all(m.calibrated_steps == 0 for m in plan.models)


def test_a_slow_first_model_takes_nothing_from_the_last():
    """The first model trains at twice its calibrated time; the last model still gets its
    planned steps (as many as the first, in an equal-steps plan), and the study warns that it
    will end late instead."""
    plan = _plan(own_steps=False)  # every model 972 steps
    speeds = dict.fromkeys(CALIBRATED, 1.0) | {"cyclegan": 2.0}
    on_speed, _, _, _ = _run(plan, dict.fromkeys(CALIBRATED, 1.0))
    end, _, _, warnings = _run(plan, speeds, budget=on_speed)
    assert plan.steps_of("simple") == plan.steps_of("cyclegan") == 972
    late = 0.281 * 972 + OVERHEAD  # the slow first model's extra time, nothing taken back
    assert end == pytest.approx(on_speed + late)
    assert warnings[0] is not None and "keeps its planned steps" in warnings[0]
    assert "train 2.00x" in warnings[0]


def test_the_overrun_warning_says_how_late_and_only_past_its_margin():
    plan = _plan()
    budget = plan.estimated_seconds
    _, _, _, warnings = _run(plan, dict.fromkeys(CALIBRATED, 1.04), budget=budget)
    assert warnings == [None] * len(CALIBRATED)  # within 5%
    _, _, pace, warnings = _run(plan, dict.fromkeys(CALIBRATED, 1.5), budget=budget)
    minutes = float(warnings[0].split("about ")[1].split(" min")[0])
    projected = pace.projected_end(1)  # at the end of the play: nothing left
    assert minutes > 0 and projected > budget
    assert all(w is not None for w in warnings)
    assert Pace(0.0, plan, list(CALIBRATED), now=lambda: 1e6).check(1) is None  # no budget


def test_one_slow_first_model_does_not_cry_wolf():
    """The 15-minute BraTS study of 2026-12-07: the first model trained 1.15x and evaluated
    (with the reference points) 1.45x its estimate; the rest ran on time or faster and the
    study ended at 85% of its budget. The projection from one model alone warned of an end
    3.7 minutes late; a machine slower across the board still warns (previous tests)."""
    plan = _plan()
    budget = plan.estimated_seconds / 0.93  # the planner fills 93% of the budget
    clock = [FIXED["already spent"]]
    pace = Pace(0.0, plan, list(CALIBRATED), budget_seconds=budget, now=lambda: clock[0])
    first = plan.models[0]
    clock[0] += first.train_seconds * 1.15
    pace.stage_done(first.model, "train", FIXED["already spent"])
    began = clock[0]
    clock[0] += (first.evaluate_seconds + FIXED["references"]) * 1.45
    pace.stage_done(first.model, "evaluate", began)
    assert pace.measured("train") == pytest.approx(1.15)
    assert pace.check(1) is None
    assert 1.0 < pace.drift("train") < 1.15 and 1.0 < pace.drift("evaluate") < 1.45


def test_a_resumed_stage_says_nothing_about_the_speed():
    clock = [0.0]
    plan = _plan()
    pace = Pace(0.0, plan, list(CALIBRATED), now=lambda: clock[0])
    clock[0] = 10.0  # a resumed training: a few seconds for what was planned as minutes
    pace.stage_done("cyclegan", "train", 0.0, counted=False)
    assert pace.drift("train") is None and pace.measured("train") is None
    pace.stage_done("cyclegan_s", "train", 0.0)
    planned = plan.models[1].train_seconds
    assert pace.measured("train") == pytest.approx(10.0 / planned)
    prior = sum(m.train_seconds for m in plan.models) / len(plan.models)
    assert pace.drift("train") == pytest.approx((10.0 + prior) / (planned + prior))


def test_models_finished_before_this_call_are_not_in_the_time_left():
    plan = _plan()
    whole = Pace(0.0, plan, list(CALIBRATED), now=lambda: 0.0)
    later = Pace(0.0, plan, list(CALIBRATED), finished=("cyclegan",), now=lambda: 0.0)
    cyclegan = plan.models[0]
    assert whole.left(0) - later.left(0) == pytest.approx(
        cyclegan.train_seconds + cyclegan.evaluate_seconds
    )


def test_planned_against_actual_per_stage():
    plan = _plan()
    seconds = {"data": 3.0, "calibration": 30.0, "volumes": 100.0, "report": 4.0}
    for m in plan.models:
        seconds[f"train_{m.model}"] = 2 * m.train_seconds
        seconds[f"evaluate_{m.model}"] = m.evaluate_seconds
    seconds["total_this_call"] = 1000.0
    rows = {r["stage"]: r for r in stage_table(plan, seconds)}
    assert rows["data and calibration"] == {"stage": "data and calibration",
                                             "planned": 28.0, "actual": 33.0}  # fmt: skip
    assert rows["train unit"]["actual"] == 2 * rows["train unit"]["planned"]
    first = rows["evaluate cyclegan (+ references)"]
    assert first["planned"] == pytest.approx(20.0 + FIXED["references"])
    assert rows["evaluate simple"]["planned"] == 20.0
    assert rows["whole volumes"]["planned"] == FIXED[VOLUMES_STAGE]
    assert rows["total"] == {"stage": "total", "planned": plan.estimated_seconds, "actual": 1000}
    text = format_stage_table(list(rows.values()))
    assert "train unit" in text and "2.00" in text
    # a continued study (no calibration in this call): only the stages it ran, no total
    rows = stage_table(plan, {"volumes": 100.0, "report": 4.0, "total_this_call": 104.0})
    assert [r["stage"] for r in rows] == ["whole volumes", "report"]


def test_plans_of_studies_that_re_planned_still_load():
    """Studies recorded before pacing became fair hold re-planned steps: they replay as they
    ran."""
    plan = _plan()
    plan.models[1].calibrated_steps, plan.models[1].steps = 1020, 600
    plan.replans.append({"after": "cyclegan", "steps": {"cyclegan_s": 600}})
    again = StudyPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again.replans == plan.replans and again.steps_of("cyclegan_s") == 600


@pytest.mark.slow
def test_a_study_on_a_slow_machine_trains_every_model_its_planned_steps(
    small_phantom, tmp_path, monkeypatch, capsys
):
    """A plan whose step times are far too optimistic (a machine far slower than calibrated):
    the study trains every model exactly its planned steps, the last as many as the first,
    warns that it will end late, and records planned against actual time per stage."""
    from mrtranslate.cli import main
    from mrtranslate.study import run as study

    def optimistic_plan(data_dir, models, budget, spent, device, precision):
        entries = [ModelPlan(m, 1e-4, 24e-4, 1e-3, steps=24) for m in models]
        return StudyPlan(1.0, "cpu", "fp32", [64, 64], 2, [32, 32], 24, 2, 6, True, entries,
                         fixed_seconds={"report": 0.0})  # fmt: skip

    monkeypatch.setattr(study, "_plan_study", optimistic_plan)
    out = tmp_path / "s"
    args = ["study", "--data", str(small_phantom), "--out", str(out), "--quiet"]
    assert main([*args, "--budget", "0.01", "--models", "generators_s", "simple"]) == 0
    printed = capsys.readouterr().out
    assert "keeps its planned steps" in printed and "re-planned" not in printed
    assert "planned against actual time per stage" in printed
    for model in ("generators_s", "simple"):
        config = json.loads((out / "runs" / model / "config.json").read_text())
        assert config["train"]["epochs"] * config["train"]["steps_per_epoch"] == 24
    recorded = json.loads((out / "study.json").read_text())
    stages = {r["stage"]: r for r in recorded["stages"]}
    assert {"train generators_s", "train simple", "report", "total"} <= set(stages)
    assert stages["train simple"]["actual"] > stages["train simple"]["planned"]
    assert recorded["plan"] == json.loads((out / "plan.json").read_text())
    # Continuing the finished study trains nothing again.
    assert main([*args, "--models", "generators_s", "simple"]) == 0
    assert capsys.readouterr().out.count("already trained") == 2
