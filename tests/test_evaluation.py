"""evaluate, report and study end to end on tiny runs, plus their bad-input errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from helpers import trained_and_evaluated, usage_error
from mrtranslate.cli import main
from mrtranslate.methods import study_names
from mrtranslate.training.run import train_run


@pytest.fixture(scope="module")
def tiny_runs(small_phantom, tmp_path_factory):
    return trained_and_evaluated(
        ("simple", "generators_s"), small_phantom, tmp_path_factory.mktemp("runs")
    )


def test_evaluate_outputs(tiny_runs):
    run = tiny_runs[0]
    with open(run / "eval" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 4  # 4 test images, 2 directions
    assert {r["direction"] for r in rows} == {"t1-to-t2", "t2-to-t1"}
    for key in ("mae", "psnr", "mi", "ssim", "mae_mask", "psnr_mask", "mi_mask", "ssim_mask"):
        assert all(np.isfinite(float(r[key])) for r in rows)
    summary = json.loads((run / "eval" / "summary.json").read_text())
    stat = summary["measures"]["t1-to-t2"]["mae"]
    values = [float(r["mae"]) for r in rows if r["direction"] == "t1-to-t2"]
    assert stat["n"] == 4 and stat["mean"] == pytest.approx(np.mean(values), rel=1e-5)
    assert stat["ci95"][0] < stat["mean"] < stat["ci95"][1]
    assert summary["synthesis"]["t1-to-t2"]["seconds_per_image_batch1"] > 0
    assert summary["training"]["mean_seconds_per_epoch"] > 0
    assert set(summary["references"]) == {"copy", "histmatch"}
    synthetic = np.load(run / "eval" / "synthetic_t1-to-t2.npy")
    assert synthetic.shape == (4, 32, 32) and synthetic.min() >= 0 and synthetic.max() <= 1


def test_report_contains_every_figure_and_table(tiny_runs, tmp_path):
    out = tmp_path / "report"
    assert main(["report", "--runs", *map(str, tiny_runs), "--out", str(out)]) == 0
    for name in ("figure1_measures", "figure1_measures_mask", "figure2_examples"):
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert (out / f"{name}.svg").read_text().lstrip().startswith("<?xml")
    for name in ("summary.csv", "summary_mask.csv", "statistics.csv", "summary.md"):
        assert (out / name).stat().st_size > 0
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3
    for text in (
        "Generators_s",
        "Simple",
        "copy input",
        "histogram matching",
        "Wilcoxon",
        "Metric definitions",
        "s/epoch",
        "PSNR",
    ):
        assert text in page
    assert 'src="http' not in page and "<script" not in page  # self-contained, no server
    with open(out / "statistics.csv", newline="") as handle:
        stats = list(csv.DictReader(handle))
    assert len(stats) == 2 * 8  # one pair x 2 directions x 8 measures
    assert all(0 <= float(r["p_holm"]) <= 1 for r in stats)


def test_evaluate_bad_input(tiny_runs, small_phantom, tmp_path, capsys):
    assert "no checkpoint" in usage_error(capsys, ["evaluate", "--run", str(tmp_path)])
    unfinished = tmp_path / "unfinished"
    train_run("simple", small_phantom, unfinished, profile="tiny", progress=False, stop_after=2)
    assert "not finished" in usage_error(capsys, ["evaluate", "--run", str(unfinished)])

    from mrtranslate.data.build import build_phantom
    from mrtranslate.data.phantom import PhantomSpec

    other = build_phantom(
        PhantomSpec(subjects=4, test_subjects=1, height=48, width=48, spacing=4.0),
        tmp_path / "other",
        progress=False,
    )
    err = usage_error(capsys, ["evaluate", "--run", str(tiny_runs[0]), "--data", str(other)])
    assert "48x48" in err

    empty = tmp_path / "empty"
    build_phantom(
        PhantomSpec(subjects=4, test_subjects=1, height=64, width=64, spacing=3.0),
        empty,
        progress=False,
    )
    from mrtranslate.data.dataset import open_dataset, write_split

    test = open_dataset(empty).split("test")
    write_split(
        empty / "test",
        {
            k: np.asarray(getattr(test, k))[:0]
            for k in ("t1w", "t2w", "mask", "subjects", "scale_t1w", "scale_t2w")
        },
    )
    err = usage_error(capsys, ["evaluate", "--run", str(tiny_runs[0]), "--data", str(empty)])
    assert "empty" in err
    assert "not been evaluated" in usage_error(
        capsys, ["report", "--runs", str(unfinished), "--out", str(tmp_path / "r")]
    )


def test_study_unknown_model(capsys, tmp_path):
    assert "invalid choice" in usage_error(
        capsys, ["study", "--out", str(tmp_path), "--models", "nosuchmodel"]
    )


@pytest.mark.slow
def test_study_tiny_end_to_end_and_resume(small_phantom, tmp_path, capsys):
    out = tmp_path / "study"
    args = [
        "study",
        "--data",
        str(small_phantom),
        "--out",
        str(out),
        "--profile",
        "tiny",
        "--quiet",
    ]
    assert main(args) == 0
    first = capsys.readouterr().out
    report = out / "report" / "report.html"
    assert report.is_file() and str(report) in first
    models = study_names()
    for model in models:
        assert (out / "runs" / model / "eval" / "summary.json").is_file()
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/checkpoint.pt")}
    assert len(stamps) == len(models)
    assert main(args) == 0
    second = capsys.readouterr().out
    assert second.count("already trained") == len(models)
    assert second.count("already evaluated") == len(models)
    assert stamps == {p: p.stat().st_mtime_ns for p in out.glob("runs/*/checkpoint.pt")}


def test_histogram_matching_learns_from_training_images_only(small_phantom, monkeypatch):
    from mrtranslate.data.dataset import open_dataset
    from mrtranslate.data.tensors import load_images
    from mrtranslate.evaluation import evaluate

    seen = []
    real_quantiles = evaluate.reference_quantiles

    def spy(images):
        seen.append(images.clone())
        return real_quantiles(images)

    monkeypatch.setattr(evaluate, "reference_quantiles", spy)
    dataset = open_dataset(small_phantom)
    shape = (32, 32)
    tensors = evaluate.test_tensors(dataset, shape)
    evaluate._measure_references(dataset, shape, tensors, progress=False)
    train = dataset.split("train")
    expected = [load_images(train, c, shape) for c in ("t1w", "t2w")]
    assert len(seen) == 2
    for got, want in zip(seen, expected):
        assert got.shape[0] == len(train) and torch.equal(got, want)


def test_an_empty_mask_gives_missing_masked_measures_not_a_crash():
    """A slice at the bottom of a volume can lose its whole mask when down-sampled: its masked
    measures are missing (NaN), left out of the summary, and evaluation goes on."""
    from mrtranslate.evaluation.evaluate import measure_stack
    from mrtranslate.evaluation.summary import describe

    rng = np.random.default_rng(0)
    real = rng.uniform(0, 1, (3, 16, 16))
    synthetic = np.clip(real + rng.normal(0, 0.1, real.shape), 0, 1)
    masks = np.ones((3, 16, 16), bool)
    masks[1] = False
    rows = measure_stack(real, synthetic, masks, progress=False)
    assert np.isnan(rows[1]["mae_mask"]) and np.isfinite(rows[1]["mae"])
    stat = describe(np.array([r["mae_mask"] for r in rows]))
    assert stat["n"] == 2 and stat["n_missing"] == 1
    assert stat["median"] == pytest.approx(np.median([rows[0]["mae_mask"], rows[2]["mae_mask"]]))


def test_a_measure_added_in_one_place_reaches_every_output(small_phantom, tmp_path, monkeypatch):
    """One line in ``metrics.MEASURE_TABLE`` is all a new measure needs: evaluation computes
    it, and the CSVs, Markdown and HTML tables, the statistics and Figure 1 show it."""
    from mrtranslate.evaluation import metrics
    from mrtranslate.reporting import figures

    largest = metrics.Measure(
        "maxerr",
        "largest error",
        "SD",
        False,
        lambda zr, zs, r, m: float(np.abs(zs - zr)[m if m is not None else ...].max()),
    )
    monkeypatch.setattr(metrics, "MEASURE_TABLE", (*metrics.MEASURE_TABLE, largest))
    titles = []
    original = figures.figure_bars

    def spy(summaries, variant=""):
        fig = original(summaries, variant)
        titles.extend(ax.get_title() for ax in fig.axes)
        return fig

    monkeypatch.setattr(figures, "figure_bars", spy)
    (run,) = trained_and_evaluated(("simple",), small_phantom, tmp_path)
    with open(run / "eval" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:  # computed on the same z-scored images: the largest error >= the mean
        assert float(row["maxerr"]) >= float(row["mae"]) > 0
        assert float(row["maxerr_mask"]) >= float(row["mae_mask"]) > 0
    out = tmp_path / "report"
    assert main(["report", "--runs", str(run), "--out", str(out)]) == 0
    assert "largest error (SD)" in (out / "summary.md").read_text()
    assert "largest error (SD) mean" in (out / "report.html").read_text()
    assert "maxerr_mean" in (out / "summary.csv").read_text().splitlines()[0]
    assert "largest error (SD), lower is better" in titles
    assert len(titles) == 2 * 5  # Figure 1 whole image and inside the mask, 5 panels each
