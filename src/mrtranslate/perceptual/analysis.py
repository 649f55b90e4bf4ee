"""Results of a perceptual study: accuracy, sensitivity, specificity, CIs, binomial tests, kappa.

Positive class = synthetic. Sensitivity = synthetic images labelled synthetic / synthetic images;
specificity = real images labelled real / real images; accuracy = correct labels / all labels.
Confidence intervals are Wilson score intervals (95%); the binomial test (two-sided) asks whether
the number of correct labels differs from chance (p = 0.5). Agreement between readers is Cohen's
kappa for each pair of readers on the images both answered, and Fleiss' kappa over images that
every reader answered.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import stats


def wilson(successes: int, n: int, z: float = 1.959963984540054) -> list[float]:
    if n == 0:
        return [math.nan, math.nan]
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return [max(0.0, centre - half), min(1.0, centre + half)]


def _rates(rows: list[dict]) -> dict:
    n = len(rows)
    correct = sum(r["label"] == r["truth"] for r in rows)
    synthetic = [r for r in rows if r["truth"] == "synthetic"]
    real = [r for r in rows if r["truth"] == "real"]
    tp = sum(r["label"] == "synthetic" for r in synthetic)
    tn = sum(r["label"] == "real" for r in real)
    out = {
        "answers": n,
        "synthetic_shown": len(synthetic),
        "synthetic_labelled_real": len(synthetic) - tp,
        "real_shown": len(real),
        "real_labelled_synthetic": len(real) - tn,
        "accuracy": correct / n if n else math.nan,
        "accuracy_ci95": wilson(correct, n),
        "sensitivity": tp / len(synthetic) if synthetic else math.nan,
        "sensitivity_ci95": wilson(tp, len(synthetic)),
        "specificity": tn / len(real) if real else math.nan,
        "specificity_ci95": wilson(tn, len(real)),
        "binomial_p_vs_chance": float(stats.binomtest(correct, n, 0.5).pvalue) if n else math.nan,
    }
    return out


def cohen_kappa(a: list[str], b: list[str]) -> float:
    n = len(a)
    if n == 0:
        return math.nan
    observed = sum(x == y for x, y in zip(a, b)) / n
    expected = sum((a.count(c) / n) * (b.count(c) / n) for c in ("real", "synthetic"))
    return 1.0 if expected == 1 else (observed - expected) / (1 - expected)


def fleiss_kappa(table: np.ndarray) -> float:
    """``table``: (images, categories) counts, the same number of ratings per image."""
    if table.shape[0] == 0:
        return math.nan
    n = table.sum(axis=1)[0]
    if n < 2:
        return math.nan
    p_cat = table.sum(axis=0) / table.sum()
    p_img = ((table * table).sum(axis=1) - n) / (n * (n - 1))
    p_bar, p_e = p_img.mean(), (p_cat**2).sum()
    return 1.0 if p_e == 1 else float((p_bar - p_e) / (1 - p_e))


def _by_model(rows: list[dict], images: list[dict]) -> dict:
    """Per model and contrast: how many synthetic images were labelled real."""
    out: dict = {}
    for model in sorted({img["model"] for img in images if img["model"]}):
        out[model] = {}
        for contrast in ("t1w", "t2w", "all"):
            subset = [
                r
                for r in rows
                if r["model"] == model and (contrast == "all" or r["contrast"] == contrast)
            ]
            fooled = sum(r["label"] == "real" for r in subset)
            out[model][contrast] = {
                "synthetic_shown": len(subset),
                "labelled_real": fooled,
                "fraction_labelled_real": fooled / len(subset) if subset else math.nan,
                "fraction_labelled_real_ci95": wilson(fooled, len(subset)),
            }
    return out


def _agreement(by_reader: dict[int, dict[str, str]], names: dict[int, str]) -> dict:
    """Cohen's kappa per pair of readers (by reader id) and Fleiss' kappa over all readers."""
    pairs = []
    for a, b in itertools.combinations(sorted(by_reader), 2):
        common = sorted(set(by_reader[a]) & set(by_reader[b]))
        pairs.append(
            {
                "a": a,
                "a_name": names[a],
                "b": b,
                "b_name": names[b],
                "images": len(common),
                "cohen_kappa": cohen_kappa(
                    [by_reader[a][i] for i in common], [by_reader[b][i] for i in common]
                ),
            }
        )
    result: dict = {"pairs": pairs}
    if len(by_reader) >= 2:
        everyone = set.intersection(*(set(v) for v in by_reader.values()))
        table = np.array(
            [
                [sum(by_reader[r][i] == c for r in by_reader) for c in ("real", "synthetic")]
                for i in sorted(everyone)
            ]
        )
        result["fleiss_kappa"] = fleiss_kappa(table.reshape(-1, 2))
        result["images_answered_by_all"] = len(everyone)
    return result


def analyse(data: dict[str, list[dict]]) -> dict:
    """Results from :func:`mrtranslate.perceptual.store.all_rows` output.

    Readers are identified by their id; names are labels only and may repeat.
    """
    truth = {img["id"]: img for img in data["images"]}
    rows = [
        {
            **a,
            "truth": truth[a["image_id"]]["truth"],
            "contrast": truth[a["image_id"]]["contrast"],
            "model": truth[a["image_id"]]["model"],
        }
        for a in data["answers"]
    ]
    by_reader: dict[int, dict[str, str]] = {}
    for r in rows:
        by_reader.setdefault(r["reader_id"], {})[r["image_id"]] = r["label"]
    names = {r["id"]: r["name"] for r in data["readers"]}
    return {
        "readers": len(data["readers"]),
        "images": len(data["images"]),
        "overall": _rates(rows),
        "by_contrast": {c: _rates([r for r in rows if r["contrast"] == c]) for c in ("t1w", "t2w")},
        "by_model": _by_model(rows, data["images"]),
        "per_reader": [
            {
                "reader_id": rid,
                "name": names[rid],
                **_rates([r for r in rows if r["reader_id"] == rid]),
            }
            for rid in sorted(by_reader)
        ],
        "agreement": _agreement(by_reader, names),
    }
