"""Whole-volume measures and the intensity-lookup baseline (issue: judge real volumes honestly)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from mrtranslate.data.volumes import default_brain_mask
from mrtranslate.evaluation.volume_baselines import IntensityLookup
from mrtranslate.evaluation.volume_measures import (
    bounding_box,
    normalise_volume,
    volume_measures,
)

SHAPE = (40, 44, 36)


def brain_and_volume(seed: int = 0, masked: bool = True):
    """An ellipsoid brain inside a larger field of view, with smooth structure and noise
    (zero outside the brain unless ``masked`` is False)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij"))
    brain = ((grid / np.array([0.8, 0.75, 0.7])[:, None, None, None]) ** 2).sum(0) < 1
    texture = ndimage.gaussian_filter(rng.normal(size=SHAPE), 2.0)
    volume = 500 + 3000 * (texture - texture.min()) / np.ptp(texture)
    volume += rng.normal(0, 40, SHAPE)
    return brain, np.where(brain, volume, 0.0) if masked else volume


def test_measures_agree_with_numpy_and_scikit_image():
    from skimage.metrics import structural_similarity

    brain, real = brain_and_volume(0)
    rng = np.random.default_rng(1)
    synthetic = np.where(brain, real * 1.7 + rng.normal(0, 150, SHAPE), 0.0)
    got = volume_measures(real, synthetic, brain)
    x, y = normalise_volume(real, brain), normalise_volume(synthetic, brain)
    # The normalisation: own in-brain 99.5th percentile, clipped to [0, 1], zero outside.
    p = np.percentile(real[brain], 99.5)
    np.testing.assert_allclose(x[brain], np.clip(real[brain] / p, 0, 1))
    assert np.all(x[~brain] == 0) and x.max() == 1.0
    xs, ys = x[brain], y[brain]
    assert got["mae"] == pytest.approx(np.abs(xs - ys).mean(), rel=1e-12)
    assert got["psnr"] == pytest.approx(10 * np.log10(1 / np.mean((xs - ys) ** 2)), rel=1e-12)
    assert got["r"] == pytest.approx(np.corrcoef(xs, ys)[0, 1], rel=1e-12)
    box = bounding_box(brain)
    _, smap = structural_similarity(
        x[box],
        y[box],
        data_range=1.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        full=True,
    )
    assert got["ssim"] == pytest.approx(smap[brain[box]].mean(), abs=1e-6)
    pairs = brain[:, :, 1:] & brain[:, :, :-1]
    expected = np.abs(np.diff(y, axis=2) - np.diff(x, axis=2))[pairs].mean()
    assert got["slice_consistency"] == pytest.approx(expected, rel=1e-12)
    assert 0.5 < got["ssim"] < 0.99 and 0.5 < got["r"] < 0.99


def test_identical_volume_is_perfect_and_scale_does_not_matter():
    brain, real = brain_and_volume(2)
    got = volume_measures(real, 3.0 * real, brain)  # one gain for the whole volume: forgiven
    assert got["mae"] == pytest.approx(0, abs=1e-12) and got["psnr"] > 200
    assert got["ssim"] == pytest.approx(1.0) and got["r"] == pytest.approx(1.0)
    assert got["slice_consistency"] == pytest.approx(0, abs=1e-12)
    assert got["hf_ratio"] == pytest.approx(1.0) and got["mean_jump"] == pytest.approx(0)


def test_per_slice_intensity_jumps_are_penalised_not_normalised_away():
    """A synthetic volume scaled differently in every slice: per-slice normalisation would
    call it perfect; per-volume normalisation must not."""
    brain, real = brain_and_volume(3)
    factors = np.random.default_rng(4).uniform(0.7, 1.3, SHAPE[2])
    synthetic = real * factors[None, None, :]
    got = volume_measures(real, synthetic, brain)
    assert got["mae"] > 0.03
    assert got["mean_jump"] > 0.1
    assert got["slice_consistency"] > 0.02
    assert got["r"] < 0.97


def test_nothing_outside_the_brain_counts():
    brain, real = brain_and_volume(5)
    rng = np.random.default_rng(6)
    synthetic = np.where(brain, real, rng.uniform(0, 5000, SHAPE))
    got = volume_measures(real, synthetic, brain)
    assert got["mae"] == 0 and got["psnr"] == float("inf")
    assert got["ssim"] == pytest.approx(1.0) and got["r"] == pytest.approx(1.0)
    assert got["slice_consistency"] == 0 and got["hf_ratio"] == pytest.approx(1.0)


def test_lesion_ssim_inside_and_outside():
    brain, real = brain_and_volume(7)
    lesion = np.zeros(SHAPE, bool)
    lesion[15:22, 16:24, 14:20] = True
    rng = np.random.default_rng(8)
    synthetic = np.where(lesion, rng.uniform(0, 4000, SHAPE), real)
    got = volume_measures(real, synthetic, brain, lesion)
    assert got["ssim_lesion"] < 0.5 < 0.8 < got["ssim_healthy"] < 1.0
    assert got["ssim_lesion"] < got["ssim"] < got["ssim_healthy"]
    assert "ssim_lesion" not in volume_measures(real, synthetic, brain)


def test_blur_lowers_the_detail_ratio():
    brain, full = brain_and_volume(9, masked=False)
    real = np.where(brain, full, 0.0)
    blurred = np.where(brain, ndimage.gaussian_filter(full, (1.5, 1.5, 0)), 0.0)
    assert volume_measures(real, blurred, brain)["hf_ratio"] < 0.7
    noisy = real + np.random.default_rng(10).normal(0, 400, SHAPE)
    assert volume_measures(real, noisy, brain)["hf_ratio"] > 1.3


def test_lookup_learns_an_inverted_contrast_from_training_volumes_only():
    """Training volumes follow target = 1 - source; a test volume follows another map. The
    lookup must reproduce the training map (fitting it on the test volume would be perfect)."""
    pairs, names = [], []
    for seed in (11, 12):
        brain, source = brain_and_volume(seed)
        s = normalise_volume(source, brain)
        pairs.append((f"sub-{seed}", source, np.where(brain, 1.05 - s, 0.0), brain))
        names.append(f"sub-{seed}")
    lookup = IntensityLookup.fit(pairs)
    assert lookup.fitted_on == names
    brain, source = brain_and_volume(13)
    s = normalise_volume(source, brain)
    test_target = np.where(brain, s**2, 0.0)  # the test participant's own, different map
    out = lookup.apply(source, brain)
    assert np.all(out[~brain] == 0)
    trained_map = normalise_volume(np.where(brain, 1.05 - s, 0.0), brain)
    assert np.abs(out[brain] - trained_map[brain]).mean() < 0.03
    assert volume_measures(test_target, out, brain)["r"] < 0  # the inverted map, not s**2
    refit = IntensityLookup.fit([("sub-13", source, test_target, brain)])
    assert volume_measures(test_target, refit.apply(source, brain), brain)["r"] > 0.99


def test_a_model_equal_to_the_lookup_ties_with_it():
    from mrtranslate.evaluation.volumes import summarise_volumes

    brain, source = brain_and_volume(14)
    _, target = brain_and_volume(15)
    lookup = IntensityLookup.fit([("sub-a", source, target, brain)])
    same = lookup.apply(source, brain)
    rows = []
    for name, synthetic in (("lookup", same), ("twin", same.copy()), ("copy", source)):
        rows.append(
            {
                "participant": "sub-b",
                "direction": "t1-to-t2",
                "candidate": name,
                **volume_measures(target, synthetic, brain),
            }
        )
    assert {k: v for k, v in rows[0].items() if k != "candidate"} == {
        k: v for k, v in rows[1].items() if k != "candidate"
    }
    twin = summarise_volumes(rows, {"twin": "Twin"})["directions"]["t1-to-t2"]["twin"]
    assert twin["beats_lookup"] is False  # a tie is not a win
    assert all(v["mean_difference"] == 0 for v in twin["versus_lookup"].values())


def test_default_brain_mask_keeps_dark_and_negative_csf_inside():
    """Processed T1w volumes hold zero or negative values in the ventricles: the default mask
    must not punch holes there (the old ``volume > 0`` mask did)."""
    brain, volume = brain_and_volume(16)
    ventricle = np.zeros(SHAPE, bool)
    ventricle[17:23, 18:26, 15:21] = True
    volume = np.where(ventricle, -5.0, volume)
    volume[ventricle & (np.indices(SHAPE)[0] % 2 == 0)] = 0.0
    mask = default_brain_mask(volume)
    assert mask[ventricle].all()
    assert np.array_equal(mask, brain)
