"""Measures against independent references (scikit-image, scikit-learn) and known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from sklearn.metrics import mutual_info_score

from mrtranslate.evaluation import metrics as M


def _images(kind: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    if kind == "random":
        a = rng.random((64, 48))
        b = a + 0.3 * rng.standard_normal((64, 48))
        mask = np.zeros_like(a, dtype=bool)
        mask[8:56, 6:40] = True
        return a, b, mask
    from mrtranslate.data.phantom import PhantomSpec, make_subject

    s = make_subject(
        PhantomSpec(subjects=2, test_subjects=1, height=96, width=80, spacing=2.2, seed=seed), 0
    )
    t2 = s["t2w"][0].astype(np.float64)
    synthetic = np.clip(t2 + 0.05 * rng.standard_normal(t2.shape), 0, 1) * s["mask"][0]
    return t2, synthetic, s["mask"][0].astype(bool)


@pytest.mark.parametrize("kind", ["random", "phantom"])
@pytest.mark.parametrize("use_mask", [False, True])
def test_psnr_matches_scikit_image(kind, use_mask):
    a, b, mask = _images(kind)
    m = mask if use_mask else None
    za, zb = M.zscore(a, m), M.zscore(b, m)
    peak = M.data_range(za, m)
    ref = peak_signal_noise_ratio(
        za[mask] if use_mask else za, zb[mask] if use_mask else zb, data_range=peak
    )
    assert M.psnr(za, zb, data_range=peak, mask=m) == pytest.approx(ref, abs=1e-6)


@pytest.mark.parametrize("kind", ["random", "phantom"])
def test_ssim_matches_scikit_image(kind):
    a, b, mask = _images(kind)
    za, zb = M.zscore(a), M.zscore(b)
    peak = M.data_range(za)
    ref, full = structural_similarity(
        za,
        zb,
        data_range=peak,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        full=True,
    )
    assert M.ssim(za, zb, data_range=peak) == pytest.approx(ref, abs=1e-6)
    assert M.ssim(za, zb, data_range=peak, mask=mask) == pytest.approx(full[mask].mean(), abs=1e-6)


@pytest.mark.parametrize("kind", ["random", "phantom"])
@pytest.mark.parametrize("use_mask", [False, True])
def test_mutual_information_matches_scikit_learn(kind, use_mask):
    a, b, mask = _images(kind)
    m = mask if use_mask else None
    va, vb = (a[mask], b[mask]) if use_mask else (a.ravel(), b.ravel())
    ref = mutual_info_score(M.bin_indices(va), M.bin_indices(vb))
    assert M.mutual_information(a, b, m) == pytest.approx(ref, abs=1e-6)
    # the binning itself agrees with numpy's histogram edges
    counts, _ = np.histogram(va, bins=M.MI_BINS)
    np.testing.assert_array_equal(np.bincount(M.bin_indices(va), minlength=M.MI_BINS), counts)


def test_known_answers_for_identical_images():
    a, _, mask = _images("phantom")
    for m in (None, mask):
        res = M.image_measures(a, a.copy(), m)
        assert res["mae"] == 0.0
        assert math.isinf(res["psnr"]) and res["psnr"] > 0
        assert res["ssim"] == pytest.approx(1.0, abs=1e-12)
        assert res["mi"] > 0


def test_measures_are_scale_invariant_after_zscore():
    a, b, _ = _images("random")
    assert M.image_measures(a, b) == pytest.approx(M.image_measures(3 * a + 7, 0.5 * b - 2))


def test_zscore_and_relative_error():
    a, b, mask = _images("random")
    z = M.zscore(a, mask)
    assert z[mask].mean() == pytest.approx(0, abs=1e-12) and z[mask].std() == pytest.approx(1)
    rel = M.relative_error(np.array([0.0, 2.0]), np.array([0.05, 1.0]))
    np.testing.assert_allclose(rel, [0.5, 0.5])


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        M.mae(np.zeros((4, 4)), np.zeros((4, 5)))
