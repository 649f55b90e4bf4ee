"""Paired comparisons between models: Wilcoxon signed-rank tests with Holm correction.

For each direction and measure, every pair of models is compared on the same test images
(two-sided Wilcoxon signed-rank test of the per-image differences, scipy's default zero
handling); the p-values of all pairs within one (direction, measure) family are corrected with
Holm's step-down method.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import stats


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given)."""
    m = len(p_values)
    order = np.argsort(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[idx]))
        adjusted[idx] = running
    return adjusted.tolist()


def pairwise_tests(values: dict[str, np.ndarray]) -> list[dict]:
    """All pairwise tests of one family. ``values``: model name -> per-image values (same order).

    Returns one dict per pair: a, b, median difference (a - b), statistic, p, p_holm.
    Non-finite values (infinite PSNR) are dropped pairwise.
    """
    results = []
    for a, b in itertools.combinations(values, 2):
        x, y = np.asarray(values[a], float), np.asarray(values[b], float)
        keep = np.isfinite(x) & np.isfinite(y)
        diff = x[keep] - y[keep]
        if diff.size < 2 or np.all(diff == 0):
            stat, p = float("nan"), 1.0
        else:
            res = stats.wilcoxon(x[keep], y[keep])
            stat, p = float(res.statistic), float(res.pvalue)
        results.append(
            {
                "a": a,
                "b": b,
                "n": int(diff.size),
                "median_difference": float(np.median(diff)) if diff.size else float("nan"),
                "statistic": stat,
                "p": p,
            }
        )
    for row, adj in zip(results, holm([r["p"] for r in results])):
        row["p_holm"] = adj
    return results
