"""2-D image files: reading PNG/TIFF (8- or 16-bit grey) and writing 16-bit PNG, never 8-bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mrtranslate.errors import UsageError
from mrtranslate.fileio import atomic_write

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")


def read_grey(path: Path) -> np.ndarray:
    """A grey image as float32 in [0, 1]: 8-bit / 255, 16-bit / 65535, float as is.

    RGB images are accepted only when their three channels are equal (grey stored as RGB).
    """
    try:
        with Image.open(path) as img:
            array = np.asarray(img)
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for bad files
        raise UsageError(f"cannot read image {path}: {type(exc).__name__}") from exc
    if array.ndim == 3:
        if (
            array.shape[2] in (3, 4)
            and np.array_equal(array[..., 0], array[..., 1])
            and np.array_equal(array[..., 0], array[..., 2])
        ):
            array = array[..., 0]
        else:
            raise UsageError(f"{path} is a colour image; grey-scale images are needed")
    if array.ndim != 2:
        raise UsageError(f"{path} is not a 2-D image")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype in (np.uint16, np.dtype(">u2"), np.int32) or array.dtype.kind in "iu":
        return np.clip(array.astype(np.float32) / 65535.0, 0.0, 1.0)
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise UsageError(f"{path} contains NaN or infinite pixels")
    return array


def write_png16(path: Path, image01: np.ndarray) -> None:
    """Write [0, 1] values as a 16-bit grey PNG (value * 65535, rounded), atomically."""
    values = np.round(np.clip(image01, 0.0, 1.0) * 65535.0).astype(np.uint16)
    picture = Image.fromarray(values)
    atomic_write(path, lambda tmp: picture.save(tmp, format="PNG"))


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
