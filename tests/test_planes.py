"""Slices along three planes (issue: usable translations of real scans): training data cut
axially, coronally and sagittally (``data import --planes 3``) and volumes translated along all
three planes and averaged (``net.planes=3``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import phantom_volumes, save, usage_error
from mrtranslate.cli import main
from mrtranslate.config import apply_overrides
from mrtranslate.data.dataset import open_dataset
from mrtranslate.data.tensors import load_images, neighbour_indices
from mrtranslate.data.volumes import brain_slice_range, default_brain_mask
from mrtranslate.methods.registry import make_config

SIDE = 32  # voxels per side of the cubic test volumes (2 mm)


def _cubic_bids(root, count: int = 3, spacing=(2.0, 2.0, 2.0), depth: int = 24):
    """BIDS subjects whose phantom volumes are SIDE x SIDE x ``depth`` voxels of ``spacing``
    mm."""
    for i in range(count):
        vols, _ = phantom_volumes(i, slices=depth, size=SIDE)
        anat = root / f"sub-{i:02d}" / "anat"
        affine = np.diag([*spacing, 1.0])
        save(anat / f"sub-{i:02d}_T1w.nii.gz", vols["t1w"], affine)
        save(anat / f"sub-{i:02d}_T2w.nii.gz", vols["t2w"], affine)
    return root


def _import(root, out, *extra):
    test_list = root.parent / "test.txt"
    test_list.write_text("sub-00\n")
    args = ["data", "import", "--format", "bids", "--root", str(root), "--out", str(out)]
    args += ["--test-subjects", str(test_list), "--quiet", *extra]
    return args


@pytest.fixture(scope="module")
def planes_data(tmp_path_factory):
    root = _cubic_bids(tmp_path_factory.mktemp("cubic") / "bids")
    out = root.parent / "data"
    assert main(_import(root, out, "--slices", "brain", "--planes", "3")) == 0
    return root, out


def test_import_cuts_training_subjects_along_three_planes_and_tests_along_one(planes_data):
    root, out = planes_data
    dataset = open_dataset(out)
    train, test = dataset.split("train"), dataset.split("test")
    expected = []
    for i in (1, 2):  # the training subjects, in order: axial, coronal, sagittal slices
        vols, _ = phantom_volumes(i, slices=24, size=SIDE)
        brain = default_brain_mask(vols["t1w"], vols["t2w"])
        for axis in (2, 1, 0):
            expected += [axis] * len(brain_slice_range(brain, axis))
    assert train.planes is not None and train.planes.tolist() == expected
    assert test.planes is None  # the held-out subject: axial slices only, as judged
    vols, _ = phantom_volumes(0, slices=24, size=SIDE)
    assert len(test) == len(brain_slice_range(default_brain_mask(vols["t1w"], vols["t2w"]), 2))
    # a coronal training slice is the volume's coronal cut (rows: superior at the top)
    first_coronal = expected.index(1)
    vols, _ = phantom_volumes(1, slices=24, size=SIDE)
    brain = default_brain_mask(vols["t1w"], vols["t2w"])
    k = brain_slice_range(brain, 1)[0]
    cut = np.flipud(vols["t1w"][:, k, :].T)
    image = train.t1w[first_coronal]
    rows, cols = cut.shape
    top, left = (image.shape[0] - rows) // 2, (image.shape[1] - cols) // 2
    kept = image[top : top + rows, left : left + cols]
    assert np.corrcoef(kept.ravel(), cut.ravel())[0, 1] > 0.999
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["import"]["planes"] == 3 and "coronal" in dataset.info()["orientation"]


def test_the_image_size_holds_every_planes_slices(tmp_path):
    """The test participant (first here, axial only) has 32x32 slices; the training ones'
    coronal and sagittal slices are 40 rows high: the size must hold them, not cut them."""
    root = _cubic_bids(tmp_path / "bids", depth=40)
    assert main(_import(root, tmp_path / "data", "--slices", "brain", "--planes", "3")) == 0
    dataset = open_dataset(tmp_path / "data")
    assert list(dataset.shape) == [40, SIDE]
    train = dataset.split("train")
    coronal = np.flatnonzero(np.asarray(train.planes) == 1)
    expected = 0
    for i in (1, 2):  # every brain voxel of the coronal cuts is kept
        vols, _ = phantom_volumes(i, slices=40, size=SIDE)
        brain = default_brain_mask(vols["t1w"], vols["t2w"])
        expected += sum(int(brain[:, k, :].sum()) for k in brain_slice_range(brain, 1))
    assert int(np.asarray(train.mask[coronal]).sum()) == expected


def test_neighbouring_slices_never_cross_from_one_plane_to_another(planes_data):
    train = open_dataset(planes_data[1]).split("train")
    rows = neighbour_indices(train.slabs, 5)
    planes = np.asarray(train.planes)
    assert (planes[rows] == planes[:, None]).all()
    subjects = np.asarray(train.subjects)
    assert (subjects[rows] == subjects[:, None]).all()
    # the first coronal slice of a subject repeats itself below (the slab's edge)
    first = int(np.flatnonzero(planes == 1)[0])
    assert rows[first, 0] == first and rows[first, 1] == first
    # the training stacks: below the first coronal slice, itself (not the last axial slice)
    stacks = load_images(train, "t1w", (SIDE, SIDE), np.array([first]), context=3)
    np.testing.assert_array_equal(stacks[0, 0], stacks[0, 1])
    assert not np.array_equal(stacks[0, 1], stacks[0, 2])


def test_three_planes_need_every_brain_slice_and_cubic_voxels(tmp_path, capsys):
    root = _cubic_bids(tmp_path / "bids", count=2)
    err = usage_error(capsys, _import(root, tmp_path / "a", "--planes", "3"))
    assert "--slices brain" in err
    err = usage_error(capsys, _import(root, tmp_path / "b", "--slices", "brain", "--planes", "2"))
    assert "--planes must be 1 or 3" in err
    folders = f"data import --format folders --root {tmp_path} --out {tmp_path / 'd'}"
    err = usage_error(capsys, [*folders.split(), "--planes", "3"])
    assert "NIfTI volumes" in err
    flat = _cubic_bids(tmp_path / "flat", count=2, spacing=(1.0, 1.0, 3.0))
    err = usage_error(capsys, _import(flat, tmp_path / "c", "--slices", "brain", "--planes", "3"))
    assert "near-cubic" in err and "1x1x3 mm" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_net_planes_is_1_or_3():
    cfg = make_config("generators_s", "tiny")
    assert apply_overrides(cfg, ["net.planes=3"]).net.planes == 3
    with pytest.raises(ValueError, match="net.planes must be 1 or 3"):
        apply_overrides(make_config("generators_s", "tiny"), ["net.planes=2"])


@pytest.fixture(scope="module")
def planes_run(planes_data, tmp_path_factory):
    from mrtranslate.training.run import train_run

    run = tmp_path_factory.mktemp("planes_run") / "generators_s"
    overrides = ["net.planes=3", "train.downsample=1"]
    train_run(
        "generators_s", planes_data[1], run, profile="tiny", overrides=overrides, progress=False
    )
    return run


def _volume():
    """A cuboid brain (no side equal) of constant intensity in a 30 x 26 x 22 volume."""
    volume = np.zeros((30, 26, 22), dtype=np.float32)
    volume[4:27, 3:22, 2:19] = 400.0
    return volume, volume > 0


def _row_ramp(images, direction):
    """Ignore the input; answer each image with its row position (model range)."""
    rows = images.shape[-2]
    ramp = (np.arange(rows, dtype=np.float32) / rows - 0.5)[:, None]
    import torch

    return torch.from_numpy(np.broadcast_to(ramp, images.shape[-2:]).copy()).expand_as(images)


def test_a_pointwise_model_gives_the_same_volume_along_one_plane_or_three(planes_run, monkeypatch):
    from mrtranslate.inference import translate_volume
    from mrtranslate.runs import load_run

    run = load_run(planes_run)
    assert run.config.net.planes == 3
    monkeypatch.setattr(run.method, "translate", lambda images, direction: -0.5 * images)
    # taller than the run's 32x32 images: coronal and sagittal slices must not be cut
    volume = np.zeros((30, 26, 40), dtype=np.float32)
    volume[4:27, 3:22, 1:39] = 400.0
    brain = volume > 0
    volume[10:20, 8:12, 5:9] = 100.0  # structure: a wrong orientation would move it
    three = translate_volume(run, volume, "t1-to-t2", mask=brain)
    run.config.net.planes = 1
    one = translate_volume(run, volume, "t1-to-t2", mask=brain)
    np.testing.assert_allclose(three, one, rtol=1e-5, atol=1e-3)
    assert np.unique(np.round(one[brain])).size == 2


def test_three_planes_average_the_axial_coronal_and_sagittal_translations(planes_run, monkeypatch):
    from mrtranslate.inference import translate_volume
    from mrtranslate.inference.volumes import _translate_plane
    from mrtranslate.runs import load_run

    run = load_run(planes_run)
    monkeypatch.setattr(run.method, "translate", _row_ramp)
    volume, brain = _volume()
    along = {a: _translate_plane(run, volume, brain, "t1-to-t2", 16, False, a) for a in (0, 1, 2)}
    inside = (slice(4, 27), slice(3, 22), slice(2, 19))
    # rows of an axial image run posterior -> anterior upwards: the ramp follows y alone
    axial = along[2][inside]
    assert np.ptp(axial, axis=(0, 2)).max() < 1e-3 and (np.diff(axial[0, :, 0]) < 0).all()
    for axis in (1, 0):  # coronal and sagittal rows run inferior -> superior upwards: z alone
        cut = along[axis][inside]
        assert np.ptp(cut, axis=(0, 1)).max() < 1e-3 and (np.diff(cut[0, 0, :]) < 0).all()
    three = translate_volume(run, volume, "t1-to-t2", mask=brain)
    np.testing.assert_allclose(three, (along[0] + along[1] + along[2]) / 3, rtol=1e-5)
    assert not np.allclose(three, along[2], atol=1.0)
    with pytest.warns(UserWarning, match="far from cubic"):
        thick = translate_volume(run, volume, "t1-to-t2", mask=brain, zooms=(1.0, 1.0, 3.0))
    np.testing.assert_allclose(thick, along[2], rtol=1e-5)


def test_three_planes_need_a_run_at_its_datas_resolution(planes_run):
    from mrtranslate.errors import UsageError
    from mrtranslate.inference.volumes import resolve_planes
    from mrtranslate.runs import load_run

    run = load_run(planes_run)
    assert resolve_planes(run) == 3
    run.model_image_shape = [s // 2 for s in run.data_image_shape]
    with pytest.raises(UsageError, match="native resolution"):
        resolve_planes(run)


def test_the_study_translates_three_plane_data_along_three_planes(planes_data, tmp_path):
    from mrtranslate.study import study_shape

    shape = study_shape(open_dataset(planes_data[1]), ["generators_s"])
    assert shape.planes == 3 and shape.native
    assert shape.volume_slices == 24 and shape.plane_slices == SIDE + SIDE + 24
    axial = tmp_path / "axial"
    assert main(_import(planes_data[0], axial, "--slices", "brain")) == 0
    one = study_shape(open_dataset(axial), ["generators_s"])
    assert one.planes == 1 and one.volume_slices == 24 and one.plane_slices == 0


def test_translate_says_three_planes_and_warns_in_one_line_for_thick_slices(
    planes_run, tmp_path, capsys
):
    volume, _ = _volume()
    cubic = save(tmp_path / "cubic.nii.gz", volume, np.diag([1.0, 1.0, 1.0, 1.0]))
    thick = save(tmp_path / "thick.nii.gz", volume, np.diag([1.0, 1.0, 3.0, 1.0]))
    for source in (cubic, thick):
        args = ["translate", "--run", str(planes_run), "--direction", "t1-to-t2", "--quiet"]
        args += ["--input", str(source), "--output", str(tmp_path / f"out-{source.name}")]
        assert main(args) == 0
    err = capsys.readouterr().err
    assert err.count("along axial, coronal and sagittal slices, averaged") == 2
    warning = [line for line in err.splitlines() if "warning" in line]
    assert warning == [
        "mrtranslate: warning: net.planes=3: the voxels are 1x1x3 mm, far from cubic; "
        "translating axial slices only"
    ]
    assert "Traceback" not in err and "UserWarning" not in err


def test_one_planes_fact_per_data_set(planes_data, tmp_path):
    """Slices along one other axis (``--axis 0``: sagittal) are one plane: the study does not
    take them for three-plane data, and dataset.json names their plane."""
    from mrtranslate.study import study_shape

    assert open_dataset(planes_data[1]).planes == 3
    sagittal = tmp_path / "sagittal"
    assert main(_import(planes_data[0], sagittal, "--slices", "brain", "--axis", "0")) == 0
    dataset = open_dataset(sagittal)
    assert dataset.planes == 1
    assert set(np.asarray(dataset.split("train").planes).tolist()) == {0}
    assert study_shape(dataset, ["generators_s"]).planes == 1
    assert json.loads((sagittal / "dataset.json").read_text())["orientation"].startswith("sagittal")
