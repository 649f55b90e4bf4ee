"""Build the phantom cohort into the standard data-set layout, atomically, with progress."""

from __future__ import annotations

import datetime as _dt
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from mrtranslate import __version__
from mrtranslate.data.dataset import (
    FORMAT,
    FORMAT_VERSION,
    SplitWriter,
    meta_path,
    split_subjects,
)
from mrtranslate.data.phantom import PhantomSpec, load_template, make_subject
from mrtranslate.errors import UsageError
from mrtranslate.fileio import atomic_directory, check_writable_parent, write_json_atomic
from mrtranslate.progress import progress_bar

INTENSITY_NOTE = (
    "per image: divided by the 99.5th percentile inside the brain mask, clipped to [0, 1]; "
    "the divisor is stored as scale_t1w / scale_t2w"
)


def _subject_job(args: tuple[PhantomSpec, int]) -> dict:
    spec, index = args
    return make_subject(spec, index)


def check_output_folder(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty existing folder (without ``overwrite``) or an unwritable location."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"output path {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UsageError(f"output folder {out} exists and is not empty (use --overwrite)")
    try:
        check_writable_parent(out / "x")
    except PermissionError as exc:
        raise UsageError(f"output folder {out} is not writable: {exc}") from exc


def build_phantom(
    spec: PhantomSpec,
    out: str | Path,
    overwrite: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Generate the phantom cohort described by ``spec`` into ``out``.

    Subjects are generated in parallel worker processes; each subject's random stream depends
    only on (seed, subject index), so the result does not depend on the number of workers.
    """
    try:
        spec.validate()
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    out = Path(out)
    check_output_folder(out, overwrite)
    load_template()  # fail early (and warm the cache before forking workers)

    ids = [f"phantom-{i:04d}" for i in range(spec.subjects)]
    splits = split_subjects(ids, spec.test_subjects, spec.seed)
    index_of = {sid: i for i, sid in enumerate(ids)}
    shape = (spec.height, spec.width)
    workers = workers or min(2, os.cpu_count() or 1)
    with atomic_directory(out, overwrite) as tmp:
        bar = progress_bar(
            total=spec.subjects, desc="phantom subjects", unit="subj", disable=not progress
        )
        pool = ProcessPoolExecutor(workers) if workers > 1 else None
        try:
            for split, members in splits.items():
                writer = SplitWriter(tmp / split, len(members) * spec.slices_per_subject, shape)
                jobs = [(spec, index_of[s]) for s in members]
                results = (
                    pool.map(_subject_job, jobs, chunksize=8) if pool else map(_subject_job, jobs)
                )
                for sid, arrays in zip(members, results):
                    writer.add(sid, arrays)
                    bar.update(1)
                writer.close()
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)
            bar.close()
        write_json_atomic(meta_path(tmp), _dataset_meta(spec, splits))
    return out


def _dataset_meta(spec: PhantomSpec, splits: dict[str, list[str]]) -> dict:
    """``dataset.json`` of a phantom cohort."""
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "source": "phantom",
        "description": "mrtranslate MNI152-based multi-contrast brain phantom (HCP-like)",
        "contrasts": ["t1w", "t2w"],
        "paired": True,
        "image_shape": [spec.height, spec.width],
        "pixel_spacing_mm": [spec.spacing, spec.spacing],
        "orientation": "axial; rows anterior->posterior, columns left->right",
        "intensity": INTENSITY_NOTE,
        "seed": spec.seed,
        "splits": {
            name: {"subjects": len(m), "images": len(m) * spec.slices_per_subject}
            for name, m in splits.items()
        },
        "phantom": spec.to_dict(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "mrtranslate_version": __version__,
    }
