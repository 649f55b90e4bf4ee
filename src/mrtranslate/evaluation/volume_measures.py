"""Measures of a synthetic volume against the real one, inside the brain (whole 3-D volumes).

Inputs are (X, Y, Z) arrays in RAS+ orientation (axis 2 runs inferior -> superior, so
``v[:, :, k]`` is an axial slice) and a boolean brain mask of the same shape.

**Normalisation** (:func:`normalise_volume`): each volume, real and synthetic alike, is divided
by the 99.5th percentile of its own voxels inside the brain (negatives clipped to 0 first), then
clipped to [0, 1], and set to 0 outside the brain. One scale per *volume*, never per slice: a
synthetic volume whose intensity jumps from slice to slice is penalised, not forgiven. The data
range of every measure is therefore 1.

Measures (all over brain voxels only; what lies outside the brain cannot change any of them):

- ``mae``: mean |syn - real|;
- ``psnr`` (dB): 10 log10(1 / mean((syn - real)^2)), peak 1; +inf for identical volumes;
- ``ssim``: 3-D SSIM (Wang et al. 2004) with an isotropic Gaussian window (sigma 1.5 voxels,
  truncated at 3.5 sigma), K1 = 0.01, K2 = 0.03, data range 1, population covariances; the map
  is computed over the brain's bounding box (reflected borders) of the masked volumes and
  averaged over the brain voxels. With a lesion or tumour mask, ``ssim_lesion`` and
  ``ssim_healthy`` average the same map inside the lesion and in the rest of the brain (the
  BraSyn convention);
- ``r``: Pearson correlation of syn and real over the brain voxels;
- ``slice_consistency``: MAE of neighbouring-slice differences, mean over voxel pairs (k, k+1)
  inside the brain of |(syn[k+1] - syn[k]) - (real[k+1] - real[k])|: how much the synthetic
  volume changes between axial slices where the real one does not (0 = the same);
- ``hf_ratio``: in-plane high-frequency energy, mean |neighbour difference| inside the brain
  (both in-plane axes) of syn divided by that of real (1 = as much fine detail; below 1 =
  blurred; above 1 = noisier);
- ``mean_jump``: the median over neighbouring axial slices of |q[k+1] / q[k] - 1| where q[k] is
  the ratio of the synthetic to the real mean intensity in slice k (slices with at least
  ``MIN_SLICE_VOXELS`` brain voxels): slice-to-slice jumps of the intensity scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mrtranslate.evaluation.metrics import ssim_map

PERCENTILE = 99.5
MIN_SLICE_VOXELS = 100


@dataclass(frozen=True)
class VolumeMeasure:
    """One whole-volume measure as every consumer sees it: ``key`` in files, ``label`` in
    tables, ``higher_is_better`` (None: closer to 1 is better), ``lesion``: computed only where
    a lesion mask is given."""

    key: str
    label: str
    higher_is_better: bool | None
    lesion: bool = False


# The one table of volume measures (computed together by volume_measures, in this order).
VOLUME_MEASURE_TABLE: tuple[VolumeMeasure, ...] = (
    VolumeMeasure("mae", "MAE", False),
    VolumeMeasure("psnr", "PSNR (dB)", True),
    VolumeMeasure("ssim", "SSIM 3-D", True),
    VolumeMeasure("r", "Pearson r", True),
    VolumeMeasure("slice_consistency", "slice consistency error", False),
    VolumeMeasure("hf_ratio", "detail ratio", None),
    VolumeMeasure("mean_jump", "median slice jump", False),
    VolumeMeasure("ssim_lesion", "SSIM lesion", True, lesion=True),
    VolumeMeasure("ssim_healthy", "SSIM healthy", True, lesion=True),
)
VOLUME_MEASURES = tuple(m.key for m in VOLUME_MEASURE_TABLE if not m.lesion)
LESION_MEASURES = tuple(m.key for m in VOLUME_MEASURE_TABLE if m.lesion)
HIGHER_IS_BETTER = {m.key: m.higher_is_better for m in VOLUME_MEASURE_TABLE}
LABELS = {m.key: m.label for m in VOLUME_MEASURE_TABLE}


def normalise_volume(volume: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Divide by the in-brain 99.5th percentile, clip to [0, 1], zero outside ``brain``
    (float64, the shape of ``volume``). A volume with no positive brain voxel stays 0."""
    volume = np.clip(np.asarray(volume, dtype=np.float64), 0.0, None)
    inside = volume[brain]
    scale = float(np.percentile(inside, PERCENTILE)) if inside.size else 0.0
    if scale <= 0:
        positive = inside[inside > 0]
        scale = float(positive.max()) if positive.size else 1.0
    return np.where(brain, np.clip(volume / scale, 0.0, 1.0), 0.0)


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...]:
    """The smallest box holding every True voxel, grown by ``margin`` voxels (clipped)."""
    coords = np.nonzero(mask)
    if not coords[0].size:
        raise ValueError("the brain mask is empty")
    return tuple(
        slice(max(0, int(c.min()) - margin), min(n, int(c.max()) + 1 + margin))
        for c, n in zip(coords, mask.shape)
    )


def slice_consistency(real: np.ndarray, synthetic: np.ndarray, brain: np.ndarray) -> float:
    """Mean |Δsyn - Δreal| over axial neighbour pairs (k, k+1) both inside the brain."""
    pairs = brain[:, :, 1:] & brain[:, :, :-1]
    if not pairs.any():
        return float("nan")
    d_syn = np.diff(synthetic, axis=2)
    d_real = np.diff(real, axis=2)
    return float(np.abs(d_syn - d_real)[pairs].mean())


def in_plane_detail(volume: np.ndarray, brain: np.ndarray) -> float:
    """Mean |neighbour difference| along both in-plane axes, voxel pairs inside the brain."""
    total, count = 0.0, 0
    for axis in (0, 1):
        pairs = np.logical_and(
            np.take(brain, range(1, brain.shape[axis]), axis=axis),
            np.take(brain, range(brain.shape[axis] - 1), axis=axis),
        )
        diffs = np.abs(np.diff(volume, axis=axis))[pairs]
        total += float(diffs.sum())
        count += diffs.size
    return total / count if count else float("nan")


def mean_jump(real: np.ndarray, synthetic: np.ndarray, brain: np.ndarray) -> float:
    """Median |q[k+1]/q[k] - 1| of the per-slice ratio q of synthetic to real mean intensity."""
    ratios = []
    for k in range(brain.shape[2]):
        inside = brain[:, :, k]
        real_mean = real[:, :, k][inside].mean() if inside.sum() >= MIN_SLICE_VOXELS else 0.0
        if real_mean > 0:
            ratios.append(synthetic[:, :, k][inside].mean() / real_mean)
        else:
            ratios.append(np.nan)
    q = np.asarray(ratios)
    pairs = np.isfinite(q[1:]) & np.isfinite(q[:-1]) & (q[:-1] > 0)
    if not pairs.any():
        return float("nan")
    return float(np.median(np.abs(q[1:][pairs] / q[:-1][pairs] - 1.0)))


def volume_measures(
    real: np.ndarray,
    synthetic: np.ndarray,
    brain: np.ndarray,
    lesion: np.ndarray | None = None,
) -> dict[str, float]:
    """Every measure of the module docstring for one synthetic volume (raw intensities in;
    both are normalised here). ``lesion``: a boolean lesion/tumour mask, or None."""
    if real.shape != synthetic.shape or real.shape != brain.shape or real.ndim != 3:
        raise ValueError(
            f"real {real.shape}, synthetic {synthetic.shape} and brain {brain.shape} must be "
            "3-D arrays of one shape"
        )
    brain = np.asarray(brain, dtype=bool)
    if not brain.any():
        raise ValueError("the brain mask is empty")
    x = normalise_volume(real, brain)
    y = normalise_volume(synthetic, brain)
    xs, ys = x[brain], y[brain]
    mse = float(np.mean((ys - xs) ** 2))
    box = bounding_box(brain)
    smap = ssim_map(x[box], y[box], data_range=1.0)  # 3-D: the filter follows the array
    inside = brain[box]
    r = float(np.corrcoef(xs, ys)[0, 1]) if xs.std() > 0 and ys.std() > 0 else float("nan")
    detail_real = in_plane_detail(x, brain)
    out = {
        "mae": float(np.mean(np.abs(ys - xs))),
        "psnr": float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse)),
        "ssim": float(smap[inside].mean()),
        "r": r,
        "slice_consistency": slice_consistency(x, y, brain),
        "hf_ratio": in_plane_detail(y, brain) / detail_real if detail_real > 0 else float("nan"),
        "mean_jump": mean_jump(x, y, brain),
    }
    if lesion is not None:
        lesion_box = np.asarray(lesion, dtype=bool)[box] & inside
        healthy = inside & ~lesion_box
        out["ssim_lesion"] = float(smap[lesion_box].mean()) if lesion_box.any() else float("nan")
        out["ssim_healthy"] = float(smap[healthy].mean()) if healthy.any() else float("nan")
    return out
