"""Per-direction summaries of per-image measures: mean, std, median, 95% CI, n."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def describe(values: np.ndarray) -> dict:
    """Mean, std (ddof 1), median, t-based 95% confidence interval of the mean, and n.

    Infinite values (PSNR of a perfect translation) are kept in the median but excluded from
    the mean, std and CI; ``n_infinite`` says how many there were. NaN values (a measure that
    does not exist for an image, e.g. inside an empty mask) are left out of everything;
    ``n_missing`` counts them.
    """
    values = np.asarray(values, dtype=np.float64)
    missing = int(np.isnan(values).sum())
    values = values[~np.isnan(values)]
    finite = values[np.isfinite(values)]
    n = int(finite.size)
    out = {
        "n": int(values.size),
        "n_infinite": int(values.size - n),
        "n_missing": missing,
        "median": float(np.median(values)) if values.size else math.nan,
    }
    if n == 0:
        return out | {"mean": math.nan, "std": math.nan, "ci95": [math.nan, math.nan]}
    mean = float(finite.mean())
    std = float(finite.std(ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else 0.0
    return out | {"mean": mean, "std": std, "ci95": [mean - half, mean + half]}
