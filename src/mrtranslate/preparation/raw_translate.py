"""``mrtranslate translate --raw``: translate a raw scan (own grid, thick slices, skull).

The input gets the preparation of ``data prepare`` that needs no second contrast, then the
translation, then goes back where it came from:

1. read (one-line errors for what is not a 3-D volume), reorient to LPS axes;
2. N4 bias-field correction (``n4=False`` skips it);
3. brain extraction (the MNI152 brain carried by affine registration);
4. resampling (linear) onto an isotropic grid of ``spacing`` mm (default 1 mm: the shared
   training data's) over the input's field of view;
5. the translation (:func:`~mrtranslate.inference.translate_volume`, the brain mask given);
6. resampling (linear) of the synthetic volume back onto the **input's own grid**, zero outside
   the brain mask carried back (nearest neighbour), written with the input's affine and header
   (float32) and a JSON sidecar naming every step.
"""

from __future__ import annotations

import time
from pathlib import Path

import nibabel as nib
import numpy as np

from mrtranslate import __version__
from mrtranslate.data.volumes import load_volume
from mrtranslate.directions import Direction
from mrtranslate.errors import UsageError
from mrtranslate.fileio import check_writable_parent, file_digest, write_json_atomic
from mrtranslate.inference.volumes import save_nifti_atomic, translate_volume
from mrtranslate.preparation.brain import extract_brain
from mrtranslate.preparation.prepare import n4 as n4_correct
from mrtranslate.preparation.registration import from_nibabel, isotropic, sitk, to_nibabel
from mrtranslate.runs import LoadedRun, layout


def sidecar_path(output: Path) -> Path:
    """``synthetic.nii.gz`` -> ``synthetic.json``."""
    name = output.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return output.with_name(name[: -len(suffix)] + ".json")
    return output.with_name(name + ".json")


def translate_raw(
    run: LoadedRun,
    direction: str,
    input_path: str | Path,
    output_path: str | Path,
    spacing: float = 1.0,
    n4: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    say=print,
    before_work=None,
) -> Path:
    """Translate one raw NIfTI volume (see the module docstring); returns the output path.
    ``before_work`` is called once the paths and the input are checked (bad input stays one
    line)."""
    s = sitk()
    direction = Direction.parse(direction)
    source, output = Path(input_path), Path(output_path)
    _check_paths(source, output, overwrite)
    image = load_volume(source, "input")
    if before_work is not None:
        before_work()
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        seconds[name] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()

    native = from_nibabel(np.asarray(image.dataobj, np.float32), image.affine)
    oriented = s.DICOMOrient(native, "LPS")
    corrected = n4_correct(oriented) if n4 else oriented
    lap("n4" if n4 else "read")
    brain = extract_brain(corrected)
    lap("brain")
    say(f"brain extracted ({seconds['brain']:.0f} s); translating at {spacing:g} mm")
    grid = isotropic(corrected, spacing)
    work = s.Resample(corrected, grid, s.Transform(), s.sitkLinear, 0.0, s.sitkFloat32)
    work_mask = s.Resample(brain.mask, grid, s.Transform(), s.sitkNearestNeighbor, 0)
    (work_data, work_affine), (mask_data, _) = to_nibabel(work), to_nibabel(work_mask)
    synthetic = translate_volume(
        run,
        nib.Nifti1Image(work_data.astype(np.float32), work_affine),
        direction,
        mask=nib.Nifti1Image(mask_data.astype(np.uint8), work_affine),
        progress=progress,
    )
    lap("translate")
    synthetic_sitk = from_nibabel(np.asarray(synthetic.dataobj, np.float32), work_affine)
    save_nifti_atomic(output, _on_input_grid(synthetic_sitk, brain.mask, native, image))
    lap("resample back and write")
    write_json_atomic(
        sidecar_path(output),
        _sidecar(run, direction, source, spacing, n4, brain.metric, seconds),
    )
    return output


def _check_paths(source: Path, output: Path, overwrite: bool) -> None:
    if source.is_dir():
        raise UsageError("--raw translates one NIfTI file; give a file as --input")
    if output.exists() and not overwrite:
        raise UsageError(f"output {output} exists (use --overwrite)")
    try:
        check_writable_parent(output, probe=True)
    except PermissionError as exc:
        raise UsageError(f"cannot write the output {output}: {exc}") from None


def _on_input_grid(synthetic, brain_mask, native, image: nib.Nifti1Image) -> nib.Nifti1Image:
    """The synthetic volume (SimpleITK, any grid) resampled (linear) onto the input's own grid
    (``native``), zero outside the brain mask (nearest), with the input's affine and header."""
    s = sitk()
    back = s.Resample(synthetic, native, s.Transform(), s.sitkLinear, 0.0, s.sitkFloat32)
    inside = s.Resample(brain_mask, native, s.Transform(), s.sitkNearestNeighbor, 0)
    data, inside_data = to_nibabel(back)[0], to_nibabel(inside)[0]
    header = image.header.copy()
    header.set_data_dtype(np.float32)
    header.set_slope_inter(1.0, 0.0)
    return nib.Nifti1Image((data * (inside_data > 0)).astype(np.float32), image.affine, header)


def _sidecar(run, direction, source: Path, spacing, n4, brain_metric, seconds) -> dict:
    return {
        "Sources": [str(source.resolve())],
        "Direction": str(direction),
        "Model": run.display_name,
        "Run": str(Path(run.run_dir).resolve()),
        "CheckpointSHA256": file_digest(layout.checkpoint_path(run.run_dir)),
        "Steps": [
            "read; reoriented to LPS axes",
            *(["N4 bias-field correction (SimpleITK, 4x shrunk, inside the head)"] if n4 else []),
            "brain extraction: MNI152 2009a brain (nilearn) registered affinely (mutual "
            f"information, final metric {brain_metric:.4f}) and carried onto the input",
            f"resampled (linear) onto an isotropic {spacing:g} mm grid over the input's field "
            "of view",
            f"translated {direction} by {run.display_name} (axial slices, the training "
            "preprocessing, brain mask given)",
            "resampled (linear) back onto the input's own grid; zero outside the brain mask "
            "(nearest neighbour); the input's affine and header, float32",
        ],
        "Seconds": seconds,
        "GeneratedBy": {"Name": "mrtranslate", "Version": __version__},
    }
