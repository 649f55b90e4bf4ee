"""Translating a BIDS data set into a BIDS derivative data set.

``mrtranslate translate --input BIDS_ROOT`` translates every source-contrast image
``sub-*/[ses-*/]anat/*_T1w.nii[.gz]`` (or ``*_T2w`` for ``t2-to-t1``) and writes, under the
derivative root (default ``BIDS_ROOT/derivatives/mrtranslate``)::

    dataset_description.json                         DatasetType "derivative", GeneratedBy
    sub-07/anat/sub-07_desc-synthetic_T2w.nii.gz     the synthetic volume (input's grid)
    sub-07/anat/sub-07_desc-synthetic_T2w.json       sidecar: model, run, checkpoint digest,
                                                     version, direction, source, resolution

The output name keeps the source's entities, sets ``desc-synthetic`` (replacing a ``desc``
the source had) and takes the target suffix. A brain mask beside the source
(``<stem>*_mask.nii[.gz]``, not a lesion mask) is used when present.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from mrtranslate import __version__
from mrtranslate.directions import Direction
from mrtranslate.errors import UsageError
from mrtranslate.fileio import file_digest, write_json_atomic, write_text_atomic
from mrtranslate.inference.volumes import TranslationJob, run_jobs
from mrtranslate.runs import LoadedRun, layout

BIDS_VERSION = "1.10.0"
DERIVATIVE_NAME = "mrtranslate"
SUFFIX = {"t1w": "T1w", "t2w": "T2w"}
NIFTI = re.compile(r"\.nii(\.gz)?$")
LESION = re.compile(r"_label-", re.IGNORECASE)


def is_bids_root(path: Path) -> bool:
    """A folder with ``dataset_description.json`` or with ``sub-*/[ses-*/]anat/`` NIfTI files."""
    if not path.is_dir():
        return False
    if (path / "dataset_description.json").is_file():
        return True
    return any(path.glob("sub-*/anat/*.nii*")) or any(path.glob("sub-*/ses-*/anat/*.nii*"))


def derivative_name(source: Path, direction: Direction) -> str:
    """``sub-07_acq-x_T1w.nii.gz`` -> ``sub-07_acq-x_desc-synthetic_T2w.nii.gz``."""
    stem = NIFTI.sub("", source.name)
    entities = [e for e in stem.split("_")[:-1] if not e.startswith("desc-")]
    return "_".join([*entities, "desc-synthetic", SUFFIX[direction.target]]) + ".nii.gz"


def bids_jobs(root: Path, out: Path, direction: Direction) -> list[TranslationJob]:
    """One job per source-contrast image of the BIDS root (derivatives are never inputs)."""
    suffix = SUFFIX[direction.source]
    sources = sorted(
        {*root.glob(f"sub-*/anat/*_{suffix}.nii*"), *root.glob(f"sub-*/ses-*/anat/*_{suffix}.nii*")}
    )
    sources = [p for p in sources if NIFTI.search(p.name)]
    if not sources:
        raise UsageError(f"no sub-*/[ses-*/]anat/*_{suffix}.nii[.gz] files under {root}")
    jobs = []
    for source in sources:
        stem = NIFTI.sub("", source.name)[: -len(suffix) - 1]
        masks = [
            m for m in sorted(source.parent.glob(f"{stem}*_mask.nii*")) if not LESION.search(m.name)
        ]
        relative = source.parent.relative_to(root)
        output = out / relative / derivative_name(source, direction)
        jobs.append(TranslationJob(source, output, masks[0] if masks else None))
    return jobs


def translate_bids(
    run: LoadedRun,
    direction: str,
    root: str | Path,
    out: str | Path | None = None,
    batch_size: int = 16,
    overwrite: bool = False,
    progress: bool = True,
    before_work: Callable[[], None] | None = None,
) -> list[Path]:
    """Translate every source image of a BIDS data set into a derivative data set (see the
    module docstring); returns the written NIfTI files."""
    direction = Direction.parse(direction)
    root = Path(root)
    out = Path(out) if out is not None else root / "derivatives" / DERIVATIVE_NAME
    if out.resolve() == root.resolve():
        raise UsageError("the derivative folder must not be the BIDS root itself")
    jobs = bids_jobs(root, out, direction)
    checkpoint = file_digest(layout.checkpoint_path(run.run_dir))

    def sidecar(job: TranslationJob) -> None:
        write_json_atomic(
            job.output.with_name(NIFTI.sub("", job.output.name) + ".json"),
            _sidecar(run, direction, root, job, checkpoint),
        )

    written = run_jobs(run, direction, jobs, batch_size, overwrite, progress, before_work, sidecar)
    _write_description(out, root, run)
    return written


def _sidecar(run: LoadedRun, direction: Direction, root: Path, job, checkpoint: str) -> dict:
    relative = job.source.relative_to(root).as_posix()
    return {
        "Description": f"Synthetic {SUFFIX[direction.target]} translated from "
        f"{SUFFIX[direction.source]} by mrtranslate ({run.display_name})",
        "Sources": [f"bids:raw:{relative}"],
        "SkullStripped": True,  # required for derivative anat images; zero outside the mask
        "Model": run.config.model,
        "ModelName": run.display_name,
        "Run": str(run.run_dir.resolve()),
        "CheckpointDigest": checkpoint,
        "MrtranslateVersion": __version__,
        "Direction": str(direction),
        "SourceFile": str(job.source.resolve()),
        "BrainMask": str(job.mask.resolve()) if job.mask else "filled non-zero region of the input",
        "WorkingResolution": list(run.model_image_shape),
        "DataResolution": list(run.data_image_shape),
    }


def _write_description(out: Path, root: Path, run: LoadedRun) -> None:
    """The derivative's ``dataset_description.json`` and ``README`` (rewritten each time)."""
    write_text_atomic(
        out / "README",
        "Synthetic MR contrasts written by mrtranslate (T1w <-> T2w translation).\n\n"
        "Each *_desc-synthetic_<contrast>.nii.gz was translated from the source image named in "
        "its JSON sidecar (Sources, SourceFile) with the model and checkpoint recorded there. "
        "Synthetic images are not measurements: check them against real ones before use.\n",
    )
    write_json_atomic(
        out / "dataset_description.json",
        {
            "Name": "mrtranslate synthetic contrasts",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "derivative",
            "GeneratedBy": [
                {
                    "Name": "mrtranslate",
                    "Version": __version__,
                    "Description": "T1w <-> T2w translation with generative adversarial "
                    f"networks; last run: {run.display_name} ({run.run_dir.resolve()})",
                }
            ],
            "SourceDatasets": [{"URL": root.resolve().as_uri()}],
            "DatasetLinks": {"raw": root.resolve().as_uri()},
        },
    )
