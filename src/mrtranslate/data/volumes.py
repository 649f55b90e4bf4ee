"""NIfTI volumes: safe loading and checking, canonical orientation, axial slices, masks, scaling.

Conventions shared by the importers and ``mrtranslate translate``:

- volumes are reoriented to the closest canonical (RAS+) orientation, so the axial axis is the
  third one (``--axis`` picks another);
- an axial slice ``vol[:, :, k]`` (X = left->right, Y = posterior->anterior) is shown with
  anterior at the top and the subject's left on the left: ``np.flipud(slice.T)``, the phantom's
  layout (rows anterior->posterior, columns left->right);
- each 2-D image is cropped or zero-padded symmetrically to the data set's size;
- intensities: negative values (resampling overshoot) are clipped to 0, then each image is divided
  by the 99.5th percentile of the brain voxels of its whole volume (``volume`` scale, the default
  when several slices per volume are imported) or of its own slice (``slice`` scale, the paper's
  per-image setting) and clipped to [0, 1], in float32, never quantised to 8 bits; the divisor
  is stored so synthetic slices can be mapped back.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from mrtranslate.data.phantom import robust_scale
from mrtranslate.errors import UsageError

AFFINE_TOLERANCE = 1e-3  # mm: T1w/T2w affines must agree to this
# Limits far above real MR volumes (HCP 0.7 mm: 260x311x260 = 21 M voxels; a 0.25 mm ex-vivo
# brain about 600x800x600 = 288 M): a header beyond them is refused before any voxel is read.
MAX_VOLUME_SIDE = 4096
MAX_VOLUME_VOXELS = 512 * 1024 * 1024  # 2 GiB as float32


def _gzip_payload(path: Path, needed: int, what: str) -> int:
    """Uncompressed bytes of a gzip file (all members; valid files may hold several), read in
    chunks and never more than ``needed``; a damaged stream is a one-line usage error."""
    held = 0
    try:
        with gzip.open(path, "rb") as stream:
            while held < needed:
                chunk = stream.read(min(1 << 22, needed - held))
                if not chunk:
                    break
                held += len(chunk)
    except (EOFError, OSError, zlib.error) as exc:
        raise UsageError(f"{what} {path} is truncated or damaged ({exc})") from None
    return held


def _check_declared_size(image, path: Path, what: str) -> None:
    """Refuse, from the header alone, a volume too large to be real or larger than its file.

    Checked before any voxel is read, so a tiny file that declares billions of voxels costs
    nothing. For ``.nii`` the file must hold every declared byte; a ``.nii.gz`` is decompressed
    (every gzip member, as nibabel reads it) up to the declared size to check the same.
    """
    shape = tuple(int(v) for v in image.shape)
    if not shape or min(shape) < 1 or max(shape) > MAX_VOLUME_SIDE:
        raise UsageError(
            f"{what} {path} declares {'x'.join(map(str, shape)) or 'no'} voxels; each side must "
            f"be 1 to {MAX_VOLUME_SIDE}"
        )
    voxels = int(np.prod(shape, dtype=np.int64))
    if voxels > MAX_VOLUME_VOXELS:
        raise UsageError(
            f"{what} {path} declares {'x'.join(map(str, shape))} = {voxels:,} voxels, more "
            f"than the limit of {MAX_VOLUME_VOXELS:,} (real MR volumes have far fewer)"
        )
    header = image.header
    offset = getattr(image.dataobj, "offset", None)  # the header's field can read 0 after load
    offset = int(header.get_data_offset() if offset is None else offset)
    needed = offset + voxels * header.get_data_dtype().itemsize
    size = path.stat().st_size
    if path.suffix == ".gz":
        held = _gzip_payload(path, needed, what)
        if held < needed:
            raise UsageError(
                f"{what} {path} is truncated: its gzip data holds {held:,} of the {needed:,} "
                "bytes its header needs"
            )
    elif size < needed:
        raise UsageError(f"{what} {path} is truncated: {size:,} of {needed:,} bytes")


def load_volume(path: str | Path, what: str = "volume") -> nib.Nifti1Image:
    """Load a 3-D NIfTI image with one-line errors for missing, corrupt, truncated, oversized,
    2-D/4-D or NaN data (sizes are checked against the header before any voxel is read)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{what} not found: {path}")
    try:
        image = nib.load(str(path))
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types for bad files
        raise UsageError(
            f"cannot read {what} {path} as NIfTI: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        raise UsageError(f"{what} {path} is not a NIfTI file")
    _check_declared_size(image, path, what)
    try:
        data = np.asarray(image.dataobj, dtype=np.float32)
    except MemoryError:
        raise UsageError(f"not enough memory to read {what} {path}") from None
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types for bad files
        raise UsageError(
            f"cannot read {what} {path} as NIfTI: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise UsageError(
            f"{what} {path} has {data.ndim} dimensions {data.shape}; a 3-D volume is needed"
        )
    if not np.isfinite(data).all():
        raise UsageError(f"{what} {path} contains NaN or infinite voxels")
    if not np.any(data):
        raise UsageError(f"{what} {path} is all zeros")
    return nib.Nifti1Image(data, image.affine, image.header)


def check_same_grid(a: nib.Nifti1Image, b: nib.Nifti1Image, label: str) -> None:
    """T1w and T2w must be co-registered: same shape and affines equal within a tolerance."""
    if a.shape != b.shape:
        raise UsageError(
            f"{label}: T1w {a.shape} and T2w {b.shape} differ in shape; the two "
            "contrasts must be co-registered"
        )
    if not np.allclose(a.affine, b.affine, atol=AFFINE_TOLERANCE):
        raise UsageError(
            f"{label}: T1w and T2w affines differ; the two contrasts must be "
            "co-registered (resample one onto the other first)"
        )


# the largest ratio of voxel sides for which slices along every axis look alike (slices along
# several planes: import --planes 3, net.planes=3)
MAX_VOXEL_RATIO = 1.25


def default_brain_mask(*volumes: np.ndarray, axis: int = 2) -> np.ndarray:
    """The brain of skull-stripped volumes when no mask file is given: every voxel that is
    non-zero in any of ``volumes`` (negative values count: processed T1w volumes hold zero or
    slightly negative values in dark CSF), with enclosed holes filled in 3-D and then in each
    slice along ``axis``, so dark ventricles and sulci inside the brain stay inside it."""
    nonzero = np.zeros(volumes[0].shape, dtype=bool)
    for volume in volumes:
        nonzero |= np.asarray(volume) != 0
    filled = ndimage.binary_fill_holes(nonzero)
    for k in range(filled.shape[axis]):
        index = [slice(None)] * 3
        index[axis] = k
        filled[tuple(index)] = ndimage.binary_fill_holes(filled[tuple(index)])
    return filled


def canonical(image: nib.Nifti1Image) -> np.ndarray:
    """Voxel data in the closest canonical (RAS+) orientation, float32."""
    return np.asarray(nib.as_closest_canonical(image).dataobj, dtype=np.float32)


def from_canonical(data: np.ndarray, reference: nib.Nifti1Image) -> np.ndarray:
    """Undo :func:`canonical`: bring RAS+ data back to ``reference``'s voxel orientation."""
    original = nib.orientations.io_orientation(reference.affine)
    ras = nib.orientations.axcodes2ornt(("R", "A", "S"))
    transform = nib.orientations.ornt_transform(ras, original)
    return nib.orientations.apply_orientation(data, transform)


def axial_slice(volume: np.ndarray, index: int, axis: int = 2) -> np.ndarray:
    """2-D display image of slice ``index`` along ``axis`` (anterior at the top for axis 2)."""
    plane = np.take(volume, index, axis=axis)
    return np.flipud(plane.T)


def display_slices(volume: np.ndarray, indices: list[int], axis: int = 2) -> list[np.ndarray]:
    """:func:`axial_slice` of each of ``indices``, from one contiguous copy with ``axis`` first:
    ``np.take`` of a slice across a NIfTI (Fortran-ordered) array cost 18 ms a slice, 30 of the
    37 s of importing two BraTS volume pairs along three planes; the copy costs one pass."""
    planes = np.ascontiguousarray(np.moveaxis(np.asarray(volume), axis, 0))
    return [np.flipud(planes[k].T) for k in indices]


def put_slice(volume: np.ndarray, index: int, image: np.ndarray, axis: int = 2) -> None:
    """Inverse of :func:`axial_slice`: write a display image back into ``volume``."""
    plane = np.flipud(image).T
    slicer = [slice(None)] * 3
    slicer[axis] = index
    volume[tuple(slicer)] = plane


def fit_to(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Centre-crop or zero-pad a 2-D image to ``shape``."""
    out = np.zeros(shape, dtype=image.dtype)
    src, dst = [], []
    for have, want in zip(image.shape, shape):
        if have >= want:
            start = (have - want) // 2
            src.append(slice(start, start + want))
            dst.append(slice(0, want))
        else:
            start = (want - have) // 2
            src.append(slice(0, have))
            dst.append(slice(start, start + have))
    out[tuple(dst)] = image[tuple(src)]
    return out


SCALES = ("volume", "slice")


def scale_slice(
    image: np.ndarray, mask: np.ndarray, divisor: float | None = None
) -> tuple[np.ndarray, float]:
    """Clip negatives, divide by ``divisor`` (default: the 99.5th percentile inside ``mask``),
    clip to [0, 1]; returns the scaled float32 image and the divisor."""
    image = np.clip(image, 0.0, None)
    if divisor is None:
        divisor = robust_scale(image, mask)
    return np.clip(image / divisor, 0.0, 1.0).astype(np.float32), divisor


def volume_divisor(volume: np.ndarray, mask: np.ndarray) -> float:
    """One divisor for a whole volume: the 99.5th percentile of its brain voxels (negatives
    clipped to 0), so every slice of a volume shares one intensity scale."""
    return robust_scale(np.clip(volume, 0.0, None), mask)


BRAIN_SLICES = "brain"  # --slices brain: every slice across the brain
BRAIN_SLICE_FRACTION = 0.02  # ... from the first to the last with this share of the largest area


def brain_slice_range(mask: np.ndarray, axis: int) -> list[int]:
    """The contiguous slice indices along ``axis`` from the first to the last slice whose brain
    area is at least :data:`BRAIN_SLICE_FRACTION` of the largest slice's (so slivers at the top
    and bottom of the brain are left out, and neighbours stay consecutive)."""
    areas = mask.sum(axis=tuple(a for a in range(mask.ndim) if a != axis))
    if areas.max() == 0:
        raise UsageError("--slices brain: the brain mask is empty")
    kept = np.flatnonzero(areas >= BRAIN_SLICE_FRACTION * areas.max())
    return list(range(int(kept[0]), int(kept[-1]) + 1))


def parse_slices(
    text: str | None,
    depth: int,
    default: int | None,
    mask: np.ndarray | None = None,
    axis: int = 2,
) -> list[int]:
    """'120', '100:140' (end exclusive), 'brain' (:func:`brain_slice_range` of ``mask``) or
    None (the default, or the middle slice)."""
    if text == BRAIN_SLICES:
        if mask is None:
            raise UsageError("--slices brain needs volumes with a brain mask")
        return brain_slice_range(mask, axis)
    if text is None:
        indices = [default if default is not None else depth // 2]
    else:
        try:
            if ":" in text:
                a, b = (int(v) for v in text.split(":"))
                indices = list(range(a, b))
            else:
                indices = [int(text)]
        except ValueError:
            raise UsageError(
                f"--slices must look like 120, 100:140 or brain, got {text!r}"
            ) from None
    if not indices:
        raise UsageError(f"--slices {text!r} selects no slice")
    bad = [i for i in indices if not 0 <= i < depth]
    if bad:
        raise UsageError(
            f"slice index {bad[0]} is out of range for a volume with {depth} slices "
            f"along the chosen axis (0..{depth - 1})"
        )
    return indices
