"""Image-quality measures on per-image z-scored images (Welander et al. 2018, section 2.2).

All functions take 2-D float arrays (H, W) of the same shape; ``mask`` (bool, same shape)
restricts a measure to the brain. Definitions:

- **z-score**: ``z = (x - mean(x)) / std(x)`` (population std) over the whole image; in the masked
  variant mean and std are taken inside the mask. Applied to the real and the synthetic image
  separately, as in the paper, because MR intensities have no absolute scale.
- **MAE**: ``mean(|z_syn - z_real|)`` over the pixels considered.
- **PSNR** (dB): ``10 log10(R^2 / mean((z_syn - z_real)^2))`` with peak ``R = max(z_real) -
  min(z_real)``, the dynamic range of the normalised ground truth over the pixels considered.
  Identical images give +inf (written as the string "inf" in JSON).
- **MI** (nats): mutual information of the joint histogram of (z_real, z_syn) with 64 x 64
  equal-width bins spanning each image's own min..max over the pixels considered, natural
  logarithm: ``sum p(a, b) log(p(a, b) / (p(a) p(b)))``.
- **SSIM**: Wang et al. (2004) with an isotropic Gaussian window (sigma 1.5 pixels, truncated at
  3.5 sigma: 11 x 11), K1 = 0.01, K2 = 0.03, population covariances, reflected borders and data
  range ``R`` as for PSNR; the mean of the SSIM map over the image without a 5-pixel border
  (whole-image variant) or over the mask pixels (masked variant).
- **Relative error map**: ``|z_syn - z_real| / max(|z_real|, 0.1)``: the guard 0.1 (in units
  of the real image's standard deviation) keeps pixels whose normalised value is near zero from
  dominating; figures clip the colour scale at 1 (100 %).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

MI_BINS = 64
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
RELATIVE_ERROR_GUARD = 0.1


def _check(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None) -> None:
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"images must be 2-D with equal shapes, got {a.shape} and {b.shape}")
    if mask is not None and mask.shape != a.shape:
        raise ValueError(f"mask shape {mask.shape} differs from image shape {a.shape}")


def zscore(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(x - mean) / std with statistics over the whole image or inside ``mask`` (float64)."""
    image = np.asarray(image, dtype=np.float64)
    values = image if mask is None else image[mask]
    std = values.std()
    return (image - values.mean()) / (std if std > 0 else 1.0)


def mae(real: np.ndarray, synthetic: np.ndarray, mask: np.ndarray | None = None) -> float:
    _check(real, synthetic, mask)
    diff = np.abs(np.asarray(synthetic, np.float64) - real)
    return float(diff.mean() if mask is None else diff[mask].mean())


def data_range(real: np.ndarray, mask: np.ndarray | None = None) -> float:
    values = real if mask is None else real[mask]
    return float(values.max() - values.min())


def psnr(
    real: np.ndarray, synthetic: np.ndarray, *, data_range: float, mask: np.ndarray | None = None
) -> float:
    """PSNR in dB with the given peak; +inf for identical images."""
    _check(real, synthetic, mask)
    sq = (np.asarray(synthetic, np.float64) - real) ** 2
    mse = float(sq.mean() if mask is None else sq[mask].mean())
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


def mutual_information(
    real: np.ndarray, synthetic: np.ndarray, mask: np.ndarray | None = None, bins: int = MI_BINS
) -> float:
    """Mutual information in nats from a ``bins`` x ``bins`` joint histogram."""
    _check(real, synthetic, mask)
    a = np.asarray(real, np.float64)
    b = np.asarray(synthetic, np.float64)
    if mask is not None:
        a, b = a[mask], b[mask]
    ia = bin_indices(a.ravel(), bins)
    ib = bin_indices(b.ravel(), bins)
    joint = np.bincount(ia * bins + ib, minlength=bins * bins).reshape(bins, bins)
    p = joint / joint.sum()
    pa, pb = p.sum(axis=1), p.sum(axis=0)
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / np.outer(pa, pb)[nz])))


def bin_indices(values: np.ndarray, bins: int = MI_BINS) -> np.ndarray:
    """Equal-width bin index in [0, bins) over min..max (the maximum falls in the last bin)."""
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.int64)
    idx = np.floor((values - lo) / (hi - lo) * bins).astype(np.int64)
    return np.clip(idx, 0, bins - 1)


def ssim_map(real: np.ndarray, synthetic: np.ndarray, *, data_range: float) -> np.ndarray:
    """Per-pixel SSIM (Gaussian window, see the module docstring), float64, the inputs' shape:
    (H, W) images, or (X, Y, Z) volumes with an isotropic 3-D window (volume measures)."""
    x = np.asarray(real, np.float64)
    y = np.asarray(synthetic, np.float64)

    def blur(img: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(
            img, sigma=SSIM_SIGMA, truncate=SSIM_TRUNCATE, mode="reflect"
        )

    ux, uy = blur(x), blur(y)
    vx = blur(x * x) - ux * ux
    vy = blur(y * y) - uy * uy
    vxy = blur(x * y) - ux * uy
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))


def ssim(
    real: np.ndarray, synthetic: np.ndarray, *, data_range: float, mask: np.ndarray | None = None
) -> float:
    _check(real, synthetic, mask)
    smap = ssim_map(real, synthetic, data_range=data_range)
    if mask is not None:
        return float(smap[mask].mean())
    pad = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    return float(smap[pad:-pad, pad:-pad].mean())


def relative_error(
    real_z: np.ndarray, synthetic_z: np.ndarray, guard: float = RELATIVE_ERROR_GUARD
) -> np.ndarray:
    """|z_syn - z_real| / max(|z_real|, guard) on z-scored images."""
    return np.abs(synthetic_z - real_z) / np.maximum(np.abs(real_z), guard)


@dataclass(frozen=True)
class Measure:
    """One image-quality measure, as every consumer sees it.

    ``key`` names it in files (``metrics.csv`` columns, ``summary.json``); ``label`` and ``unit``
    head tables and figures; ``higher_is_better`` says which way is better; ``compute`` takes
    the z-scored real and synthetic images (H, W) float64, the peak ``R`` of the real one and
    the optional mask, and returns a float.
    """

    key: str
    label: str
    unit: str
    higher_is_better: bool
    compute: Callable[[np.ndarray, np.ndarray, float, np.ndarray | None], float]

    @property
    def heading(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label


# The one table of image measures: evaluation computes these, in this order, and the tables,
# figures, statistics and report show them. A new measure is one line here.
MEASURE_TABLE: tuple[Measure, ...] = (
    Measure("mae", "MAE", "", False, lambda zr, zs, r, m: mae(zr, zs, m)),
    Measure("psnr", "PSNR", "dB", True, lambda zr, zs, r, m: psnr(zr, zs, data_range=r, mask=m)),
    Measure("mi", "MI", "nats", True, lambda zr, zs, r, m: mutual_information(zr, zs, m)),
    Measure("ssim", "SSIM", "", True, lambda zr, zs, r, m: ssim(zr, zs, data_range=r, mask=m)),
)


def measure_keys() -> tuple[str, ...]:
    """The keys of :data:`MEASURE_TABLE`, in order (read at call time)."""
    return tuple(m.key for m in MEASURE_TABLE)


def measure_headings() -> dict[str, str]:
    """key -> heading ("PSNR (dB)") of every measure, in order."""
    return {m.key: m.heading for m in MEASURE_TABLE}


def image_measures(
    real: np.ndarray, synthetic: np.ndarray, mask: np.ndarray | None = None
) -> dict[str, float]:
    """Every measure of :data:`MEASURE_TABLE` after z-scoring both images (whole image, or
    inside ``mask``)."""
    zr = zscore(real, mask)
    zs = zscore(synthetic, mask)
    peak = data_range(zr, mask)
    return {m.key: float(m.compute(zr, zs, peak, mask)) for m in MEASURE_TABLE}
