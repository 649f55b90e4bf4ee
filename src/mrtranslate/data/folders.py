"""The ``trainA/ trainB/ testA/ testB/`` image-folder layout (pix2pix/CycleGAN tools, the paper's
code): import into a data set, and export a data set as 16-bit PNG. A = T1w, B = T2w.

Import reads 8- or 16-bit PNG/TIFF as floats (8-bit / 255, 16-bit / 65535). With
``intensity="robust"`` (default) each image is then scaled like the NIfTI importers (99.5th
percentile inside the mask of non-zero pixels); with ``intensity="keep"`` the [0, 1] values are
kept, which makes export -> import lossless at 16 bits.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from mrtranslate.data.build import check_output_folder
from mrtranslate.data.dataset import SPLITS, Dataset, SplitWriter
from mrtranslate.data.importers import ImportOptions, _check_size, _default_size, _write_meta
from mrtranslate.data.pngio import list_images, read_grey, write_png16
from mrtranslate.data.volumes import fit_to, scale_slice
from mrtranslate.errors import UsageError
from mrtranslate.fileio import atomic_directory
from mrtranslate.progress import progress_bar

FOLDERS = {"train": ("trainA", "trainB"), "test": ("testA", "testB")}


def _pairs(root: Path, split: str, paired: bool) -> list[tuple[Path, Path]]:
    folder_a, folder_b = (root / name for name in FOLDERS[split])
    for folder in (folder_a, folder_b):
        if not folder.is_dir():
            raise UsageError(f"folder not found: {folder} (expected trainA/ trainB/ testA/ testB/)")
    images_a, images_b = list_images(folder_a), list_images(folder_b)
    if not images_a or not images_b:
        raise UsageError(f"no PNG or TIFF images in {folder_a if not images_a else folder_b}")
    if paired:
        if len(images_a) != len(images_b):
            raise UsageError(
                f"--paired: {folder_a} has {len(images_a)} images but {folder_b} "
                f"has {len(images_b)}"
            )
    elif len(images_a) != len(images_b):
        n = min(len(images_a), len(images_b))
        print(
            f"mrtranslate: warning: {split}A/{split}B hold {len(images_a)}/{len(images_b)} "
            f"images; using the first {n} of each",
            file=sys.stderr,
        )
        images_a, images_b = images_a[:n], images_b[:n]
    return list(zip(images_a, images_b))


def _pair_arrays(
    path_a: Path, path_b: Path, size: tuple[int, int], paired: bool, intensity: str
) -> dict[str, np.ndarray]:
    """One image pair as a split's arrays: T1w, T2w (1, H, W) float32, their divisors and the
    mask of pixels above 0 in either."""
    a, b = read_grey(path_a), read_grey(path_b)
    if paired and a.shape != b.shape:
        raise UsageError(
            f"paired images differ in size: {path_a} is {a.shape[0]}x{a.shape[1]}, "
            f"{path_b} is {b.shape[0]}x{b.shape[1]}; a pair must be co-registered"
        )
    a, b = fit_to(a, size), fit_to(b, size)
    mask = (a > 0) | (b > 0)
    arrays = {"mask": mask[None].astype(np.uint8)}
    for name, image in (("t1w", a), ("t2w", b)):
        if intensity == "robust":
            image, divisor = scale_slice(image, mask)
        else:
            divisor = 1.0
        arrays[name] = image[None].astype(np.float32)
        arrays[f"scale_{name}"] = np.array([divisor], dtype=np.float32)
    return arrays


def import_folders(
    root: str | Path,
    out: str | Path,
    options: ImportOptions,
    intensity: str = "robust",
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise UsageError(f"--root folder not found: {root}")
    if intensity not in ("robust", "keep"):
        raise UsageError(f"--intensity must be robust or keep, got {intensity!r}")
    pairs = {split: _pairs(root, split, options.paired) for split in SPLITS}
    check_output_folder(out, overwrite)
    first = read_grey(pairs["train"][0][0])
    size = options.size or _default_size(first.shape)
    _check_size(size)
    subjects = {split: [a.stem for a, _ in items] for split, items in pairs.items()}
    participants = {
        split: sorted({_participant(s, options.participant_pattern) for s in stems})
        for split, stems in subjects.items()
    }
    overlap = set(participants["train"]) & set(participants["test"])
    if (options.paired or options.participant_pattern) and overlap:
        raise UsageError(
            f"participant {sorted(overlap)[0]} is in both splits (trainA/B and testA/B); a "
            "participant's images must all be on one side"
        )
    with atomic_directory(out, overwrite) as tmp:
        for split, items in pairs.items():
            writer = SplitWriter(tmp / split, len(items), size)
            for path_a, path_b in progress_bar(
                items, desc=f"reading {split}", unit="img", disable=not progress
            ):
                arrays = _pair_arrays(path_a, path_b, size, options.paired, intensity)
                writer.add(path_a.stem, arrays)
            writer.close()
        _write_meta(
            tmp,
            "folders",
            root,
            size,
            [1.0, 1.0],
            subjects,
            {},
            options,
            paired=options.paired,
            participants=participants,
            extra={"citation": options.citation},
        )
    return out


def _participant(stem: str, pattern: str | None) -> str:
    """The participant of a file stem: group 1 (or the whole match) of ``pattern``, else the
    stem itself."""
    if not pattern:
        return stem
    try:
        match = re.match(pattern, stem)
    except re.error as exc:
        raise UsageError(f"--participant-pattern {pattern!r} is not a valid regex: {exc}") from None
    if match is None:
        raise UsageError(f"--participant-pattern {pattern!r} does not match the file {stem!r}")
    return match.group(1) if match.groups() else match.group(0)


def export_png(
    dataset: Dataset, out: str | Path, overwrite: bool = False, progress: bool = True
) -> Path:
    """Write the data set as 16-bit PNGs in ``trainA/ trainB/ testA/ testB/``."""
    out = Path(out)
    check_output_folder(out, overwrite)
    with atomic_directory(out, overwrite) as tmp:
        for split in SPLITS:
            data = dataset.split(split)
            names = FOLDERS[split]
            for name in names:
                (tmp / name).mkdir()
            for i in progress_bar(
                range(len(data)), desc=f"writing {split}", unit="img", disable=not progress
            ):
                stem = f"{data.subjects[i]}_{i:05d}"
                write_png16(tmp / names[0] / f"{stem}.png", np.asarray(data.t1w[i]))
                write_png16(tmp / names[1] / f"{stem}.png", np.asarray(data.t2w[i]))
    return out
