"""Whole-volume translation: NIfTI in, synthetic NIfTI out, with the training preprocessing.

For each axial slice of the input (after reorientation to RAS+): the display image is cropped or
padded to the run's data size, scaled like the training data (negatives clipped, divided by the
99.5th percentile inside the mask of the whole volume when the run's data was scaled per volume,
else of the slice; clipped to [0, 1]), resized to the run's working size, translated in batches
(with its neighbouring slices as channels when the run has 2.5D context, ``net.context``),
resized back, multiplied by the same divisor and put back in place.

Output intensities are therefore in the input's units: a synthetic slice equals the model's
[0, 1] output times the input's robust maximum (of the volume, or of the slice). Voxels outside
the mask (given, or the input's non-zero voxels with enclosed holes filled, see
:func:`~mrtranslate.data.volumes.default_brain_mask`) are 0. The output keeps the input's
affine, orientation and header (data type float32).

Python use::

    from mrtranslate.inference import translate_volume
    from mrtranslate.runs import load_run
    run = load_run("runs/cyclegan")
    synthetic_t2 = translate_volume(run, "sub-01_T1w.nii.gz", "t1-to-t2")   # nibabel image
    array_out = translate_volume(run, array_in, "t1-to-t2")                  # (X, Y, Z) array
"""

from __future__ import annotations

import gzip
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from mrtranslate.data.tensors import (
    neighbour_indices,
    resize,
    to_data_range,
    to_model_range,
    with_brain_floor,
)
from mrtranslate.data.volumes import (
    MAX_VOXEL_RATIO,
    axial_slice,
    canonical,
    check_same_grid,
    default_brain_mask,
    fit_to,
    from_canonical,
    load_volume,
    put_slice,
    scale_slice,
    volume_divisor,
)
from mrtranslate.directions import Direction
from mrtranslate.errors import InputWarning, UsageError
from mrtranslate.fileio import atomic_write, check_writable_parent
from mrtranslate.inference.batches import translate_stack
from mrtranslate.progress import progress_bar
from mrtranslate.runs import LoadedRun

PLANE_NAMES = {2: "axial", 1: "coronal", 0: "sagittal"}
# net.planes=3: the axes whose slices are translated, axial first (RAS+: 2 axial, 1 coronal, 0
# sagittal); their translations are averaged voxel by voxel
PLANE_AXES = {1: (2,), 3: (2, 1, 0)}


def _prepared_slices(
    run: LoadedRun, volume: np.ndarray, mask: np.ndarray, axis: int, shape: tuple[int, int]
):
    """Every slice along ``axis`` cropped or padded to ``shape`` and scaled like the training
    data, (n, H, W) float32 in [0, 1], zero outside the mask and at least the run's brain floor
    inside (``net.brain_floor``), with each slice's divisor and its mask (n, H, W) bool."""
    # The training data's scale: one divisor for the whole volume, or one per slice (None).
    shared = volume_divisor(volume, mask) if run.intensity_scale == "volume" else None
    count = volume.shape[axis]
    images = np.zeros((count, *shape), dtype=np.float32)
    masks = np.zeros((count, *shape), dtype=bool)
    divisors = np.ones(count, dtype=np.float64)
    for k in range(count):
        fitted_mask = masks[k] = fit_to(axial_slice(mask, k, axis), shape)
        if fitted_mask.any():
            scaled, divisors[k] = scale_slice(
                fit_to(axial_slice(volume, k, axis), shape), fitted_mask, shared
            )
            images[k] = with_brain_floor(
                scaled * fitted_mask, fitted_mask, run.config.net.brain_floor
            )
    return images, divisors, masks


def slice_stacks(images: np.ndarray, indices: list[int], context: int) -> np.ndarray:
    """(len(indices), context, H, W): slice k with slices k - h .. k + h of ``images`` (Z, H, W),
    in slice order (h = context // 2); past the volume's ends the edge slice repeats."""
    one_subject = np.zeros(images.shape[0], dtype=np.int64)  # the whole volume is one slab
    return images[neighbour_indices(one_subject, context)[np.asarray(indices)]]


def plane_shapes(run: LoadedRun, volume_shape: tuple[int, ...], axis: int):
    """(slice size the images are prepared at, size the network sees) for slices along
    ``axis``: the run's data and working sizes for axial slices (as in training); for the other
    planes (native-resolution runs only), the data size grown to hold the whole slice (each
    side rounded up to a multiple of 4), seen at that size."""
    return plane_canvas(run.data_image_shape, run.model_image_shape, volume_shape, axis)


def plane_canvas(
    data_shape: tuple[int, int],
    model_shape: tuple[int, int],
    volume_shape: tuple[int, ...],
    axis: int,
) -> tuple[tuple[int, int], tuple[int, int]]:
    """:func:`plane_shapes` for a run whose data images are ``data_shape`` and whose networks
    work at ``model_shape``."""
    data_shape = tuple(data_shape)
    if axis == 2:
        return data_shape, tuple(model_shape)
    rows, cols = [volume_shape[a] for a in range(3) if a != axis][::-1]
    shape = tuple(max(d, -(-n // 4) * 4) for d, n in zip(data_shape, (rows, cols)))
    return shape, shape


@dataclass
class KnownSlices:
    """Axial slices of one volume that this run has already translated one way (evaluation
    translates the test split's slices, which are slices of the test volumes): they are reused,
    not translated again, wherever the network's input is the same.

    Attributes:
        inputs: slice index (RAS+ axis 2) -> the network input evaluation gave it, (context,
            h, w) float32 in [-1, 1] at the run's working size.
        outputs: slice index -> the translation evaluation kept, (h, w) float32 in [0, 1] at
            the working size.
        reused: slices taken from ``outputs`` so far (an input that differs, for example a
            2.5D stack cut short at the end of an imported slab, is translated anew).
    """

    inputs: dict[int, np.ndarray]
    outputs: dict[int, np.ndarray]
    reused: int = 0

    def take(self, index: int, network_input: torch.Tensor) -> np.ndarray | None:
        """The kept translation of slice ``index`` (in [0, 1]) when evaluation gave the
        network this very input (to float32 rounding), else None."""
        known = self.inputs.get(index)
        if known is None or tuple(known.shape) != tuple(network_input.shape):
            return None
        if not np.allclose(known, network_input.numpy(), rtol=0.0, atol=1e-5):
            return None
        self.reused += 1
        return self.outputs[index]


def _translate_plane(
    run: LoadedRun,
    volume: np.ndarray,
    mask: np.ndarray,
    direction: str,
    batch_size: int,
    progress: bool,
    axis: int,
    known: KnownSlices | None = None,
) -> np.ndarray:
    """The volume translated slice by slice along ``axis`` (0 outside the mask); axial slices
    in ``known`` with the same input are taken from it, not translated again."""
    shape, model_shape = plane_shapes(run, volume.shape, axis)
    # The slices along ``axis`` first, contiguous: taking a slice along the last axis of a
    # 240x240x155 volume touches a new cache line (and page) per voxel (13 ms a slice, 8 of
    # the 10.7 s a volume took); moved once, each slice is one contiguous block.
    volume, mask = (np.ascontiguousarray(np.moveaxis(a, axis, 0)) for a in (volume, mask))
    out = np.zeros(volume.shape, dtype=np.float32)
    indices = np.flatnonzero(mask.reshape(len(mask), -1).any(axis=1)).tolist()
    images, divisors, masks = _prepared_slices(run, volume, mask, 0, shape)
    # the output is kept inside the mask only: tiles without brain need no translating
    native = tuple(shape) == tuple(model_shape)
    for start in progress_bar(
        range(0, len(indices), batch_size),
        desc=f"{PLANE_NAMES[axis]} slices",
        unit="batch",
        disable=not progress,
        leave=False,
    ):
        chunk = indices[start : start + batch_size]
        stacks = torch.from_numpy(slice_stacks(images, chunk, run.config.net.context))
        batch = to_model_range(resize(stacks, model_shape))
        kept = [known.take(k, x) if known and axis == 2 else None for k, x in zip(chunk, batch)]
        fake = torch.empty(len(chunk), 1, *model_shape)
        todo = [i for i, image in enumerate(kept) if image is None]
        for i, image in enumerate(kept):
            if image is not None:
                fake[i, 0] = to_model_range(torch.as_tensor(image, dtype=torch.float32))
        if todo:
            fake[todo] = translate_stack(
                run.method,
                batch[todo],
                direction,
                batch_size,
                device=run.device,
                precision=run.precision,
                tile=run.tile,
                masks=torch.from_numpy(masks[[chunk[i] for i in todo]]) if native else None,
            ).to(fake.dtype)
        fake01 = to_data_range(resize(fake, shape))[:, 0].numpy()
        for k, image01 in zip(chunk, fake01):
            slice_mask = axial_slice(mask, k, 0)
            restored = fit_to(image01, slice_mask.shape) * divisors[k] * slice_mask
            put_slice(out, k, restored.astype(np.float32), 0)
    return np.moveaxis(out, 0, axis)


def _translate_canonical(
    run: LoadedRun,
    volume: np.ndarray,
    mask: np.ndarray,
    direction: str,
    batch_size: int,
    progress: bool,
    planes: int = 1,
    known: KnownSlices | None = None,
) -> np.ndarray:
    """Translate a RAS+ volume along ``planes`` axes (1: axial; 3: axial, coronal and sagittal,
    averaged voxel by voxel)."""
    axes = PLANE_AXES[planes]
    total = np.zeros(volume.shape, dtype=np.float32)
    for axis in axes:
        total += _translate_plane(run, volume, mask, direction, batch_size, progress, axis, known)
    return total / len(axes)


def resolve_planes(run: LoadedRun, zooms=None) -> int:
    """The planes to translate along: the run's ``net.planes``, or 1 for a volume whose voxels
    are far from cubic (``zooms``: voxel sizes in mm; slices along a thick axis look nothing
    like the training slices).

    Raises:
        UsageError: ``net.planes`` > 1 for a run that does not work at its data's resolution.
    """
    planes = run.config.net.planes
    if planes == 1:
        return 1
    if tuple(run.model_image_shape) != tuple(run.data_image_shape):
        raise UsageError(
            f"{run.run_dir} has net.planes={planes} but works below its data's resolution; "
            "translating coronal and sagittal slices needs a run at native resolution"
        )
    if zooms is not None and max(zooms) > MAX_VOXEL_RATIO * min(zooms):
        size = "x".join(f"{z:g}" for z in zooms)
        warnings.warn(
            f"net.planes={planes}: the voxels are {size} mm, far from cubic; translating "
            "axial slices only",
            InputWarning,
            stacklevel=3,
        )
        return 1
    return planes


def translate_volume(
    run: LoadedRun,
    volume,
    direction: str,
    mask=None,
    batch_size: int = 16,
    progress: bool = False,
    zooms=None,
    known: KnownSlices | None = None,
):
    """Translate a 3-D volume. ``volume``: a NIfTI path, a nibabel image or an (X, Y, Z) array in
    RAS+ orientation. Returns the same kind (a nibabel image for paths and images).

    With ``net.planes=3`` the volume is translated along its axial, coronal and sagittal
    slices and the three translations averaged, unless its voxels are far from cubic (read
    from the image, or ``zooms`` for an array; an array without ``zooms`` counts as cubic).
    ``known``: axial slices this run already translated (see :class:`KnownSlices`; arrays
    only)."""
    direction = Direction.parse(direction)
    if isinstance(volume, np.ndarray):
        if volume.ndim != 3 or not np.isfinite(volume).all() or not volume.any():
            raise UsageError("the volume must be 3-D, finite and not all zeros")
        array = volume.astype(np.float32)
        mask_array = default_brain_mask(array) if mask is None else np.asarray(mask) > 0
        planes = resolve_planes(run, zooms)
        return _translate_canonical(
            run, array, mask_array, direction, batch_size, progress, planes, known
        )
    image = volume if isinstance(volume, nib.Nifti1Image) else load_volume(volume, "input")
    data = canonical(image)
    if mask is None:
        mask_data = default_brain_mask(data)
    else:
        mask_image = mask if isinstance(mask, nib.Nifti1Image) else load_volume(mask, "mask")
        check_same_grid(image, mask_image, "input and mask")
        mask_data = canonical(mask_image) > 0
    planes = resolve_planes(run, image.header.get_zooms()[:3])
    result = _translate_canonical(run, data, mask_data, direction, batch_size, progress, planes)
    header = image.header.copy()
    header.set_data_dtype(np.float32)
    header.set_slope_inter(1.0, 0.0)
    return nib.Nifti1Image(from_canonical(result, image), image.affine, header)


def _nifti_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.endswith((".nii", ".nii.gz")))


@dataclass(frozen=True)
class TranslationJob:
    """One volume to translate: its file, the output file and an optional brain mask file."""

    source: Path
    output: Path
    mask: Path | None = None


def translate_paths(
    run: LoadedRun,
    direction: str,
    input_path: str | Path,
    output_path: str | Path,
    mask: str | Path | None = None,
    batch_size: int = 16,
    overwrite: bool = False,
    progress: bool = True,
    before_work: Callable[[], None] | None = None,
) -> list[Path]:
    """Translate one NIfTI file, or every NIfTI file of a folder into an output folder.

    ``before_work`` is called once every input has been checked, before anything is translated
    (the CLI prints the working resolution there, so bad input still gives a single line).
    """
    source, target = Path(input_path), Path(output_path)
    if source.is_dir():
        if mask is not None:
            raise UsageError("--mask works with a single input volume, not a folder")
        files = _nifti_files(source)
        if not files:
            raise UsageError(f"no .nii or .nii.gz files in {source}")
        if target.exists() and not target.is_dir():
            raise UsageError(f"--output {target} must be a folder when --input is a folder")
        jobs = [TranslationJob(f, target / f.name) for f in files]
    elif source.exists():
        jobs = [TranslationJob(source, target, Path(mask) if mask is not None else None)]
    else:
        raise UsageError(f"input not found: {source}")
    return run_jobs(run, direction, jobs, batch_size, overwrite, progress, before_work)


def run_jobs(
    run: LoadedRun,
    direction: str,
    jobs: list[TranslationJob],
    batch_size: int = 16,
    overwrite: bool = False,
    progress: bool = True,
    before_work: Callable[[], None] | None = None,
    after_each: Callable[[TranslationJob], None] | None = None,
) -> list[Path]:
    """Check every job (outputs writable and not in the way, inputs readable), then translate
    and write each output atomically; ``after_each`` runs after each output is written."""
    for job in jobs:
        if job.output.is_dir():
            raise UsageError(f"output {job.output} is a folder; give a file name")
    existing = [job.output for job in jobs if job.output.exists()]
    if existing and not overwrite:
        raise UsageError(f"output {existing[0]} exists (use --overwrite)")
    for job in jobs:  # before any work: every output must be writable
        try:
            check_writable_parent(job.output, probe=True)
        except PermissionError as exc:
            raise UsageError(f"cannot write the output {job.output}: {exc}") from None
    images = [load_volume(job.source, "input") for job in jobs]  # check all inputs first
    if before_work is not None:
        before_work()
    written = []
    for job, image in progress_bar(
        list(zip(jobs, images)), desc="volumes", unit="vol", disable=not progress or len(jobs) < 2
    ):
        result = translate_volume(run, image, direction, job.mask, batch_size, progress)
        save_nifti_atomic(job.output, result)
        if after_each is not None:
            after_each(job)
        written.append(job.output)
    return written


def save_nifti_atomic(path: Path, image: nib.Nifti1Image) -> None:
    """Write a single-file NIfTI (``.nii``, or gzip-compressed for ``.nii.gz``) atomically."""
    payload = image.to_bytes()
    if path.name.endswith(".gz"):  # mtime 0: the same volume always gives the same bytes
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    atomic_write(path, lambda tmp: tmp.write_bytes(payload))
