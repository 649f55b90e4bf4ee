"""Hostile and damaged inputs: size bombs, truncated files, damaged runs, permissions.

Every bad input ends with one line on stderr, exit code 2, no traceback, and nothing written or
changed. A seeded fuzz test feeds generated malformed inputs through the commands.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import stat
import struct
import time
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from helpers import usage_error
from mrtranslate.cli import main
from mrtranslate.runs import layout

# ---------------------------------------------------------------- generators of bad files


def nifti_header_only(path: Path, shape: tuple[int, ...], gz: bool) -> Path:
    """A NIfTI-1 header that declares ``shape`` float32 voxels, followed by no data at all."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.float32)
    raw = header.binaryblock + b"\0" * 4  # 348 + 4: the extension flag, then nothing
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def good_volume(path: Path, seed: int = 0, shape=(40, 48, 6)) -> Path:
    rng = np.random.default_rng(seed)
    data = np.zeros(shape, dtype=np.float32)
    data[8:-8, 8:-8, :] = rng.uniform(100, 1000, size=(shape[0] - 16, shape[1] - 16, shape[2]))
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0])), str(path))
    return path


def tree_digest(folder: Path) -> str:
    """A digest of every file (name, bytes) under ``folder`` ('' when it does not exist)."""
    if not folder.exists():
        return ""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def pairs_csv(path: Path, rows: list[tuple[str, Path, Path]]) -> Path:
    path.write_text("subject,t1w,t2w\n" + "".join(f"{s},{a},{b}\n" for s, a, b in rows))
    return path


def _import_pairs(csv: Path, out: Path) -> list[str]:
    return ["data", "import", "--format", "pairs", "--csv", str(csv), "--out", str(out), "--quiet"]


@pytest.fixture(scope="module")
def good_pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("good")
    return [
        (f"s{i}", good_volume(root / f"s{i}_T1w.nii.gz", i), good_volume(root / f"s{i}_T2w.nii", i))
        for i in range(4)
    ]


@pytest.fixture(scope="module")
def evaluated_run(small_phantom, tmp_path_factory):
    from helpers import trained_and_evaluated

    return trained_and_evaluated(("simple",), small_phantom, tmp_path_factory.mktemp("runs"))[0]


# ---------------------------------------------------------------- size bombs and truncation


@pytest.mark.parametrize("gz", [True, False])
def test_nifti_size_bomb_is_refused_before_reading(good_pair, tmp_path, capsys, gz):
    bomb = nifti_header_only(
        tmp_path / ("bomb.nii.gz" if gz else "bomb.nii"), (2000, 2000, 300), gz
    )
    assert bomb.stat().st_size < 400
    csv = pairs_csv(tmp_path / "p.csv", [*good_pair, ("bomb", bomb, good_pair[0][2])])
    start = time.perf_counter()
    err = usage_error(capsys, _import_pairs(csv, tmp_path / "out"))
    assert time.perf_counter() - start < 10  # no 4.75 GB allocation
    assert "declares 2000x2000x300" in err and str(bomb) in err
    assert not (tmp_path / "out").exists()


def test_nifti_with_huge_sides_and_truncated_data(good_pair, tmp_path, capsys):
    huge = nifti_header_only(tmp_path / "huge.nii", (32767, 32767, 32767), gz=False)
    csv = pairs_csv(tmp_path / "p.csv", [*good_pair, ("huge", huge, good_pair[0][2])])
    assert "each side must be" in usage_error(capsys, _import_pairs(csv, tmp_path / "o"))
    whole = good_pair[0][2].read_bytes()  # an uncompressed .nii
    cut = tmp_path / "cut.nii"
    cut.write_bytes(whole[: len(whole) // 2])
    csv = pairs_csv(tmp_path / "p.csv", [*good_pair, ("cut", cut, good_pair[0][2])])
    assert "truncated" in usage_error(capsys, _import_pairs(csv, tmp_path / "o"))
    cut_gz = tmp_path / "cut.nii.gz"
    cut_gz.write_bytes(good_pair[0][1].read_bytes()[:-200])
    csv = pairs_csv(tmp_path / "p.csv", [*good_pair, ("cutgz", cut_gz, good_pair[0][2])])
    assert "cut.nii.gz" in usage_error(capsys, _import_pairs(csv, tmp_path / "o"))
    assert not (tmp_path / "o").exists()


def _folders(root: Path, images: dict[str, list[tuple[str, np.ndarray]]]) -> Path:
    for sub, items in images.items():
        (root / sub).mkdir(parents=True, exist_ok=True)
        for name, array in items:
            Image.fromarray(array).save(root / sub / name)
    return root


def _grey(seed: int, shape=(64, 64)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(1, 255, size=shape, dtype=np.uint8)


@pytest.fixture
def png_root(tmp_path):
    images = {
        s: [(f"{s}{i}.png", _grey(i + 10 * k)) for i in range(3)]
        for k, s in enumerate(("trainA", "trainB", "testA", "testB"))
    }
    return _folders(tmp_path / "pngs", images)


def _import_folders(root: Path, out: Path) -> list[str]:
    args = ["data", "import", "--format", "folders", "--root", str(root), "--out", str(out)]
    return [*args, "--paired", "--quiet"]


def test_truncated_empty_and_mismatched_pngs(png_root, tmp_path, capsys):
    assert main(_import_folders(png_root, tmp_path / "ok")) == 0  # the good set imports
    target = png_root / "trainA" / "trainA1.png"
    Image.fromarray(_grey(5, (900, 900))).save(target)
    target.write_bytes(target.read_bytes()[:3000])  # a few rows of data, then nothing
    err = usage_error(capsys, _import_folders(png_root, tmp_path / "a"))
    assert "trainA1.png" in err
    # A complete compressed stream that holds one row of a 4000 x 4000 image: Pillow pads the
    # missing rows with zeros without an error.
    Image.fromarray(_grey(7, (1, 4000))).save(target)
    raw = target.read_bytes()
    ihdr = b"IHDR" + struct.pack(">II", 4000, 4000) + raw[24:29]
    target.write_bytes(raw[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + raw[33:])
    assert "lacks rows" in usage_error(capsys, _import_folders(png_root, tmp_path / "a"))
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(target)
    assert "empty" in usage_error(capsys, _import_folders(png_root, tmp_path / "b"))
    Image.fromarray(_grey(6, (70, 64))).save(target)
    err = usage_error(capsys, _import_folders(png_root, tmp_path / "c"))
    assert "differ in size" in err and "trainA1.png" in err
    for out in ("a", "b", "c"):
        assert not (tmp_path / out).exists()


def test_png_declaring_a_huge_image(png_root, tmp_path, capsys):
    target = png_root / "testB" / "testB0.png"
    raw = target.read_bytes()
    # Rewrite the IHDR chunk's width and height (bytes 16-24) and its CRC.
    ihdr = b"IHDR" + struct.pack(">II", 60000, 60000) + raw[24:29]
    target.write_bytes(raw[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + raw[33:])
    err = usage_error(capsys, _import_folders(png_root, tmp_path / "o"))
    assert "declares" in err and "testB0.png" in err


# ---------------------------------------------------------------- CSV files


def test_pairs_csv_not_utf8_short_rows_and_missing_files(good_pair, tmp_path, capsys):
    csv = tmp_path / "p.csv"
    csv.write_bytes("subject,t1w,t2w\nJos\xe9,a,b\n".encode("latin-1"))
    assert "not UTF-8" in usage_error(capsys, _import_pairs(csv, tmp_path / "o"))
    s, a, b = good_pair[0]
    csv.write_text(f"subject,t1w,t2w\n{s},{a},{b}\nshort,{a}\n")
    assert "line 3 has 2 of 3 columns" in usage_error(capsys, _import_pairs(csv, tmp_path / "o"))
    missing = tmp_path / "nowhere_T2w.nii.gz"
    csv.write_text(f"subject,t1w,t2w\n{s},{a},{b}\ngone,{a},{missing}\n")
    err = usage_error(capsys, _import_pairs(csv, tmp_path / "o"))
    assert "T2w file not found" in err and str(missing) in err and "gone" in err
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- damaged runs


def _copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


@pytest.mark.parametrize(
    "damage,needle",
    [
        ("object", "damaged"),
        ("truncated", "damaged"),
        ("short", "holds"),
        ("summary", "evaluation summary"),
        ("summary_values", "damaged"),
    ],
)
def test_perceptual_build_on_a_damaged_run(
    evaluated_run, small_phantom, tmp_path, capsys, damage, needle
):
    run = _copy_run(evaluated_run, tmp_path / "run")
    synthetic = layout.synthetic_path(run, "t1-to-t2")
    if damage == "object":
        np.save(synthetic, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif damage == "truncated":
        synthetic.write_bytes(synthetic.read_bytes()[:150])
    elif damage == "short":
        np.save(synthetic, np.load(synthetic)[:1])
    elif damage == "summary":
        layout.summary_path(run).write_text("{not json")
    else:
        summary = json.loads(layout.summary_path(run).read_text())
        summary["evaluation_shape"] = "big"
        layout.summary_path(run).write_text(json.dumps(summary))
    args = ["perceptual", "build", "--data", str(small_phantom), "--runs", str(run)]
    err = usage_error(capsys, [*args, "--out", str(tmp_path / "study")])
    assert needle in err
    assert not (tmp_path / "study").exists()


def test_resume_with_nothing_to_resume(small_phantom, tmp_path, capsys):
    args = ["train", "--model", "simple", "--data", str(small_phantom), "--profile", "tiny"]
    err = usage_error(capsys, [*args, "--out", str(tmp_path / "new"), "--resume", "--quiet"])
    assert "no checkpoint to resume" in err
    assert not (tmp_path / "new").exists()


def test_damaged_checkpoint_falls_back_or_says_how_to_start_over(small_phantom, tmp_path, capsys):
    from mrtranslate.runs.checkpoint import previous_path

    run = tmp_path / "run"
    args = ["train", "--model", "simple", "--data", str(small_phantom), "--profile", "tiny"]
    base = [*args, "--out", str(run), "--quiet"]
    assert main([*base, "--set", "train.epochs=3", "--set", "train.decay_epochs=1"]) == 0
    latest = layout.checkpoint_path(run)
    assert previous_path(latest).is_file()  # the last two are kept
    latest.write_bytes(latest.read_bytes()[:100])  # damaged after the fact
    capsys.readouterr()
    # Resuming a finished run: the damaged latest falls back to the previous one.
    assert main([*base, "--resume"]) == 0
    captured = capsys.readouterr()
    assert "continuing from the previous checkpoint" in captured.err
    assert main(["evaluate", "--run", str(run), "--quiet"]) == 0  # finished and readable again
    # Both damaged: one line that says how to start over; nothing changes.
    latest.write_bytes(b"")
    previous_path(latest).write_bytes(b"\x80")
    before = tree_digest(run)
    err = usage_error(capsys, [*base, "--resume"])
    assert "to start over" in err and "damaged" in err
    err = usage_error(capsys, base)
    assert "already holds a training run" in err and "delete the folder" in err
    assert tree_digest(run) == before


def test_stale_temporary_files_are_cleaned_and_outputs_respect_the_umask(tmp_path):
    from mrtranslate.fileio import atomic_directory, write_text_atomic
    from mrtranslate.runs import save_checkpoint

    target = tmp_path / "checkpoint.pt"
    stale = tmp_path / ".checkpoint.pt.k1ll3d.tmp"  # left by a kill during a save
    stale.write_bytes(b"half")
    other = tmp_path / ".other.json.x.tmp"
    other.write_bytes(b"not ours")
    old = os.umask(0o022)
    try:
        save_checkpoint(target, {"step": 1})
        write_text_atomic(tmp_path / "note.txt", "hi")
        with atomic_directory(tmp_path / "folder", overwrite=False) as tmp:
            (tmp / "x").write_text("x")
    finally:
        os.umask(old)
    assert not stale.exists() and other.exists()
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "note.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o755


def test_multi_member_gzip_nifti_is_read_and_a_missing_member_is_refused(tmp_path):
    """A .nii.gz written as several gzip members is valid (nibabel reads it; the last member's
    trailer counts only that member); without its last member it is truncated."""
    from mrtranslate.data.volumes import load_volume
    from mrtranslate.errors import UsageError

    plain = good_volume(tmp_path / "one.nii", shape=(40, 48, 6)).read_bytes()
    parts = [plain[i : i + 7000] for i in range(0, len(plain), 7000)]
    members = tmp_path / "members.nii.gz"
    members.write_bytes(b"".join(gzip.compress(part, mtime=0) for part in parts))
    expected = np.asarray(nib.load(str(tmp_path / "one.nii")).dataobj)
    np.testing.assert_array_equal(np.asarray(load_volume(members).dataobj), expected)
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(b"".join(gzip.compress(part, mtime=0) for part in parts[:-1]))
    with pytest.raises(UsageError, match="cut.nii.gz is truncated"):
        load_volume(cut)


def test_translate_output_is_checked_before_the_work(evaluated_run, tmp_path, capsys):
    volume = good_volume(tmp_path / "in_T1w.nii.gz", shape=(64, 64, 6))
    blocker = tmp_path / "a_file"
    blocker.write_text("I am a file")
    args = ["translate", "--run", str(evaluated_run), "--direction", "t1-to-t2"]
    err = usage_error(
        capsys, [*args, "--input", str(volume), "--output", str(blocker / "out.nii.gz")]
    )
    assert "is a file, not a folder" in err
    assert "works at" not in err  # refused before any translation started
    err = usage_error(capsys, [*args, "--input", str(volume), "--output", str(tmp_path)])
    assert "is a folder" in err


# ---------------------------------------------------------------- fuzz


def _malformed_files(root: Path, good: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` malformed NIfTI files made from ``good`` (a valid .nii.gz) by seeded mutations:
    truncation, random bytes, flipped header bytes, bombs, empty files, wrong magic."""
    rng = np.random.default_rng(seed)
    raw = gzip.decompress(good.read_bytes())
    made = []
    for i in range(count):
        kind = i % 6
        path = root / (f"fuzz{i:02d}_T1w.nii" + (".gz" if kind in (0, 2) else ""))
        if kind == 0:  # truncated compressed stream
            data = good.read_bytes()
            path.write_bytes(data[: int(rng.integers(1, len(data) - 1))])
        elif kind == 1:  # truncated uncompressed file
            path.write_bytes(raw[: int(rng.integers(0, len(raw) - 1))])
        elif kind == 2:  # a header that declares a huge volume
            side = int(rng.integers(3000, 30000))
            nifti_header_only(path, (side, side, int(rng.integers(100, 2000))), gz=True)
        elif kind == 3:  # random bytes
            path.write_bytes(rng.integers(0, 256, size=int(rng.integers(0, 2000))).astype(np.uint8))
        elif kind == 4:  # header bytes flipped (dimensions, datatype, magic...)
            data = bytearray(raw)
            for _ in range(int(rng.integers(1, 6))):
                pos = int(rng.integers(0, 348))
                data[pos] = int(rng.integers(0, 256))
            data[40:42] = struct.pack("<h", int(rng.integers(5, 8)))  # dim[0] > 4: never 3-D
            path.write_bytes(bytes(data))
        else:  # empty file
            path.write_bytes(b"")
        made.append(path)
    return made


@pytest.mark.slow
def test_fuzz_malformed_inputs_through_every_command(
    good_pair, evaluated_run, small_phantom, tmp_path, capsys
):
    good = good_pair[0][1]  # a valid .nii.gz
    fuzz = _malformed_files(tmp_path, good, count=36)
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("do not touch")
    before = tree_digest(existing)
    failures = []

    def check(args: list[str], label: str) -> None:
        code = main(args)
        err = capsys.readouterr().err
        ok = code == 2 and err.startswith("mrtranslate: error:") and err.count("\n") == 1
        if not ok or "Traceback" in err:
            failures.append(f"{label}: exit {code}: {err!r}")

    train = ["train", "--model", "simple", "--data", str(small_phantom), "--quiet"]
    for path in fuzz:
        csv = pairs_csv(tmp_path / "fuzz.csv", [*good_pair, ("fuzz", path, good_pair[0][2])])
        check([*_import_pairs(csv, existing / "data")], f"import {path.name}")
        check(
            [
                "translate",
                "--run",
                str(evaluated_run),
                "--direction",
                "t1-to-t2",
                "--input",
                str(path),
                "--output",
                str(existing / "out.nii.gz"),
                "--quiet",
            ],
            f"translate {path.name}",
        )
        run = existing / "run"
        run.mkdir(exist_ok=True)
        shutil.copyfile(path, layout.checkpoint_path(run))
        check([*train, "--out", str(run), "--resume"], f"resume {path.name}")
        shutil.rmtree(run)
        damaged = _copy_run(evaluated_run, tmp_path / "damaged")
        shutil.copyfile(path, layout.synthetic_path(damaged, "t2-to-t1"))
        check(
            [
                "perceptual",
                "build",
                "--data",
                str(small_phantom),
                "--runs",
                str(damaged),
                "--out",
                str(existing / "study"),
            ],
            f"perceptual build {path.name}",
        )
        shutil.rmtree(damaged)
    assert not failures, "\n".join(failures)
    assert len(fuzz) >= 30 and tree_digest(existing) == before
