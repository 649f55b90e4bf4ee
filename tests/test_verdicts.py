"""Every claim the reports print, pinned to its rule.

The volume report's verdict ("beats the intensity lookup"), its red cells and daggers, the
per-participant counts and Wilcoxon p in its tooltips; the lookup it compares against (median
per bin, empty bins from their neighbours); the slice report's Holm-corrected stars; the
perceptual study's binomial test. Each test states the rule directly on small hand-made inputs,
so that a change of the rule (any instead of all, mean instead of median, 0 for empty bins, a
swapped direction of "better", a star without correction) fails here.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import stats

from mrtranslate.evaluation.volume_baselines import LOOKUP_BINS, IntensityLookup
from mrtranslate.evaluation.volumes import (
    MIN_PARTICIPANTS_FOR_TEST,
    better,
    summarise_volumes,
    volume_markdown,
)
from mrtranslate.reporting.volume_section import volume_html

MEASURES = ("mae", "psnr", "ssim", "r")


def _rows(values: dict[str, list[dict]], direction: str = "t1-to-t2") -> list[dict]:
    """Rows of evaluate-volumes: ``values[candidate]`` is one dict of measures per participant."""
    rows = []
    for candidate, per_participant in values.items():
        for i, measures in enumerate(per_participant):
            rows.append(
                {
                    "participant": f"sub-{i:02d}",
                    "subject": f"sub-{i:02d}",
                    "direction": direction,
                    "candidate": candidate,
                    **measures,
                }
            )
    return rows


LOOKUP = {"mae": 0.10, "psnr": 20.0, "ssim": 0.70, "r": 0.70}


def _summary(model: dict, n: int = 1, lookup: dict = LOOKUP) -> dict:
    """A model and the lookup, the same values for ``n`` participants."""
    rows = _rows({"lookup": [lookup] * n, "copy": [lookup] * n, "model": [model] * n})
    return summarise_volumes(rows, {"model": "Model"})


def _entry(summary: dict) -> dict:
    return summary["directions"]["t1-to-t2"]["model"]


# ---------------------------------------------------------------- the verdict: all three measures


def test_better_in_mae_only_does_not_beat_the_lookup():
    model = {"mae": 0.05, "psnr": 25.0, "ssim": 0.60, "r": 0.60}  # MAE better, r and SSIM worse
    entry = _entry(_summary(model))
    assert entry["versus_lookup"]["mae"]["better"] is True
    assert entry["versus_lookup"]["r"]["better"] is False
    assert entry["versus_lookup"]["ssim"]["better"] is False
    assert entry["beats_lookup"] is False


@pytest.mark.parametrize("worse", ["mae", "r", "ssim"])
def test_worse_in_any_one_of_the_three_does_not_beat_the_lookup(worse):
    model = {"mae": 0.05, "psnr": 25.0, "ssim": 0.80, "r": 0.80}
    model[worse] = {"mae": 0.2, "r": 0.5, "ssim": 0.5}[worse]
    assert _entry(_summary(model))["beats_lookup"] is False


def test_better_in_all_three_beats_the_lookup_whatever_psnr_says():
    model = {"mae": 0.05, "psnr": 15.0, "ssim": 0.80, "r": 0.80}  # PSNR worse: not in the verdict
    entry = _entry(_summary(model))
    assert set(entry["versus_lookup"]) == {"mae", "r", "ssim"}
    assert entry["beats_lookup"] is True


def test_the_verdict_compares_means_over_participants():
    """Better on average (MAE) although worse in two of three participants."""
    lookup = [dict(LOOKUP) for _ in range(3)]
    model = [dict(LOOKUP, mae=m, r=0.9, ssim=0.9) for m in (0.11, 0.11, 0.01)]
    summary = summarise_volumes(_rows({"lookup": lookup, "model": model}), {})
    versus = _entry(summary)["versus_lookup"]["mae"]
    assert versus["participants_better"] == 1 and versus["n"] == 3
    assert versus["better"] is True  # mean 0.077 < 0.10
    assert versus["mean_difference"] == pytest.approx(np.mean([0.01, 0.01, -0.09]))
    assert _entry(summary)["beats_lookup"] is True


@pytest.mark.parametrize(
    ("measure", "good", "bad"),
    [
        ("mae", 0.1, 0.2),
        ("slice_consistency", 0.1, 0.2),
        ("mean_jump", 0.01, 0.02),
        ("psnr", 25.0, 20.0),
        ("ssim", 0.8, 0.7),
        ("r", 0.8, 0.7),
        ("ssim_lesion", 0.8, 0.7),
        ("hf_ratio", 0.9, 0.7),  # closer to 1 is better ...
        ("hf_ratio", 1.05, 1.2),  # ... from above too
        ("hf_ratio", 0.95, 1.1),
    ],
)
def test_the_direction_of_better_per_measure(measure, good, bad):
    assert better(measure, good, bad) is True
    assert better(measure, bad, good) is False
    assert better(measure, good, good) is False  # a tie is not better
    assert better(measure, float("nan"), bad) is False


# -------------------------------------------------------- per-participant counts and Wilcoxon p


def test_participant_counts_and_the_paired_wilcoxon_test():
    n = MIN_PARTICIPANTS_FOR_TEST + 2
    rng = np.random.default_rng(3)
    lookup_r = rng.uniform(0.6, 0.7, n)
    model_r = lookup_r + np.array([0.05, 0.04, 0.03, -0.02, 0.06, 0.01, -0.01, 0.02][:n])
    lookup = [dict(LOOKUP, r=float(v)) for v in lookup_r]
    model = [dict(LOOKUP, r=float(v)) for v in model_r]
    versus = _entry(summarise_volumes(_rows({"lookup": lookup, "model": model}), {}))[
        "versus_lookup"
    ]["r"]
    assert versus["n"] == n
    assert versus["participants_better"] == int(np.sum(model_r > lookup_r))
    assert versus["wilcoxon_p"] == pytest.approx(stats.wilcoxon(model_r, lookup_r).pvalue)
    # paired by participant: the same values shuffled between participants give another p
    shuffled = [dict(LOOKUP, r=float(v)) for v in model_r[::-1]]
    other = _entry(summarise_volumes(_rows({"lookup": lookup, "model": shuffled}), {}))
    assert other["versus_lookup"]["r"]["wilcoxon_p"] != pytest.approx(versus["wilcoxon_p"])


def test_no_wilcoxon_p_below_the_participants_it_needs():
    n = MIN_PARTICIPANTS_FOR_TEST - 1
    lookup = [dict(LOOKUP, r=0.6 + 0.01 * i) for i in range(n)]
    model = [dict(LOOKUP, r=0.7 + 0.01 * i) for i in range(n)]
    versus = _entry(summarise_volumes(_rows({"lookup": lookup, "model": model}), {}))[
        "versus_lookup"
    ]["r"]
    assert versus["wilcoxon_p"] is None
    assert str(MIN_PARTICIPANTS_FOR_TEST) in versus["test_note"]
    # at the threshold the test is made, and all participants better in r reach p < 0.05
    n = MIN_PARTICIPANTS_FOR_TEST
    lookup = [dict(LOOKUP, r=0.6 + 0.01 * i) for i in range(n)]
    model = [dict(LOOKUP, r=0.7 + 0.013 * i) for i in range(n)]
    versus = _entry(summarise_volumes(_rows({"lookup": lookup, "model": model}), {}))[
        "versus_lookup"
    ]["r"]
    assert versus["wilcoxon_p"] is not None and versus["wilcoxon_p"] < 0.05


# ------------------------------------------------------------ what the report prints from them


def _cells(html: str) -> dict[str, str]:
    """The model row's cells, keyed by column label."""
    header = re.search(r"<tr><th>direction</th><th>candidate</th>(.*?)</tr>", html).group(1)
    labels = re.findall(r"<th>(.*?)</th>", header)
    row = re.search(r"<tr><td>t1-to-t2</td><td>Model</td>(.*?)</tr>", html).group(1)
    cells = re.findall(r"<td>(.*?)</td>", row)
    return dict(zip(labels, cells))


def test_red_cells_and_daggers_mark_exactly_the_measures_where_the_lookup_wins():
    model = {"mae": 0.05, "psnr": 15.0, "ssim": 0.60, "r": 0.80}  # MAE, r better; SSIM worse
    summary = _summary(model, n=2)
    summary["test_subjects"] = ["sub-00", "sub-01"]
    html = volume_html(summary, [])
    cells = _cells(html)
    assert "class=worse" in cells["SSIM 3-D"] and "&dagger;" in cells["SSIM 3-D"]
    for label in ("MAE", "Pearson r"):
        assert "worse" not in cells[label] and "dagger" not in cells[label]
    assert "worse" not in cells["PSNR (dB)"]  # PSNR is not compared with the lookup
    markdown = next(x for x in volume_markdown(summary).splitlines() if "| Model |" in x)
    marked = [c.strip() for c in markdown.split("|")[3:-2]]
    assert [c.endswith("†") for c in marked] == [False, False, True, False]  # mae psnr ssim r


def test_red_cells_follow_the_mean_not_the_participant_count():
    """MAE: better on average though worse in two of three participants (no mark); r: worse on
    average though better in two of three (marked)."""
    lookup = [dict(LOOKUP) for _ in range(3)]
    model = [
        dict(LOOKUP, mae=m, r=r, ssim=0.9) for m, r in ((0.11, 0.71), (0.11, 0.71), (0.01, 0.20))
    ]
    summary = summarise_volumes(_rows({"lookup": lookup, "model": model}), {"model": "Model"})
    cells = _cells(volume_html(summary, []))
    assert "worse" not in cells["MAE"] and "1 of 3" in cells["MAE"]
    assert "class=worse" in cells["Pearson r"] and "2 of 3" in cells["Pearson r"]
    markdown = next(x for x in volume_markdown(summary).splitlines() if "| Model |" in x)
    marked = [c.strip() for c in markdown.split("|")[3:-2]]
    assert [c.endswith("†") for c in marked] == [False, False, False, True]  # mae psnr ssim r


def test_the_verdict_sentence_names_only_the_models_that_beat_the_lookup():
    rows = _rows(
        {
            "lookup": [LOOKUP],
            "good": [{"mae": 0.05, "psnr": 25.0, "ssim": 0.8, "r": 0.8}],
            "mae_only": [{"mae": 0.05, "psnr": 25.0, "ssim": 0.6, "r": 0.6}],
        }
    )
    summary = summarise_volumes(rows, {"good": "Good", "mae_only": "MaeOnly"})
    verdict = re.search(r"<ul>(.*?)</ul>", volume_html(summary, [])).group(1)
    assert "Good beats the intensity lookup in MAE, r and SSIM" in verdict
    assert "MaeOnly" not in verdict
    loser = summarise_volumes(rows[:1] + rows[2:], {"mae_only": "MaeOnly"})
    verdict = re.search(r"<ul>(.*?)</ul>", volume_html(loser, [])).group(1)
    assert "no model beats the intensity lookup" in verdict and "MaeOnly" not in verdict


def test_the_tooltip_gives_the_participant_count_and_the_test():
    n = MIN_PARTICIPANTS_FOR_TEST
    lookup = [dict(LOOKUP, mae=0.10 + 0.01 * i) for i in range(n)]
    model = [dict(LOOKUP, mae=0.05 + 0.01 * i) for i in range(n - 1)] + [dict(LOOKUP, mae=0.3)]
    summary = summarise_volumes(_rows({"lookup": lookup, "model": model}), {"model": "Model"})
    versus = _entry(summary)["versus_lookup"]["mae"]
    cell = _cells(volume_html(summary, []))["MAE"]
    assert f"better than the lookup in {n - 1} of {n}" in cell
    assert f"Wilcoxon p = {versus['wilcoxon_p']:.3g}" in cell


# ---------------------------------------------------------------------------------- the lookup


def _skewed_pairs():
    """One training volume: 900 voxels at source 1.0 / target 1.0 and 100 at source 0.5 whose
    targets are skewed (60 at 0.1, 30 at 0.2, 10 at 0.9: median 0.1, mean 0.21)."""
    source = np.ones(1000)
    target = np.ones(1000)
    source[:100] = 0.5
    target[:60], target[60:90], target[90:100] = 0.1, 0.2, 0.9
    brain = np.ones((10, 10, 10), bool)
    return source.reshape(10, 10, 10), target.reshape(10, 10, 10), brain


def test_each_bin_takes_the_median_of_its_training_targets():
    source, target, brain = _skewed_pairs()
    lookup = IntensityLookup.fit([("sub-a", source, target, brain)])
    bin_of_half = int(0.5 * LOOKUP_BINS)
    assert lookup.table[bin_of_half] == pytest.approx(0.1)  # the median, not the mean (0.21)
    assert lookup.table[-1] == pytest.approx(1.0)
    assert lookup.apply(source, brain)[source == 0.5] == pytest.approx(0.1)


def test_a_source_intensity_never_seen_takes_its_neighbours_value():
    source, target, brain = _skewed_pairs()
    lookup = IntensityLookup.fit([("sub-a", source, target, brain)])
    new = np.ones((10, 10, 10))
    new[0, 0, :5] = [0.75, 0.2, 0.02, 0.5, 0.9]
    out = lookup.apply(new, brain)[0, 0, :5]
    centres = (np.arange(LOOKUP_BINS) + 0.5) / LOOKUP_BINS
    between = np.interp(centres[int(0.75 * LOOKUP_BINS)], centres[[128, 255]], [0.1, 1.0])
    assert out[0] == pytest.approx(between)  # between the filled bins on either side
    assert 0.1 < out[0] < 1.0
    assert out[1] == pytest.approx(0.1) and out[2] == pytest.approx(0.1)  # below: the lowest
    assert out[3] == pytest.approx(0.1)
    assert out[4] > out[0]
    assert (lookup.table > 0).all()  # no empty bin left at 0


def test_the_lookup_pools_all_training_participants():
    source, target, brain = _skewed_pairs()
    other_target = target.copy()
    other_target[source == 0.5] = 0.9  # a second participant: all 100 at 0.9
    lookup = IntensityLookup.fit(
        [("sub-a", source, target, brain), ("sub-b", source, other_target, brain)]
    )
    # pooled 200 targets: 60 x 0.1, 30 x 0.2, 110 x 0.9 -> median 0.9
    assert lookup.table[int(0.5 * LOOKUP_BINS)] == pytest.approx(0.9)
    assert lookup.fitted_on == ["sub-a", "sub-b"] and lookup.voxels == 2000


# -------------------------------------------------------------- the slice report's statistics


def test_holm_adjusts_step_down_and_keeps_the_order():
    from mrtranslate.reporting.statistics import holm

    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.2, 0.001]) == pytest.approx([0.2, 0.002])
    assert holm([0.5, 0.6, 0.9]) == pytest.approx([1.0, 1.0, 1.0])


def test_pairwise_tests_are_paired_wilcoxon_with_holm():
    from mrtranslate.reporting.statistics import holm, pairwise_tests

    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 30)
    values = {"A": a, "B": a + 0.5 + rng.normal(0, 0.2, 30), "C": a + rng.normal(0, 1, 30)}
    rows = pairwise_tests(values)
    assert [(r["a"], r["b"]) for r in rows] == [("A", "B"), ("A", "C"), ("B", "C")]
    for r in rows:
        x, y = values[r["a"]], values[r["b"]]
        assert r["p"] == pytest.approx(stats.wilcoxon(x, y).pvalue)
        assert r["median_difference"] == pytest.approx(np.median(x - y))
    assert [r["p_holm"] for r in rows] == pytest.approx(holm([r["p"] for r in rows]))
    assert rows[0]["median_difference"] < 0  # a - b: A is lower than B


def test_the_star_follows_the_holm_corrected_p():
    from mrtranslate.reporting.html_page import _stats_table

    rows = [
        {"direction": "t1-to-t2", "measure": "mae", "a": "A", "b": "B", "median_difference": 0.1}
        | {"p": 0.01, "p_holm": 0.06},
        {"direction": "t1-to-t2", "measure": "mae", "a": "A", "b": "C", "median_difference": 0.1}
        | {"p": 0.01, "p_holm": 0.049},
    ]
    html = _stats_table(rows, "")
    cells = re.findall(r"<td>([^<]*)</td></tr>", html)
    assert cells == ["0.060", "0.049 *"]


def test_the_perceptual_binomial_test_is_against_chance():
    from mrtranslate.perceptual.analysis import _rates

    rows = [{"label": "real", "truth": "real"}] * 14 + [{"label": "real", "truth": "synthetic"}] * 6
    rates = _rates(rows)
    assert rates["accuracy"] == pytest.approx(0.7)
    assert rates["synthetic_labelled_real"] == 6 and rates["real_labelled_synthetic"] == 0
    assert rates["binomial_p_vs_chance"] == pytest.approx(stats.binomtest(14, 20, 0.5).pvalue)
    assert rates["sensitivity"] == 0.0 and rates["specificity"] == 1.0


# ------------------------------------------------------------------------- two report defects


def _eval_summary(evaluation_shape, data_shape):
    from mrtranslate.runs import EvalSummary

    return EvalSummary(
        model="simple",
        display_name="Simple",
        profile="quick",
        data="d",
        test_images=1,
        evaluation_shape=list(evaluation_shape),
        measures={},
        training={"data_image_shape": list(data_shape)} if data_shape else {},
    )


def test_no_down_sampling_warning_at_the_data_resolution():
    from mrtranslate.reporting.html_page import _resolution_note

    native = _resolution_note(_eval_summary((240, 240), (240, 240)))
    assert "down-sampled" not in native and "no finer detail" not in native
    assert "240x240" in native and "own resolution" in native
    reduced = _resolution_note(_eval_summary((120, 120), (240, 240)))
    assert "down-sampled 2.0x" in reduced and "no finer detail" in reduced


@pytest.mark.parametrize(
    "citation",
    [
        "Cite all three: Lesjak et al. 2018 ...",
        "Please cite Menze et al. 2015",
        "cite the data set",
        "Lesjak et al., Neuroinformatics 2018",
    ],
)
def test_the_citation_box_reads_well_whatever_the_text_starts_with(citation):
    from mrtranslate.reporting.html_page import _data_and_settings

    html = "".join(_data_and_settings([_eval_summary((64, 64), None)], citation))
    box = re.search(r"<p class=note>Data: (.*?)</p>", html).group(1)
    assert not re.search(r"cite\s+(please\s+)?cite", box, re.IGNORECASE)
    assert citation.split(":")[0].split(",")[0] in box
