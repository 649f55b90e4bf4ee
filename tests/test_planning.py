"""The study planner: plans fit the budget, grow with it, and are kept and reproducible."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from helpers import usage_error
from mrtranslate.cli import main
from mrtranslate.methods import make_config
from mrtranslate.study.plan import (
    MIN_STEPS,
    PLANNED_FRACTION,
    TARGET_STEPS,
    CostModel,
    StudyPlan,
    build_plan,
    candidate_factors,
    choose,
)

PHANTOM = (304, 256)


def _cost(step_at_base: dict[str, float], fixed_ms: float = 0.0) -> CostModel:
    """Step times measured at the phantom's base size (76x64), scaled by pixels elsewhere."""
    return CostModel(
        models=tuple(step_at_base),
        data_shape=PHANTOM,
        test_images=213,
        metric_seconds_per_pixel=1.5e-7,
        step_seconds={(m, 4): t for m, t in step_at_base.items()},
        overhead_per_model=fixed_ms,
    )


# Step times per model at 76x64, batch 4: an AVX2-only CPU in fp32 (as measured on a Zen 3 for
# CycleGAN), a CPU with native bf16 and a GPU (launch-bound: nearly flat in the image size).
AVX2 = {"cyclegan": 0.48, "cyclegan_s": 0.48, "unit": 0.45, "generators_s": 0.18, "simple": 0.05}
ZEN4 = {"cyclegan": 0.11, "cyclegan_s": 0.11, "unit": 0.11, "generators_s": 0.044, "simple": 0.02}


def _plan(steps: dict[str, float], minutes: float, spent: float = 20.0) -> StudyPlan:
    factors, base = candidate_factors(PHANTOM)
    return build_plan(_cost(steps), factors, base, minutes, spent, 900, "cpu", "fp32")


@pytest.mark.parametrize("machine", [AVX2, ZEN4])
@pytest.mark.parametrize("minutes", [5, 15, 60])
def test_plan_fits_the_budget(machine, minutes):
    plan = _plan(machine, minutes)
    assert plan.fits  # and a tenth of the budget stays as a margin for estimation error
    assert plan.estimated_seconds <= PLANNED_FRACTION * minutes * 60 + 1e-6
    assert plan.steps % 6 == 0 and plan.steps >= MIN_STEPS


def test_plan_for_an_avx2_cpu_in_15_minutes_trains_at_the_base_size():
    plan = _plan(AVX2, 15)
    assert not _applied(plan, "simple").loss.brain_only  # single slices: the paper's losses
    assert plan.image_shape == [76, 64] and MIN_STEPS <= plan.steps < TARGET_STEPS


def test_faster_machine_or_more_time_gives_larger_images():
    small = _plan(AVX2, 15)
    assert _plan(ZEN4, 15).image_shape[0] > small.image_shape[0]
    assert _plan(AVX2, 120).image_shape[0] > small.image_shape[0]
    assert _plan(AVX2, 10_000).image_shape == list(PHANTOM)


def test_tight_budget_shrinks_the_images_and_can_say_it_does_not_fit():
    plan = _plan(AVX2, 3, spent=10)
    assert plan.image_shape[0] < 76 and plan.fits
    hopeless = _plan(AVX2, 0.3, spent=10)
    assert not hopeless.fits and hopeless.image_shape == [40, 32]
    assert "does not fit" in hopeless.table()


@pytest.mark.parametrize("machine", [AVX2, ZEN4])
def test_a_larger_budget_never_gives_smaller_images_or_fewer_steps_at_one_size(machine):
    previous = None
    for minutes in np.linspace(0.5, 600, 400):
        plan = _plan(machine, float(minutes))
        key = (plan.image_shape[0] * plan.image_shape[1], plan.steps)
        if previous is not None:
            assert key[0] >= previous[0], (minutes, key, previous)
            assert key[0] > previous[0] or key[1] >= previous[1], (minutes, key, previous)
        previous = key


@pytest.mark.parametrize("machine", [AVX2, ZEN4])
def test_every_plan_uses_its_budget_not_only_a_rung_of_it(machine):
    """No time is left between rungs: every plan that fits trains as many steps as the
    planned fraction pays (a phantom study ended at 80% of its budget when rungs kept
    exactly 600 steps), unless its steps are capped by the paper's 200 epochs."""
    max_steps = 200 * 900 // 4
    for minutes in np.linspace(2, 600, 120):
        plan = _plan(machine, float(minutes))
        planned = PLANNED_FRACTION * minutes * 60
        if plan.fits and plan.steps < max_steps - 6:
            one_more = 6 * sum(m.seconds_per_step for m in plan.models)
            assert plan.estimated_seconds > planned - one_more, (minutes, plan.steps)


def test_choose_follows_the_ladder():
    # One step of all models costs 1 s at the base factor 4, 4 s at factor 2 and 16 s at 1.
    factors, base = [8, 4, 2, 1], 4
    from mrtranslate.study.plan import SizeCost

    def cost(factor):
        return SizeCost(step_seconds={8: 0.25, 4: 1.0, 2: 4.0, 1: 16.0}[factor], fixed_seconds=0)

    assert choose(factors, base, cost, 100, 10**6) == (8, 396, True)  # below the minimum
    assert choose(factors, base, cost, 400, 10**6) == (4, 396, True)  # steps grow first
    assert choose(factors, base, cost, 2000, 10**6) == (4, 1998, True)  # the rung is filled
    assert choose(factors, base, cost, 2400, 10**6) == (2, TARGET_STEPS, True)  # then size
    assert choose(factors, base, cost, 3000, 10**6) == (2, 750, True)
    assert choose(factors, base, cost, 16 * 1000, 10**6) == (1, 996, True)  # then steps
    assert choose(factors, base, cost, 16 * 1000, 500) == (1, 498, True)  # paper cap


def test_plan_round_trips_through_json():
    plan = _plan(ZEN4, 15)
    again = StudyPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again == plan and _applied(again, "unit") == _applied(plan, "unit")
    assert _applied(plan, "unit").train.downsample == plan.downsample


def _applied(plan: StudyPlan, model: str):
    return plan.apply(make_config(model, "quick"))


@pytest.mark.parametrize("model", ["cyclegan", "unit", "simple"])
def test_a_plan_applies_itself_to_any_models_config(model):
    plan = _native_plan(AVX2, 30)
    cfg = _applied(plan, model)
    t = cfg.train
    assert (t.downsample, t.crop, t.batch_size, t.precision) == (1, plan.crop, 4, plan.precision)
    assert t.epochs * t.steps_per_epoch == plan.steps_of(model) and cfg.loss.brain_only
    quick = make_config(model, "quick")
    assert cfg.net == quick.net  # the plan changes no network


def _tiny_plan(path, data_shape=(64, 64)) -> None:
    """A hand-made plan of 12 steps at 32x32 (2x down-sampled), written as plan.json."""
    plan = StudyPlan(
        budget_minutes=1.0,
        device="cpu",
        precision="fp32",
        data_shape=list(data_shape),
        downsample=2,
        image_shape=[32, 32],
        steps=12,
        batch_size=2,
        epochs=6,
        fits=True,
        models=[],
    )
    path.write_text(json.dumps(plan.to_dict()))


@pytest.mark.slow
def test_same_plan_reproduces_the_numbers_and_a_resumed_study_keeps_its_plan(
    small_phantom, tmp_path, capsys
):
    plan_file = tmp_path / "plan.json"
    _tiny_plan(plan_file)
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name
        args = ["study", "--data", str(small_phantom), "--out", str(out), "--quiet"]
        assert main([*args, "--plan", str(plan_file), "--models", "cyclegan", "simple"]) == 0
        outs.append(out)
    first, second = (
        (out / "runs" / "cyclegan" / "eval" / "metrics.csv").read_text() for out in outs
    )
    assert first == second
    config = json.loads((outs[0] / "runs" / "cyclegan" / "config.json").read_text())
    assert config["train"]["steps_per_epoch"] * config["train"]["epochs"] == 12
    assert config["plan"]["steps"] == 12 and config["train"]["downsample"] == 2
    recorded = json.loads((outs[0] / "study.json").read_text())["plan"]
    capsys.readouterr()
    # Running again with another budget keeps the recorded plan and retrains nothing.
    args = ["study", "--data", str(small_phantom), "--out", str(outs[0]), "--quiet"]
    assert main([*args, "--budget", "60", "--models", "cyclegan", "simple"]) == 0
    out = capsys.readouterr().out
    assert "continuing the study" in out and out.count("already trained") == 2
    assert json.loads((outs[0] / "study.json").read_text())["plan"] == recorded


@pytest.mark.slow
def test_study_plans_itself_on_this_machine(small_phantom, tmp_path, capsys):
    out = tmp_path / "planned"
    # half a minute cannot pay the floor: --force runs the plan it allows
    args = ["study", "--data", str(small_phantom), "--out", str(out), "--quiet", "--force"]
    assert main([*args, "--budget", "0.5", "--models", "generators_s", "simple"]) == 0
    printed = capsys.readouterr().out
    assert "calibration at" in printed and "plan for 0.5 minutes" in printed
    plan = json.loads((out / "plan.json").read_text())
    assert plan["models"][0]["seconds_per_step"] > 0 and plan["steps"] >= 12
    record = json.loads((out / "runs" / "simple" / "run.json").read_text())
    assert record["plan"]["steps"] == plan["steps"]
    assert record["precision"] == plan["precision"]
    # the study's choice reaches the run typed: what was asked (auto) and why, resolved once
    assert record["precision_choice"] == plan["precision_choice"]
    assert record["precision_choice"]["requested"] == "auto"
    assert record["model_image_shape"] == plan["image_shape"]


def test_study_option_conflicts_are_usage_errors(tmp_path, capsys):
    base = ["study", "--out", str(tmp_path / "s")]
    assert "cannot be combined" in usage_error(
        capsys, [*base, "--profile", "tiny", "--budget", "5"]
    )
    assert "positive" in usage_error(capsys, [*base, "--budget", "0"])
    assert "not found" in usage_error(capsys, [*base, "--plan", str(tmp_path / "none.json")])
    bad = tmp_path / "bad.json"
    bad.write_text('{"plan": {"steps": "x"}}')
    assert "does not hold a study plan" in usage_error(capsys, [*base, "--plan", str(bad)])
    assert not (tmp_path / "s").exists()


def test_plan_for_other_image_sizes_is_refused(small_phantom, tmp_path, capsys):
    plan_file = tmp_path / "plan.json"
    _tiny_plan(plan_file, data_shape=(304, 256))
    err = usage_error(
        capsys,
        [
            "study",
            "--data",
            str(small_phantom),
            "--out",
            str(tmp_path / "s"),
            "--plan",
            str(plan_file),
        ],
    )
    assert "304x256" in err


def test_cost_model_extrapolates_from_measured_sizes():
    def model(times):
        return CostModel(("m",), PHANTOM, 10, 1e-7, {("m", f): t for f, t in times.items()})

    # One measured size: time proportional to the pixel count.
    assert model({4: 0.1}).model_step("m", 2) == pytest.approx(0.1 * (152 * 128) / (76 * 64))
    # A launch-bound GPU: nearly flat in the image size, so full size stays cheap.
    gpu = model({4: 0.050, 2: 0.052})
    assert gpu.model_step("m", 1) < 0.07
    assert gpu.model_step("m", 4) == 0.050  # measured sizes are used as measured
    # A CPU: linear in the pixels with a small fixed part.
    cpu = model({4: 0.10, 3: 0.10 * 8400 / 4864})
    assert cpu.model_step("m", 1) == pytest.approx(0.10 * 304 * 256 / 4864, rel=0.01)
    with pytest.raises(KeyError):
        model({4: 0.1}).model_step("other", 4)


def test_a_damaged_study_record_is_a_usage_error(small_phantom, tmp_path, capsys):
    out = tmp_path / "s"
    out.mkdir()
    (out / "study.json").write_text('{"plan": {"steps": "x"')
    args = ["study", "--data", str(small_phantom), "--out", str(out), "--quiet"]
    assert "study.json is damaged" in usage_error(capsys, args)


REAL = (220, 184)


def _native_plan(step_at_base: dict[str, float], minutes: float, planes: int = 1) -> StudyPlan:
    """Native-resolution plans for 220x184 volume data: step times measured on 64x64 crops
    (proportional to pixels elsewhere), two test volumes of 182 slices judged whole (along
    ``planes`` planes)."""
    from mrtranslate.study.plan import BASE_CROP, candidate_crops, crop_key

    crops, base = candidate_crops(REAL)
    key = crop_key(REAL, BASE_CROP)
    cost = CostModel(
        models=tuple(step_at_base),
        data_shape=REAL,
        test_images=100,
        metric_seconds_per_pixel=1.5e-7,
        step_seconds={(m, key): t * 64 * 64 / (76 * 64) for m, t in step_at_base.items()},
        crops=crops,
        volume_slices=182,
        plane_slices=182 + 218 + 182,
        volume_voxels=182 * 218 * 182,
        planes=planes,
    )
    return build_plan(cost, list(crops), base, minutes, 20.0, 200, "cpu", "fp32")


def test_native_plans_keep_full_resolution_and_grow_crops_then_steps():
    from mrtranslate.study.plan import CROPS, candidate_crops

    crops, base = candidate_crops(REAL)
    assert list(crops.values())[-1] == 0 and crops[base] == 64  # whole image last, base 64
    assert all(c in CROPS for c in list(crops.values())[:-1])
    previous = None
    assert not _native_plan(AVX2, 3).fits  # says so when even 48x48 crops do not fit
    for minutes in (10, 15, 30, 60, 240):
        plan = _native_plan(AVX2, minutes)
        assert plan.fits and plan.downsample == 1 and plan.image_shape == list(REAL)
        cfg = _applied(plan, "generators_s")
        assert cfg.train.downsample == 1 and cfg.train.crop == plan.crop
        assert cfg.loss.brain_only  # volume data: judged in the brain
        assert plan.estimated_seconds <= PLANNED_FRACTION * minutes * 60 + 1e-6
        side = plan.crop or max(REAL)
        if previous is not None:  # more time: never a smaller crop, never fewer steps for one
            assert side >= previous[0]
            assert side > previous[0] or plan.steps >= previous[1]
        previous = (side, plan.steps)
    assert _native_plan(AVX2, 240).crop in (0, *range(68, 400))  # larger crops, or whole images
    text = _native_plan(AVX2, 30).table()
    assert "the data's resolution" in text and "crops" in text


def test_native_plan_counts_the_whole_volume_judgement():
    """The whole-volume stage (after every model's evaluation) is one fixed cost of the plan:
    the baselines and each model's volumes, translated and measured."""
    from mrtranslate.study.cost import VOLUME_MEASURE_SECONDS_PER_VOXEL, VOLUMES_STAGE

    plan = _native_plan(ZEN4, 15)
    measure = 182 * 218 * 182 * VOLUME_MEASURE_SECONDS_PER_VOXEL
    models = len(plan.models)
    assert plan.fixed_seconds[VOLUMES_STAGE] > (4 + 2 * models) * measure
    assert plan.fixed_seconds["references"] < 4 * measure  # the test split only, no volumes
    assert VOLUMES_STAGE not in _plan(ZEN4, 15).fixed_seconds  # single slices: no volumes


def test_three_plane_data_plans_three_plane_translation_and_pays_for_it():
    """Data imported with --planes 3: every model translates volumes along three planes
    (net.planes=3), and the whole-volume stage pays for every plane's slices."""
    from mrtranslate.study.cost import VOLUME_MEASURE_SECONDS_PER_VOXEL, VOLUMES_STAGE

    one, three = _native_plan(ZEN4, 30), _native_plan(ZEN4, 30, planes=3)
    assert one.planes == 1 and _applied(one, "generators_s").net.planes == 1
    assert three.planes == 3 and _applied(three, "unit").net.planes == 3
    assert "3 planes" in three.table() and "planes" not in one.table()
    measures = (4 + 2 * len(one.models)) * 182 * 218 * 182 * VOLUME_MEASURE_SECONDS_PER_VOXEL
    assert three.crop == one.crop  # (at these step times the same crop; fewer steps)
    translation = [plan.fixed_seconds[VOLUMES_STAGE] - measures for plan in (one, three)]
    assert translation[1] == pytest.approx((182 + 218 + 182) / 182 * translation[0], rel=1e-6)
    assert three.estimated_seconds <= PLANNED_FRACTION * 30 * 60 + 1e-6 and three.steps <= one.steps


def test_a_short_budget_translates_three_plane_data_axially():
    """Three planes triple the whole-volume stage's translating; when that stage would take over
    15% of the budget, the plan translates axially (measured: a 15-minute study that did not
    left its last models 12 steps)."""
    from mrtranslate.study.plan import PLANES_MAX_SHARE, VOLUMES_STAGE

    short, axial = _native_plan(ZEN4, 15, planes=3), _native_plan(ZEN4, 15)
    assert short.planes == 1 and _applied(short, "generators_s").net.planes == 1
    assert short.to_dict() == axial.to_dict()  # exactly the axial plan
    full = _native_plan(ZEN4, 30, planes=3)
    assert full.planes == 3
    assert full.fixed_seconds[VOLUMES_STAGE] <= PLANES_MAX_SHARE * 30 * 60


def test_native_plans_pay_for_translating_in_tiles_of_the_crop():
    """Runs trained on crops translate in overlapping tiles (inference/batches.py): the cost
    model counts the tiles' pixels, and a whole-image rung counts the image once."""
    from mrtranslate.data.tensors import tile_starts
    from mrtranslate.study.plan import candidate_crops, crop_key

    crops, _ = candidate_crops(REAL)
    cost = CostModel(
        models=("generators_s",),
        data_shape=REAL,
        test_images=100,
        metric_seconds_per_pixel=0.0,  # translation alone
        step_seconds={("generators_s", crop_key(REAL, 64)): 0.15},
        crops=crops,
        volume_slices=182,
    )
    key = crop_key(REAL, 96)
    tiles = len(tile_starts(220, 96)) * len(tile_starts(184, 96))
    assert tiles > 4 and cost.translated_pixels(key) == tiles * 96 * 96
    whole = [k for k, side in crops.items() if side == 0][0]
    assert cost.translated_pixels(whole) == 220 * 184
    # A tile costs an 80th of a training step on crops of its size (batch 4), per image.
    per_image = tiles * cost.model_step("generators_s", key) / 80
    test_split = 100 * 2 * 1.4 * per_image  # translated and timed
    assert cost.evaluate_seconds("generators_s", key) - 2.0 == pytest.approx(test_split)
    volumes = cost.model_volumes_seconds("generators_s", key)
    assert volumes == pytest.approx(182 * 2 * per_image)  # no voxels to measure here


def test_the_planned_size_is_always_measured_with_the_algorithms_it_fixes(monkeypatch):
    """Calibration measures the base crop first; with a generous budget the plan picks a larger
    crop, which must then be measured (however long calibration took), and every model's plan
    must replay the algorithms measured at that size."""
    from mrtranslate.study import calibration
    from mrtranslate.study.calibration import calibrate_and_plan
    from mrtranslate.study.plan import BASE_CROP
    from mrtranslate.study.shape import StudyShape

    measured = []

    def fake_step(model, shape, batch, device, precision):
        measured.append(tuple(shape))
        seconds = 2e-6 * shape[0] * shape[1] * (3 if model == "cyclegan" else 1)
        return seconds, {"g_t1_to_t2.model.1": f"winograd@{shape[0]}x{shape[1]}"}

    monkeypatch.setattr(calibration, "quick_step_seconds", fake_step)
    monkeypatch.setattr(calibration, "metrics_seconds", lambda shape, count, seed=0: 1e-3)
    study = StudyShape(
        models=["cyclegan", "simple"],
        data_shape=REAL,
        train_images=200,
        test_images=100,
        native=True,
        volume_slices=182,
        volume_voxels=182 * 218 * 182,
    )
    plan = calibrate_and_plan(study, 60, 0.0, "cpu", "fp32")
    assert measured[0] == (BASE_CROP, BASE_CROP)
    trained = (plan.crop, plan.crop) if plan.crop else REAL
    assert plan.crop != BASE_CROP  # the budget allows larger crops than the base
    assert trained in measured
    for model_plan in plan.models:
        assert model_plan.conv_algorithms == {
            "g_t1_to_t2.model.1": f"winograd@{trained[0]}x{trained[1]}"
        }
    assert plan.estimated_seconds <= PLANNED_FRACTION * 60 * 60  # a margin stays
    # three-plane data: the calibrated plan translates along three planes and pays for the
    # slices of every axis (182 + 218 + 182 instead of 182)
    from mrtranslate.study.plan import VOLUMES_STAGE

    three = dataclasses.replace(study, planes=3, plane_slices=182 + 218 + 182)
    plan3 = calibrate_and_plan(three, 60, 0.0, "cpu", "fp32")
    assert plan3.planes == 3
    assert plan3.fixed_seconds[VOLUMES_STAGE] > plan.fixed_seconds[VOLUMES_STAGE]


def test_native_plans_grow_the_crop_to_96_then_the_steps():
    """Up to 96x96 a larger crop is taken as soon as it gets NATIVE_TARGET_STEPS (fewer than
    600: at equal work 96x96 crops beat 64x64 ones); a larger one only once it gets
    NATIVE_LARGE_CROP_STEPS (at equal work more steps on 96x96 beat 192x184 crops)."""
    from mrtranslate.study.plan import (
        NATIVE_LARGE_CROP_STEPS,
        NATIVE_STEP_CROP,
        NATIVE_TARGET_STEPS,
        candidate_crops,
        native_target_steps,
    )

    assert NATIVE_TARGET_STEPS < TARGET_STEPS < NATIVE_LARGE_CROP_STEPS
    crops, _ = candidate_crops(REAL)
    target = native_target_steps(crops)
    for key, side in crops.items():
        small = 0 < side <= NATIVE_STEP_CROP
        assert target(key) == (NATIVE_TARGET_STEPS if small else NATIVE_LARGE_CROP_STEPS)
    plan = _native_plan(AVX2, 30)
    assert plan.crop == 96 and NATIVE_TARGET_STEPS <= plan.steps < TARGET_STEPS
    for minutes in (60, 120):  # more time: more steps on 96x96 crops, not larger crops
        plan = _native_plan(AVX2, minutes)
        assert plan.crop == 96 and plan.steps > TARGET_STEPS
    plan = _native_plan(AVX2, 240)
    assert (plan.crop == 0 or plan.crop > 96) and plan.steps >= NATIVE_LARGE_CROP_STEPS


def test_equal_time_steps_share_the_training_time():
    from mrtranslate.study.plan import equal_time_steps

    # 60 steps of both: 90 s, 45 s each; multiples of 6; capped at the paper's schedule
    assert equal_time_steps({"slow": 1.0, "fast": 0.5}, 60, 10**6) == {"slow": 42, "fast": 90}
    assert equal_time_steps({"slow": 1.0, "fast": 0.5}, 60, 60) == {"slow": 42, "fast": 60}
    assert equal_time_steps({"a": 0.3, "b": 0.3}, 60, 10**6) == {"a": 60, "b": 60}


def test_native_plans_give_each_model_the_same_training_time():
    """Volume data: a model with a cheaper step trains more steps, each model about the time
    of the plan's steps averaged over the models; the applied config and the printed plan
    carry each model's own steps. Single-slice plans keep the same steps for every model."""
    plan = _native_plan(AVX2, 30)
    steps = {m.model: plan.steps_of(m.model) for m in plan.models}
    seconds = {m.model: steps[m.model] * m.seconds_per_step for m in plan.models}
    share = plan.steps * sum(m.seconds_per_step for m in plan.models) / len(plan.models)
    for m in plan.models:
        assert share - 6 * m.seconds_per_step <= seconds[m.model] <= share + 1e-6
        t = _applied(plan, m.model).train
        assert t.epochs * t.steps_per_epoch == steps[m.model]
    assert steps["generators_s"] > plan.steps > steps["cyclegan"]
    assert steps["simple"] > steps["generators_s"]  # the cheapest step (AVX2 table above)
    assert f"{min(steps.values())}-{max(steps.values())} steps" in plan.table()
    single = _plan(AVX2, 30)
    assert {single.steps_of(m.model) for m in single.models} == {single.steps}
    assert all(m.steps == 0 for m in single.models)
    # a plan written before (no steps per model) applies its one number of steps to all
    old = plan.to_dict()
    for m in old["models"]:
        del m["steps"]
    replayed = StudyPlan.from_dict(old)
    assert {replayed.steps_of(m) for m in steps} == {plan.steps}


def test_calibration_times_a_cheap_step_over_a_second(monkeypatch):
    """The calibration's step time of a model is a median over at least MIN_TIMED_SECONDS of
    steps (a cheap step timed 3 times once came out 2.2x the speed it trained at)."""
    import time

    import torch

    from mrtranslate.study import calibration

    monkeypatch.setattr(calibration, "MIN_TIMED_SECONDS", 0.3)
    steps = []
    real_step = calibration.Trainer.train_step

    def counted(self, step):
        steps.append(step)
        time.sleep(0.01)
        return real_step(self, step)

    monkeypatch.setattr(calibration.Trainer, "train_step", counted)
    seconds, _ = calibration.quick_step_seconds("simple", (32, 32), 2, torch.device("cpu"), "fp32")
    assert seconds >= 0.01 and len(steps) >= 2 + 0.3 / (seconds * 1.5)


def test_the_floor_is_210_steps_and_64_pixel_crops_for_every_model():
    """below_floor names each model under 210 steps, or every model when the crops are under
    64x64; a model at the floor is worth judging."""
    from mrtranslate.study.plan import FLOOR_CROP, ModelPlan, below_floor

    def plan(steps: dict[str, int], crop: int) -> StudyPlan:
        models = [ModelPlan(m, 0.1, 1.0, 1.0, steps=s) for m, s in steps.items()]
        return StudyPlan(15, "cpu", "fp32", [240, 240], 1.0, [240, 240], 0, 4, 6, True, models,
                         crop=crop)  # fmt: skip

    assert MIN_STEPS == 210 and FLOOR_CROP == 64
    assert below_floor(plan({"cyclegan": 210, "simple": 2000}, 96)) == {}
    under = below_floor(plan({"cyclegan": 204, "simple": 2000}, 96))
    assert list(under) == ["cyclegan"] and under["cyclegan"].startswith("204 steps of 96x96")
    assert set(below_floor(plan({"cyclegan": 600, "simple": 2000}, 48))) == {"cyclegan", "simple"}
    assert below_floor(plan({"cyclegan": 210}, 0)) == {}  # whole images
    assert list(below_floor(plan({"cyclegan": 150}, 0))) == ["cyclegan"]
