"""Whole-volume evaluation against copy and lookup baselines, the report that shows it, BIDS
derivatives out, and progress lines for log files (issue: judge real volumes honestly)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from helpers import phantom_volumes, save, usage_error
from mrtranslate.cli import main
from mrtranslate.data.dataset import open_dataset
from mrtranslate.data.volumes import canonical, default_brain_mask
from mrtranslate.evaluation.volume_baselines import IntensityLookup
from mrtranslate.evaluation.volume_measures import volume_measures

CITATION = "Doe J. A phantom cohort. J Test 1 (2026). doi:10.0000/test"
TRAIN = ["sub-00", "sub-01", "sub-02"]
TEST = "sub-03"


@pytest.fixture(scope="module")
def bids_with_lesions(tmp_path_factory):
    """4 participants (phantom volumes) with lesion masks under derivatives/ and a citation."""
    root = tmp_path_factory.mktemp("bids-lesions")
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "test", "BIDSVersion": "1.10.0", "HowToAcknowledge": CITATION})
    )
    for i in range(4):
        vols, affine = phantom_volumes(i)
        anat = root / f"sub-{i:02d}" / "anat"
        save(anat / f"sub-{i:02d}_T1w.nii.gz", vols["t1w"], affine)
        save(anat / f"sub-{i:02d}_T2w.nii.gz", vols["t2w"], affine)
        lesion = np.zeros(vols["t1w"].shape)
        lesion[28:34, 30:36, 2:4] = 1
        save(
            root / "derivatives" / "lesions" / f"sub-{i:02d}" / "anat" / f"sub-{i:02d}"
            "_label-lesion_mask.nii.gz",
            lesion,
            affine,
        )
    return root


@pytest.fixture(scope="module")
def volume_study(bids_with_lesions, tmp_path_factory):
    """The data set imported, Generators_s trained (tiny) and evaluated on whole volumes."""
    from mrtranslate.training.run import train_run

    work = tmp_path_factory.mktemp("volume-study")
    test_list = work / "test.txt"
    test_list.write_text(f"{TEST}\n")
    data = work / "data"
    args = ["data", "import", "--format", "bids", "--root", str(bids_with_lesions)]
    args += ["--out", str(data), "--slices", "0:6", "--test-subjects", str(test_list), "--quiet"]
    assert main(args) == 0
    run = work / "runs" / "generators_s"
    train_run("generators_s", data, run, profile="tiny", progress=False)
    out = work / "volumes"
    code = main(["evaluate-volumes", "--runs", str(run), "--out", str(out), "--quiet"])
    assert code == 0
    return {"root": bids_with_lesions, "data": data, "run": run, "out": out}


def test_import_records_volumes_lesions_and_citation(volume_study):
    dataset = open_dataset(volume_study["data"])
    assert dataset.citation == CITATION
    train = dataset.volume_sources("train")
    test = dataset.volume_sources("test")
    assert [s.participant for s in train] == TRAIN and [s.participant for s in test] == [TEST]
    assert test[0].t1w.is_absolute() and test[0].t1w.name == f"{TEST}_T1w.nii.gz"
    assert test[0].lesion.name == f"{TEST}_label-lesion_mask.nii.gz" and test[0].mask is None
    assert dataset.info()["volumes"] == {"train": 3, "test": 1}


def _rows(out: Path) -> list[dict]:
    with open(out / "volumes.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_volume_table_has_both_baselines_and_the_lookup_is_fitted_on_training_only(
    volume_study,
):
    out = volume_study["out"]
    summary = json.loads((out / "summary.json").read_text())
    for direction in ("t1-to-t2", "t2-to-t1"):
        assert set(summary["directions"][direction]) == {"copy", "lookup", "generators_s"}
        assert summary["lookup"][direction]["fitted_on"] == TRAIN
        model = summary["directions"][direction]["generators_s"]
        assert set(model["versus_lookup"]) == {"mae", "r", "ssim"}
        assert model["versus_lookup"]["mae"]["wilcoxon_p"] is None  # 1 participant: no test
    rows = _rows(out)
    assert len(rows) == 6 and {r["subject"] for r in rows} == {TEST}
    assert all(r["ssim_lesion"] and r["ssim_healthy"] for r in rows)
    # The lookup's numbers are those of a lookup fitted on the training participants.
    volumes = {}
    for sid in [*TRAIN, TEST]:
        anat = volume_study["root"] / sid / "anat"
        volumes[sid] = {
            c: canonical(nib.load(str(anat / f"{sid}_{c}.nii.gz"))) for c in ("T1w", "T2w")
        }
    brains = {s: default_brain_mask(v["T1w"], v["T2w"]) for s, v in volumes.items()}
    pairs = [(s, volumes[s]["T1w"], volumes[s]["T2w"], brains[s]) for s in TRAIN]
    lookup = IntensityLookup.fit(pairs)
    expected = volume_measures(
        volumes[TEST]["T2w"], lookup.apply(volumes[TEST]["T1w"], brains[TEST]), brains[TEST]
    )
    row = next(r for r in rows if r["candidate"] == "lookup" and r["direction"] == "t1-to-t2")
    assert float(row["mae"]) == pytest.approx(expected["mae"], rel=1e-4)
    assert float(row["r"]) == pytest.approx(expected["r"], rel=1e-4)
    # Copying a T1w as a T2w anticorrelates (CSF dark vs bright); the lookup inverts it.
    copy = next(r for r in rows if r["candidate"] == "copy" and r["direction"] == "t1-to-t2")
    assert float(copy["r"]) < 0 < float(row["r"])
    npz = np.load(out / "slices" / f"{TEST}.npz")
    assert {"t1-to-t2/input", "t1-to-t2/real", "t1-to-t2/lookup", "t2-to-t1/generators_s"} <= set(
        npz.files
    )


def test_report_shows_the_volume_table_baselines_figure3_and_citation(
    volume_study, tmp_path, capsys
):
    run, out = volume_study["run"], volume_study["out"]
    assert main(["evaluate", "--run", str(run), "--quiet"]) == 0
    report = tmp_path / "report"
    assert main(["report", "--runs", str(run), "--out", str(report), "--volumes", str(out)]) == 0
    html = (report / "report.html").read_text()
    assert "Whole volumes: does any model beat the baselines?" in html
    assert "copy input (baseline)" in html and "intensity lookup (baseline)" in html
    assert html.count('alt="Figure 3') == 1 and (report / f"figure3_{TEST}.png").is_file()
    assert "Doe J. A phantom cohort" in html
    table = (report / "volumes.md").read_text()
    assert "| t1-to-t2 | intensity lookup (baseline) |" in table
    assert "| t2-to-t1 | copy input (baseline) |" in table
    report_json = json.loads((report / "report.json").read_text())
    assert "75th percentile of brain area" in report_json["figure2_subject"]
    # A missing or damaged volume evaluation is one line, exit 2.
    args = ["report", "--runs", str(run), "--out", str(tmp_path / "r2"), "--volumes"]
    (tmp_path / "empty").mkdir()
    capsys.readouterr()
    assert "run 'mrtranslate evaluate-volumes'" in usage_error(
        capsys, [*args, str(tmp_path / "empty")]
    )
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "summary.json").write_text("{not json")
    assert "damaged" in usage_error(capsys, [*args, str(damaged)])


def test_a_model_that_loses_to_the_lookup_is_marked(volume_study):
    from mrtranslate.evaluation.volumes import volume_markdown

    summary = json.loads((volume_study["out"] / "summary.json").read_text())
    entry = summary["directions"]["t1-to-t2"]["generators_s"]
    lookup = summary["directions"]["t1-to-t2"]["lookup"]
    worse_mae = entry["mean"]["mae"] > lookup["mean"]["mae"]
    assert entry["versus_lookup"]["mae"]["better"] is (not worse_mae)
    line = next(
        x for x in volume_markdown(summary).splitlines() if x.startswith("| t1-to-t2 | Gen")
    )
    assert ("†" in line.split("|")[3]) is worse_mae  # the MAE cell


def test_figure1_has_reference_lines_for_copy_and_histogram_matching(small_phantom, tmp_path):
    from helpers import trained_and_evaluated
    from mrtranslate.reporting.figures import figure_bars
    from mrtranslate.runs import load_evaluation

    (run,) = trained_and_evaluated(("simple",), small_phantom, tmp_path)
    summary = load_evaluation(run)
    fig = figure_bars([summary])
    labels = {line.get_label() for ax in fig.axes for line in ax.get_lines()}
    for name in ("copy input", "histogram matching"):
        for direction in ("t1-to-t2", "t2-to-t1"):
            assert f"{name} ({direction})" in labels
    mae_axis = fig.axes[0]
    copy_line = next(
        line for line in mae_axis.get_lines() if line.get_label() == "copy input (t1-to-t2)"
    )
    expected = summary.references["copy"]["t1-to-t2"]["mae"]["mean"]
    assert copy_line.get_ydata()[0] == pytest.approx(expected)


def test_representative_slice_is_a_large_brain_not_the_first_slice():
    from mrtranslate.reporting.report import representative_index

    masks = np.zeros((5, 10, 10), bool)
    for i, area in enumerate([5, 40, 90, 20, 60]):
        masks[i].flat[:area] = True
    assert representative_index(masks) == 4  # areas sorted 5 20 40 60 90: 75th percentile 60


def test_evaluate_volumes_refuses_slice_data(small_phantom, tmp_path, capsys):
    from helpers import trained_and_evaluated

    (run,) = trained_and_evaluated(("simple",), small_phantom, tmp_path)
    capsys.readouterr()
    err = usage_error(capsys, ["evaluate-volumes", "--runs", str(run), "--out", str(tmp_path)])
    assert "records no source volumes" in err


def test_translate_bids_root_writes_valid_derivatives(volume_study, tmp_path, capsys):
    source_root = tmp_path / "bids"
    shutil.copytree(volume_study["root"], source_root)
    run = volume_study["run"]
    args = ["translate", "--run", str(run), "--direction", "t1-to-t2"]
    assert main([*args, "--input", str(source_root), "--quiet"]) == 0
    deriv = source_root / "derivatives" / "mrtranslate"
    written = sorted(p.relative_to(deriv).as_posix() for p in deriv.rglob("*.nii.gz"))
    assert written == [f"sub-0{i}/anat/sub-0{i}_desc-synthetic_T2w.nii.gz" for i in range(4)]
    sidecar = json.loads((deriv / "sub-01/anat/sub-01_desc-synthetic_T2w.json").read_text())
    assert sidecar["Model"] == "generators_s" and sidecar["Direction"] == "t1-to-t2"
    assert sidecar["Sources"] == ["bids:raw:sub-01/anat/sub-01_T1w.nii.gz"]
    assert sidecar["SkullStripped"] is True
    assert sidecar["CheckpointDigest"].startswith("sha256:") and sidecar["MrtranslateVersion"]
    assert sidecar["SourceFile"].endswith("sub-01_T1w.nii.gz")
    assert len(sidecar["WorkingResolution"]) == 2
    description = json.loads((deriv / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "mrtranslate"
    image = nib.load(str(deriv / "sub-01/anat/sub-01_desc-synthetic_T2w.nii.gz"))
    source = nib.load(str(source_root / "sub-01/anat/sub-01_T1w.nii.gz"))
    assert image.shape == source.shape and np.allclose(image.affine, source.affine)
    validator = Path(shutil.which("bids-validator-deno") or "")
    if not validator.name:
        validator = Path(__file__).resolve().parents[1] / ".venv/bin/bids-validator-deno"
    result = subprocess.run(
        [str(validator), str(deriv), "--json"], capture_output=True, text=True, timeout=300
    )
    issues = json.loads(result.stdout)["issues"]["issues"]
    errors = [i for i in issues if i["severity"] == "error"]
    assert not errors, errors
    # Existing outputs are kept without --overwrite; a second run with it replaces them.
    capsys.readouterr()
    err = usage_error(capsys, [*args, "--input", str(source_root)])
    assert "exists" in err
    assert main([*args, "--input", str(source_root), "--overwrite", "--quiet"]) == 0


def test_progress_prints_plain_lines_when_not_a_terminal(capsys, monkeypatch):
    from mrtranslate.progress import PlainProgress, progress_bar

    monkeypatch.setenv("MRTRANSLATE_PROGRESS_SECONDS", "0")
    bar = progress_bar(range(3), desc="work", unit="step")
    assert isinstance(bar, PlainProgress)  # pytest's stderr is not a terminal
    assert list(bar) == [0, 1, 2]
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert lines[0].startswith("work: 1/3 step (33%)") and lines[-1].startswith("work: done, 3")
    monkeypatch.setenv("MRTRANSLATE_PROGRESS_SECONDS", "3600")
    for _ in progress_bar(range(100), desc="quiet"):
        pass
    assert capsys.readouterr().err.splitlines() == ["quiet: done, 100 it in 0 s"]


def test_import_scales_each_volume_once(volume_study, bids_with_lesions, tmp_path):
    """Several slices per volume: one divisor per volume (its brain's 99.5th percentile), the
    same for all its slices; ``--scale slice`` keeps the per-image divisors."""
    from mrtranslate.data.volumes import volume_divisor

    dataset = open_dataset(volume_study["data"])
    assert dataset.intensity_scale == "volume" and "per volume" in dataset.meta["intensity"]
    train = dataset.split("train")
    for sid in TRAIN:
        rows = np.nonzero(train.subjects == sid)[0]
        anat = bids_with_lesions / sid / "anat"
        t1 = canonical(nib.load(str(anat / f"{sid}_T1w.nii.gz")))
        t2 = canonical(nib.load(str(anat / f"{sid}_T2w.nii.gz")))
        expected = volume_divisor(t1, default_brain_mask(t1, t2))
        np.testing.assert_allclose(train.scale_t1w[rows], expected, rtol=1e-6)
    per_slice = tmp_path / "per-slice"
    args = ["data", "import", "--format", "bids", "--root", str(bids_with_lesions)]
    assert main([*args, "--out", str(per_slice), "--slices", "0:6", "--scale", "slice"]) == 0
    sliced = open_dataset(per_slice)
    assert sliced.intensity_scale == "slice"
    rows = np.nonzero(sliced.split("train").subjects == TRAIN[0])[0]
    assert np.ptp(sliced.split("train").scale_t1w[rows]) > 0


def test_translate_uses_the_runs_volume_scale(volume_study, monkeypatch):
    """A stand-in model that always answers mid-grey: with one scale per volume every slice of
    the output has the same value, whatever the slice's own brightness."""
    import torch

    from mrtranslate.data.volumes import volume_divisor
    from mrtranslate.inference import translate_volume
    from mrtranslate.inference import volumes as inference_volumes
    from mrtranslate.runs import load_run

    run = load_run(volume_study["run"])
    assert run.intensity_scale == "volume"
    monkeypatch.setattr(
        inference_volumes, "translate_stack", lambda m, batch, *a, **k: torch.zeros_like(batch)
    )
    vols, _ = phantom_volumes(5)
    volume = vols["t1w"] * np.array([1.0, 2.0, 0.5, 1.5, 3.0, 1.0])[None, None, :]
    brain = default_brain_mask(volume)
    out = translate_volume(run, volume, "t1-to-t2")
    expected = 0.5 * volume_divisor(volume, brain)
    for k in range(volume.shape[2]):
        np.testing.assert_allclose(out[:, :, k][brain[:, :, k]], expected, rtol=1e-5)


@pytest.mark.slow
def test_study_on_volume_data_plans_native_resolution_and_judges_whole_volumes(
    volume_study, tmp_path
):
    """The main job on volume data answers "does any model beat the lookup?" on its own."""
    out = tmp_path / "study"
    args = ["study", "--data", str(volume_study["data"]), "--out", str(out), "--budget", "2"]
    args += ["--force"]  # a machine busy with other work may not pay the floor in 2 minutes
    assert main([*args, "--models", "generators_s", "simple", "--quiet"]) == 0
    plan = json.loads((out / "plan.json").read_text())
    assert plan["downsample"] == 1 and plan["image_shape"] == [64, 64]
    assert "crop" in plan
    summary = json.loads((out / "volumes" / "summary.json").read_text())
    assert set(summary["directions"]["t1-to-t2"]) == {"copy", "lookup", "generators_s", "simple"}
    # Every test image is an axial slice of the test volume: translated once, by evaluation,
    # and taken from it by the volume stage, which the plan counted on.
    test_images = len(open_dataset(volume_study["data"]).split("test"))
    for model in ("generators_s", "simple"):
        assert summary["reused_from_evaluation"][model]["slices"] == 2 * test_images
    taken = plan["calibration"]["volume_megapixels_taken_from_evaluation"]
    assert taken["64x64"] == pytest.approx(test_images * 64 * 64 / 1e6)  # whole slices
    assert all(megapixels > 0 for megapixels in taken.values())  # tiles of every crop
    html = (out / "report" / "report.html").read_text()
    assert "Whole volumes: does any model beat the baselines?" in html
    # Run again: everything is done for these checkpoints, nothing is recomputed.
    before = (out / "volumes" / "summary.json").stat().st_mtime_ns
    assert main([*args, "--models", "generators_s", "simple", "--quiet"]) == 0
    assert (out / "volumes" / "summary.json").stat().st_mtime_ns == before


def _slow_machine(monkeypatch, step_seconds: float = 0.5):
    """A fake machine for the study's calibration: every training step costs ``step_seconds``
    per 64x64 pixels (whatever the model), translation and measures almost nothing."""
    from mrtranslate.study import calibration

    def fake_step(model, shape, batch, device, precision):
        return step_seconds * shape[0] * shape[1] / 4096, {}

    monkeypatch.setattr(calibration, "quick_step_seconds", fake_step)
    monkeypatch.setattr(calibration, "metrics_seconds", lambda shape, count, seed=0: 1e-3)
    monkeypatch.setattr(calibration, "translation_pixel_seconds", lambda *a, **k: 1e-8)


def test_a_budget_below_the_floor_is_refused_with_one_that_fits(
    volume_study, tmp_path, monkeypatch, capsys
):
    """On a machine where the floor (210 steps per model) cannot fit a 1-minute budget, the
    study does not start: one line with the budget that would fit, measured, exit 2, nothing
    written; the budget it names does fit."""
    from mrtranslate.study.calibration import calibrate_and_plan
    from mrtranslate.study.plan import MIN_STEPS
    from mrtranslate.study.shape import study_shape

    _slow_machine(monkeypatch)
    out = tmp_path / "study"
    models = ["generators_s", "simple"]
    args = ["study", "--data", str(volume_study["data"]), "--out", str(out), "--budget", "1"]
    error = usage_error(capsys, [*args, "--models", *models, "--quiet"])
    assert not out.exists()  # nothing written
    assert "cannot train every model to the floor" in error and "--force" in error
    assert "generators_s would get" in error and "simple would get" in error
    budget = float(error.split("--budget ")[1].split()[0])
    assert budget > 1
    # the named budget fits: both models get the floor (steps at 0.5 s each: 2 x 210 x 0.5 s)
    shape = study_shape(open_dataset(volume_study["data"]), models)
    plan = calibrate_and_plan(shape, budget, 0.0, "cpu", "fp32")
    assert not plan.under_trained
    assert min(plan.steps_of(m) for m in models) >= MIN_STEPS
    assert budget <= 2 * MIN_STEPS * 0.5 / 60 / 0.9 + 2  # not far above what the floor costs
    smaller = calibrate_and_plan(shape, budget - 1, 0.0, "cpu", "fp32")
    assert smaller.under_trained or budget - 1 < 1


@pytest.mark.slow
def test_force_runs_below_the_floor_and_the_report_says_under_trained(
    volume_study, tmp_path, monkeypatch, capsys
):
    """--force runs the plan the budget allows; the report's training table lists each model's
    steps, crop and training time and marks every model below the floor under-trained."""
    _slow_machine(monkeypatch, step_seconds=2.0)
    out = tmp_path / "study"
    args = ["study", "--data", str(volume_study["data"]), "--out", str(out), "--budget", "1"]
    assert main([*args, "--models", "generators_s", "simple", "--quiet", "--force"]) == 0
    assert "warning: --force: under-trained models" in capsys.readouterr().out
    plan = json.loads((out / "plan.json").read_text())
    assert set(plan["under_trained"]) == {"generators_s", "simple"}
    html = (out / "report" / "report.html").read_text()
    training = html.split("<h2>Training</h2>")[1].split("</table>")[0]
    for model in ("Generators_s", "Simple"):
        row = training.split(f"<td>{model}</td>")[1].split("</tr>")[0]
        steps = plan["models"][0]["steps"] if model == "Generators_s" else None
        assert "under-trained" in row
        if steps:
            assert f"<td>{steps}</td>" in row
    recorded = json.loads((out / "study.json").read_text())
    assert recorded["stages"] and recorded["plan"]["under_trained"] == plan["under_trained"]


def test_two_runs_of_one_model_are_refused_not_overwritten(volume_study, tmp_path, capsys):
    """The volume table has one row per model: a second run of the same model would silently
    replace the first one's numbers."""
    twin = tmp_path / "twin"
    shutil.copytree(volume_study["run"], twin)
    out = tmp_path / "volumes"
    error = usage_error(
        capsys,
        ["evaluate-volumes", "--runs", str(volume_study["run"]), str(twin), "--out", str(out)],
    )
    assert "both Generators_s runs" in error and "separate --out" in error
    assert not out.exists()
