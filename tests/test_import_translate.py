"""Real-data importers, 16-bit PNG export, and whole-volume translation (issue: real data in)."""

from __future__ import annotations

import gzip
import json

import nibabel as nib
import numpy as np
import pytest

from helpers import SPACING, phantom_volumes, save, usage_error
from mrtranslate.cli import main
from mrtranslate.data.dataset import open_dataset


@pytest.fixture(scope="module")
def bids_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bids")
    for i in range(8):
        vols, affine = phantom_volumes(i)
        anat = root / f"sub-{i:02d}" / "anat"
        save(anat / f"sub-{i:02d}_T1w.nii.gz", vols["t1w"], affine)
        save(anat / f"sub-{i:02d}_T2w.nii.gz", vols["t2w"], affine)
    return root


def test_bids_import_and_info(bids_root, tmp_path, capsys):
    out = tmp_path / "data"
    assert (
        main(
            [
                "data",
                "import",
                "--format",
                "bids",
                "--root",
                str(bids_root),
                "--out",
                str(out),
                "--slices",
                "1:4",
                "--test-fraction",
                "0.25",
                "--quiet",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["data", "info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["source"] == "bids" and info["paired"] is True
    assert info["image_shape"] == [64, 64] and info["pixel_spacing_mm"] == [SPACING, SPACING]
    assert info["splits"] == {
        "train": {"participants": 6, "subjects": 6, "images": 18},
        "test": {"participants": 2, "subjects": 2, "images": 6},
    }
    ds = open_dataset(out)
    train, test = ds.split("train"), ds.split("test")
    assert not set(train.subjects.tolist()) & set(test.subjects.tolist())
    assert train.t1w.dtype == np.float32 and train.t1w.min() >= 0 and train.t1w.max() <= 1
    # The imported slice is the phantom slice (display orientation restored, scaled to [0, 1]).
    vols, _ = phantom_volumes(int(str(train.subjects[0])[4:]))
    original = np.flipud(vols["t1w"][:, :, 1].T)
    np.testing.assert_allclose(
        train.t1w[0] * train.scale_t1w[0], original, rtol=1e-4, atol=1e-3 * original.max()
    )


def test_hcp_and_pairs_import(tmp_path, capsys):
    hcp = tmp_path / "hcp"
    rows = ["subject,t1w,t2w"]
    for i in range(4):
        vols, affine = phantom_volumes(i, slices=4)
        folder = hcp / f"1000{i}" / "MNINonLinear"
        save(folder / "T1w_restore_brain.nii.gz", vols["t1w"], affine)
        save(folder / "T2w_restore_brain.nii.gz", vols["t2w"], affine)
        rows.append(
            f"s{i},hcp/1000{i}/MNINonLinear/T1w_restore_brain.nii.gz,"
            f"hcp/1000{i}/MNINonLinear/T2w_restore_brain.nii.gz"
        )
    assert (
        main(
            [
                "data",
                "import",
                "--format",
                "hcp",
                "--root",
                str(hcp),
                "--out",
                str(tmp_path / "d1"),
                "--slices",
                "2",
                "--size",
                "72x68",
                "--quiet",
            ]
        )
        == 0
    )
    assert open_dataset(tmp_path / "d1").shape == (72, 68)
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "test.txt").write_text("s3\n")
    assert (
        main(
            [
                "data",
                "import",
                "--format",
                "pairs",
                "--csv",
                str(tmp_path / "pairs.csv"),
                "--out",
                str(tmp_path / "d2"),
                "--test-subjects",
                str(tmp_path / "test.txt"),
                "--quiet",
            ]
        )
        == 0
    )
    ds = open_dataset(tmp_path / "d2")
    assert ds.split("test").subjects.tolist() == ["s3"]
    assert ds.meta["splits"]["train"]["subjects"] == 3


def test_png_export_import_is_lossless(small_phantom, tmp_path):
    png = tmp_path / "png"
    assert main(["data", "export-png", str(small_phantom), "--out", str(png), "--quiet"]) == 0
    from PIL import Image

    first = sorted((png / "trainA").iterdir())[0]
    assert np.asarray(Image.open(first)).dtype == np.uint16
    back = tmp_path / "back"
    assert (
        main(
            [
                "data",
                "import",
                "--format",
                "folders",
                "--root",
                str(png),
                "--out",
                str(back),
                "--paired",
                "--intensity",
                "keep",
                "--quiet",
            ]
        )
        == 0
    )
    original, imported = open_dataset(small_phantom), open_dataset(back)
    for split in ("train", "test"):
        a, b = original.split(split), imported.split(split)
        np.testing.assert_allclose(b.t1w, a.t1w, atol=0.5 / 65535)
        np.testing.assert_allclose(b.t2w, a.t2w, atol=0.5 / 65535)
    again = tmp_path / "again"
    assert main(["data", "export-png", str(back), "--out", str(again), "--quiet"]) == 0
    for name in ("trainA", "testB"):
        first_files, second_files = sorted((png / name).iterdir()), sorted((again / name).iterdir())
        assert len(first_files) == len(second_files)
        for f, g in zip(first_files, second_files):
            assert np.array_equal(np.asarray(Image.open(f)), np.asarray(Image.open(g)))


def test_folders_8bit_tiff_and_unpaired(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for side in "AB":
            folder = tmp_path / "src" / f"{split}{side}"
            folder.mkdir(parents=True)
            for i in range(3 if side == "A" else 2):
                img = (rng.random((40, 36)) * 255).astype(np.uint8)
                Image.fromarray(img).save(folder / f"{split}{i}.tif")
    out = tmp_path / "d"
    assert (
        main(
            [
                "data",
                "import",
                "--format",
                "folders",
                "--root",
                str(tmp_path / "src"),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    ds = open_dataset(out)
    assert ds.meta["paired"] is False and ds.shape == (40, 36) and len(ds.split("train")) == 2


@pytest.mark.slow
def test_train_on_import_evaluate_and_translate_volume(bids_root, tmp_path, capsys):
    data = tmp_path / "data"
    assert (
        main(
            [
                "data",
                "import",
                "--format",
                "bids",
                "--root",
                str(bids_root),
                "--out",
                str(data),
                "--slices",
                "0:6",
                "--quiet",
            ]
        )
        == 0
    )
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--model",
                "generators_s",
                "--data",
                str(data),
                "--out",
                str(run),
                "--profile",
                "tiny",
                "--quiet",
            ]
        )
        == 0
    )
    assert main(["evaluate", "--run", str(run), "--quiet"]) == 0
    vols, affine = phantom_volumes(15)
    # A held-out volume stored in LAS orientation (flipped x), to check reorientation.
    las_affine = affine.copy()
    las_affine[0, 0] = -SPACING
    las_affine[0, 3] = SPACING * (vols["t1w"].shape[0] - 1)
    src = save(tmp_path / "in" / "held_T1w.nii.gz", vols["t1w"][::-1], las_affine)
    out = tmp_path / "out" / "held_T2w_synthetic.nii.gz"
    assert (
        main(
            [
                "translate",
                "--run",
                str(run),
                "--direction",
                "t1-to-t2",
                "--input",
                str(src),
                "--output",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "works at" in err and "translating on cpu" in err
    assert "warning" not in err  # the tiny profile works 2x below the data: no warning
    result = nib.load(str(out))
    assert result.shape == vols["t1w"].shape
    np.testing.assert_allclose(result.affine, las_affine)
    data_out = np.asarray(result.dataobj)
    assert data_out.dtype == np.float32 and np.isfinite(data_out).all()
    mask = vols["t1w"][::-1] > 0
    assert np.all(data_out[~mask] == 0) and data_out[mask].mean() > 0
    # The same volume in RAS gives the same synthetic voxels (after flipping back).
    ras = tmp_path / "in2" / "held_ras.nii.gz"
    save(ras, vols["t1w"], affine)
    assert (
        main(
            [
                "translate",
                "--run",
                str(run),
                "--direction",
                "t1-to-t2",
                "--input",
                str(ras.parent),
                "--output",
                str(tmp_path / "out2"),
                "--quiet",
            ]
        )
        == 0
    )
    ras_out = np.asarray(nib.load(str(tmp_path / "out2" / "held_ras.nii.gz")).dataobj)
    np.testing.assert_allclose(ras_out[::-1], data_out, atol=1e-4 * data_out.max())
    # From Python, with arrays.
    from mrtranslate.inference import translate_volume
    from mrtranslate.runs import load_run

    array_out = translate_volume(load_run(run), vols["t1w"], "t1-to-t2")
    np.testing.assert_allclose(array_out, ras_out, atol=1e-4 * data_out.max())
    # An existing output is not replaced without --overwrite.
    before = out.read_bytes()
    capsys.readouterr()
    usage_error(
        capsys,
        [
            "translate",
            "--run",
            str(run),
            "--direction",
            "t1-to-t2",
            "--input",
            str(src),
            "--output",
            str(out),
        ],
    )
    assert out.read_bytes() == before


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    vols, affine = phantom_volumes(0, slices=4)
    files = {
        "good_t1": save(root / "good_T1w.nii.gz", vols["t1w"], affine),
        "good_t2": save(root / "good_T2w.nii.gz", vols["t2w"], affine),
        "flat": save(root / "flat.nii.gz", vols["t1w"][:, :, 0], affine),
        "four_d": save(root / "4d.nii.gz", np.stack([vols["t1w"]] * 2, axis=3), affine),
        "nan": save(root / "nan.nii.gz", np.where(vols["t1w"] > 500, np.nan, vols["t1w"]), affine),
        "zeros": save(root / "zeros.nii.gz", np.zeros_like(vols["t1w"]), affine),
        "shape": save(root / "shape.nii.gz", vols["t2w"][:-4], affine),
        "shifted": save(
            root / "shifted.nii.gz",
            vols["t2w"],
            affine + np.array([[0, 0, 0, 5.0]] * 3 + [[0, 0, 0, 0]]),
        ),
    }
    corrupt = root / "corrupt.nii.gz"
    corrupt.write_bytes(gzip.compress(b"this is not a nifti file" * 10))
    files["corrupt"] = corrupt
    text = root / "notes.nii"
    text.write_text("hello")
    files["text"] = text
    return root, files


@pytest.mark.parametrize(
    "t1,t2,needle",
    [
        ("missing", "good_t2", "not found"),
        ("corrupt", "good_t2", "cannot read"),
        ("text", "good_t2", "cannot read"),
        ("flat", "good_t2", "3-D"),
        ("four_d", "good_t2", "3-D"),
        ("nan", "good_t2", "NaN"),
        ("zeros", "good_t2", "all zeros"),
        ("good_t1", "shape", "shape"),
        ("good_t1", "shifted", "affines"),
    ],
)
def test_pairs_import_bad_volumes(bad_inputs, tmp_path, capsys, t1, t2, needle):
    root, files = bad_inputs
    csv = tmp_path / "pairs.csv"
    rows = ["subject,t1w,t2w"]
    for i in range(3):
        rows.append(f"ok{i},{files['good_t1']},{files['good_t2']}")
    t1_path = files.get(t1, root / "missing.nii.gz")
    rows.append(f"bad,{t1_path},{files[t2]}")
    csv.write_text("\n".join(rows) + "\n")
    err = usage_error(
        capsys,
        [
            "data",
            "import",
            "--format",
            "pairs",
            "--csv",
            str(csv),
            "--out",
            str(tmp_path / "d"),
            "--quiet",
        ],
    )
    assert needle in err and "bad" in err
    assert not (tmp_path / "d").exists()


def test_import_other_bad_input(bad_inputs, tmp_path, capsys):
    root, files = bad_inputs
    csv = tmp_path / "pairs.csv"
    csv.write_text(
        "subject,t1w,t2w\n"
        + "".join(f"s{i},{files['good_t1']},{files['good_t2']}\n" for i in range(3))
    )
    base = ["data", "import", "--format", "pairs", "--csv", str(csv), "--quiet"]
    assert "out of range" in usage_error(
        capsys, [*base, "--out", str(tmp_path / "a"), "--slices", "9"]
    )
    assert "divisible by 4" in usage_error(
        capsys, [*base, "--out", str(tmp_path / "b"), "--size", "66x64"]
    )
    assert "not found" in usage_error(
        capsys,
        [
            "data",
            "import",
            "--format",
            "bids",
            "--root",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "c"),
        ],
    )
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("x")
    assert "--overwrite" in usage_error(capsys, [*base, "--out", str(existing)])
    assert (existing / "keep.txt").read_text() == "x"
    dup = tmp_path / "dup.csv"
    dup.write_text(
        "subject,t1w,t2w\n"
        + "".join(f"s0,{files['good_t1']},{files['good_t2']}\n" for _ in range(3))
    )
    assert "more than once" in usage_error(
        capsys,
        ["data", "import", "--format", "pairs", "--csv", str(dup), "--out", str(tmp_path / "e")],
    )


def test_folders_subject_in_both_splits(tmp_path, capsys):
    from PIL import Image

    for folder in ("trainA", "trainB", "testA", "testB"):
        (tmp_path / "src" / folder).mkdir(parents=True)
        for name in ("same", "other" + folder[:-1]):
            Image.fromarray(np.full((32, 32), 9, np.uint8)).save(
                tmp_path / "src" / folder / f"{name}.png"
            )
    err = usage_error(
        capsys,
        [
            "data",
            "import",
            "--format",
            "folders",
            "--root",
            str(tmp_path / "src"),
            "--out",
            str(tmp_path / "d"),
            "--paired",
            "--quiet",
        ],
    )
    assert "both splits" in err


def test_translate_bad_input(bad_inputs, small_phantom, tmp_path, capsys):
    from mrtranslate.runs import load_checkpoint, save_checkpoint
    from mrtranslate.training.run import train_run

    root, files = bad_inputs
    run = tmp_path / "run"
    train_run("simple", small_phantom, run, profile="tiny", progress=False)
    base = [
        "translate",
        "--run",
        str(run),
        "--direction",
        "t1-to-t2",
        "--output",
        str(tmp_path / "o.nii.gz"),
    ]
    for name, needle in (
        ("corrupt", "cannot read"),
        ("flat", "3-D"),
        ("nan", "NaN"),
        ("zeros", "all zeros"),
    ):
        assert needle in usage_error(capsys, [*base, "--input", str(files[name])])
    assert "not found" in usage_error(capsys, [*base, "--input", str(root / "none.nii.gz")])
    assert not (tmp_path / "o.nii.gz").exists()
    assert "no checkpoint" in usage_error(
        capsys,
        [
            "translate",
            "--run",
            str(tmp_path),
            "--direction",
            "t1-to-t2",
            "--input",
            str(files["good_t1"]),
            "--output",
            str(tmp_path / "x.nii"),
        ],
    )
    state = load_checkpoint(run / "checkpoint.pt")
    other = {k: v for k, v in state.items() if k not in ("format", "version")}
    other["config"] = {**state["config"], "model": "generators_s"}  # weights of another model
    save_checkpoint(run / "checkpoint.pt", other)
    assert "does not match" in usage_error(capsys, [*base, "--input", str(files["good_t1"])])
    state["version"] = 99
    save_checkpoint(run / "checkpoint.pt", {k: v for k, v in state.items() if k not in ("format",)})
    assert "version" in usage_error(capsys, [*base, "--input", str(files["good_t1"])])


def test_working_resolution_warning():
    from pathlib import Path

    from mrtranslate.runs import LoadedRun

    def run(data_shape, model_shape):
        return LoadedRun(Path("r"), None, None, {}, data_shape, model_shape)

    assert run((240, 240), (120, 120)).resolution_warning() is None
    warning = run((240, 240), (60, 60)).resolution_warning()
    assert "60x60" in warning and "4.0x coarser" in warning and "--budget" in warning
    assert "\n" not in warning
    assert run((304, 256), (100, 84)).resolution_warning()


def test_import_brain_slices(tmp_path, capsys):
    """``--slices brain`` keeps the contiguous run of slices across the brain: empty slices and
    a sliver under 2% of the largest slice's brain area are left out at both ends, a slice
    inside the run is kept even when small (neighbours stay consecutive)."""
    from mrtranslate.data.volumes import brain_slice_range

    root = tmp_path / "bids"
    for i in range(3):
        vols, affine = phantom_volumes(i, slices=8)
        for key in vols:
            vols[key][:, :, [0, 7]] = 0  # empty first and last slices
            vols[key][:, :, 6] *= 0  # a sliver: one brain voxel
            vols[key][30, 30, 6] = 1000.0
            vols[key][:, :, 3] *= 0  # another sliver, inside the run
            vols[key][30, 30, 3] = 1000.0
        anat = root / f"sub-{i:02d}" / "anat"
        save(anat / f"sub-{i:02d}_T1w.nii.gz", vols["t1w"], affine)
        save(anat / f"sub-{i:02d}_T2w.nii.gz", vols["t2w"], affine)
    out = tmp_path / "data"
    args = ["data", "import", "--format", "bids", "--root", str(root), "--out", str(out)]
    assert main([*args, "--slices", "brain", "--test-fraction", "0.34", "--quiet"]) == 0
    capsys.readouterr()
    ds = open_dataset(out)
    assert ds.meta["import"]["slices"] == "brain"
    assert ds.meta["splits"]["train"]["images"] == 2 * 5  # slices 1..5 of each volume
    assert ds.meta["intensity_scale"] == "volume"
    vols, _ = phantom_volumes(0, slices=8)
    mask = vols["mask"] > 0
    mask[:, :, [0, 7]] = False
    mask[:, :, 6] = False
    mask[30, 30, 6] = True
    mask[:, :, 3] = False
    mask[30, 30, 3] = True
    assert brain_slice_range(mask, axis=2) == [1, 2, 3, 4, 5]


def test_brain_slice_range_refuses_an_empty_mask():
    from mrtranslate.data.volumes import brain_slice_range
    from mrtranslate.errors import UsageError

    with pytest.raises(UsageError, match="empty"):
        brain_slice_range(np.zeros((4, 4, 4), bool), axis=2)
