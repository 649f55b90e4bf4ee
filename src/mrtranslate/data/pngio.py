"""2-D image files: reading PNG/TIFF (8- or 16-bit grey) and writing 16-bit PNG, never 8-bit."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from mrtranslate.errors import UsageError
from mrtranslate.fileio import atomic_write

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
# Far above any MR slice (a 0.1 mm whole-brain slice is about 2000 x 2000): a file declaring more
# pixels is refused before it is decoded (a small PNG can declare a huge image).
MAX_IMAGE_PIXELS = 8192 * 8192


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by colour type


def _png_pixel_data_complete(path: Path) -> bool:
    """Whether a non-interlaced PNG's image data holds every row its header declares.

    A PNG whose compressed stream is complete but short (rows missing) is decoded by Pillow
    without an error, the missing rows as zeros; this reads the chunks and checks the length.
    """
    data = path.read_bytes()
    pos, idat = 8, []
    width = height = depth = colour = interlace = None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR" and len(body) >= 13:
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body[:13])
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if width is None or interlace or colour not in _PNG_CHANNELS:
        return True  # interlaced or unusual: left to Pillow
    row = (width * _PNG_CHANNELS[colour] * depth + 7) // 8 + 1  # + the filter byte
    try:
        pixels = zlib.decompressobj().decompress(b"".join(idat), height * row + 1)
    except zlib.error:
        return False
    return len(pixels) >= height * row


def read_grey(path: Path) -> np.ndarray:
    """A grey image as float32 in [0, 1]: 8-bit / 255, 16-bit / 65535, float as is.

    RGB images are accepted only when their three channels are equal (grey stored as RGB).
    Truncated, oversized and all-zero images are refused with a one-line error.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UsageError(f"{path} declares too many pixels ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for bad files
        raise UsageError(f"cannot read image {path}: {type(exc).__name__}") from exc
    try:
        with img:
            width, height = img.size
            if width * height > MAX_IMAGE_PIXELS:
                raise UsageError(
                    f"{path} declares {width}x{height} pixels, more than the limit of "
                    f"{MAX_IMAGE_PIXELS:,}"
                )
            img.load()  # decode everything now: a truncated file raises here
            if img.format == "PNG" and not _png_pixel_data_complete(path):
                raise UsageError(f"{path} is truncated: its image data lacks rows")
            array = np.asarray(img)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for bad files
        detail = str(exc).splitlines()[0] if str(exc) else ""
        raise UsageError(
            f"cannot read image {path}: {type(exc).__name__} {detail}".rstrip()
        ) from exc
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
    if not np.any(array):
        raise UsageError(f"{path} is empty (every pixel is zero)")
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
