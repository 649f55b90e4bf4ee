"""The built-in phantom: contrast ordering, determinism, splits, masks, metadata."""

from __future__ import annotations

import numpy as np
import pytest

from mrtranslate.data.build import build_phantom
from mrtranslate.data.dataset import open_dataset
from mrtranslate.data.mri_signal import tissue_signals
from mrtranslate.data.phantom import PhantomSpec, load_template, make_subject


def test_tissue_signal_ordering():
    sig = tissue_signals()
    t1 = {k: v[0] for k, v in sig.items()}
    t2 = {k: v[1] for k, v in sig.items()}
    assert t1["csf"] < t1["gm"] < t1["wm"], t1  # CSF dark, WM brighter than GM on T1w
    assert t2["wm"] < t2["gm"] < t2["csf"], t2  # CSF bright, WM darker than GM on T2w
    assert t1["lesion"] < t1["wm"] and t2["lesion"] > t2["wm"]


def test_contrast_ordering_in_images():
    """Mean CSF/GM/WM signal per contrast, with tissue labels from the same warp."""
    from mrtranslate.data import phantom

    spec = PhantomSpec(subjects=3, test_subjects=1, height=128, width=128, spacing=1.6, seed=5)
    template = load_template()
    # Label every pixel by the tissue class that dominates the template at the subject's level.
    captured = {}
    original = phantom.ndimage.map_coordinates

    def spy(volume, coords, **kw):
        out = original(volume, coords, **kw)
        for name in ("gm", "wm", "csf"):
            if volume is getattr(template, name):
                captured[name] = out
        return out

    phantom.ndimage.map_coordinates = spy
    try:
        subject = make_subject(spec, 0)
    finally:
        phantom.ndimage.map_coordinates = original
    labels = {name: captured[name] > 0.85 for name in ("gm", "wm", "csf")}
    for contrast in ("t1w", "t2w"):
        img = subject[contrast][0]
        means = {name: float(img[lab].mean()) for name, lab in labels.items()}
        if contrast == "t1w":
            assert means["csf"] < means["gm"] < means["wm"], means
        else:
            assert means["wm"] < means["gm"] < means["csf"], means


def test_subject_is_deterministic_and_seed_dependent():
    spec = PhantomSpec(subjects=2, test_subjects=1, height=64, width=64, spacing=3.0, seed=11)
    a, b = make_subject(spec, 1), make_subject(spec, 1)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    other = make_subject(PhantomSpec(**{**spec.to_dict(), "seed": 12}), 1)
    assert not np.array_equal(a["t1w"], other["t1w"])
    assert not np.array_equal(a["t1w"], make_subject(spec, 0)["t1w"])  # subjects differ


def test_images_masks_and_ranges(small_phantom):
    ds = open_dataset(small_phantom)
    for split in ("train", "test"):
        data = ds.split(split)
        for c in ("t1w", "t2w"):
            img = np.asarray(data.image(c))
            assert img.dtype == np.float32 and img.shape[1:] == (64, 64)
            assert img.min() >= 0.0 and img.max() <= 1.0
            assert np.all(img[np.asarray(data.mask) == 0] == 0.0)  # skull-stripped background
        mask = np.asarray(data.mask)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
        assert 0.2 < mask.mean() < 0.8


def test_splits_are_disjoint_by_subject(small_phantom):
    ds = open_dataset(small_phantom)
    train, test = ds.split("train"), ds.split("test")
    assert len(train) == 20 and len(test) == 4
    assert not set(train.subjects.tolist()) & set(test.subjects.tolist())
    assert ds.info()["splits"] == {
        "train": {"subjects": 20, "images": 20},
        "test": {"subjects": 4, "images": 4},
    }


def test_build_is_deterministic_and_slices_per_subject(tmp_path):
    spec = PhantomSpec(
        subjects=6,
        test_subjects=2,
        slices_per_subject=2,
        height=48,
        width=48,
        spacing=4.0,
        seed=2,
        lesion_fraction=1.0,
    )
    a = open_dataset(build_phantom(spec, tmp_path / "a", workers=2, progress=False))
    b = open_dataset(build_phantom(spec, tmp_path / "b", workers=1, progress=False))
    for split in ("train", "test"):
        sa, sb = a.split(split), b.split(split)
        np.testing.assert_array_equal(sa.t1w, sb.t1w)
        np.testing.assert_array_equal(sa.t2w, sb.t2w)
        np.testing.assert_array_equal(sa.subjects, sb.subjects)
    train = a.split("train")
    assert len(train) == 8
    assert len(set(train.subjects.tolist())) == 4


def test_metadata_round_trip(small_phantom):
    ds = open_dataset(small_phantom)
    assert ds.meta["phantom"]["seed"] == 3
    assert ds.meta["source"] == "phantom" and ds.meta["paired"] is True
    assert ds.shape == (64, 64)
    assert ds.meta["pixel_spacing_mm"] == [3.0, 3.0]
    restored = PhantomSpec(**{**ds.meta["phantom"], "snr": tuple(ds.meta["phantom"]["snr"])})
    assert restored.to_dict() == ds.meta["phantom"] | {"snr": restored.snr}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"subjects": 0},
        {"test_subjects": 0},
        {"subjects": 5, "test_subjects": 5},
        {"height": 30},
        {"width": 66},
        {"slices_per_subject": 0},
        {"lesion_fraction": 2.0},
    ],
)
def test_spec_validation(kwargs):
    with pytest.raises(ValueError):
        PhantomSpec(**kwargs).validate()


def test_t1w_tissue_ratios_match_the_mni152_t1_template():
    """The MPRAGE model's CSF/WM and GM/WM T1w ratios agree with nilearn's MNI152 T1 template
    (an average of real T1w scans), measured in voxels of > 80% CSF, GM or WM.

    Tolerances: 0.1 for CSF/WM, because averaging 152 registered brains mixes CSF with
    neighbouring tissue (partial volume lifts the template's CSF; its 0.36 is an upper bound);
    0.05 for GM/WM.
    """
    from nilearn import datasets

    from mrtranslate.data.mri_signal import tissue_signals

    def volume(img):
        return np.asarray(img.dataobj, dtype=np.float64)

    t1 = volume(datasets.load_mni152_template(resolution=1))
    gm = volume(datasets.load_mni152_gm_template(resolution=1))
    wm = volume(datasets.load_mni152_wm_template(resolution=1))
    csf = np.clip(volume(datasets.load_mni152_brain_mask(resolution=1)) - gm - wm, 0, 1)
    template = {name: t1[m > 0.8].mean() for name, m in (("csf", csf), ("gm", gm), ("wm", wm))}
    signals = {name: value[0] for name, value in tissue_signals().items()}
    for tissue, tolerance in (("csf", 0.1), ("gm", 0.05)):
        measured = template[tissue] / template["wm"]
        model = signals[tissue] / signals["wm"]
        assert abs(model - measured) < tolerance, (tissue, model, measured)
    # Dark but not nulled: CSF stands well above the noise (sigma = WM / SNR, SNR >= 25).
    assert signals["csf"] / (signals["wm"] / 25) > 5
    assert signals["csf"] < signals["gm"] < signals["wm"]
