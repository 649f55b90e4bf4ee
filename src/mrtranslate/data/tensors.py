"""From a data-set split to model tensors: resizing to the run's size and scaling to [-1, 1]."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mrtranslate.data.dataset import Split

AUTO_MIN_SIDE = 48  # the automatic down-sampling keeps at least this many pixels per side


def auto_downsample(data_shape: tuple[int, int], largest: int = 4) -> int:
    """The largest factor <= ``largest`` that keeps the shorter side >= 48 pixels (at least 1)."""
    for factor in range(largest, 1, -1):
        if min(data_shape) / factor >= AUTO_MIN_SIDE:
            return factor
    return 1


def working_shape(data_shape: tuple[int, int], downsample: float) -> tuple[int, int]:
    """The image size a run trains at: the data size / ``downsample``, rounded to a multiple of 4
    (``downsample=0`` picks the factor with :func:`auto_downsample`).

    Raises ``ValueError`` when the result would be smaller than 32 pixels.
    """
    if downsample == 0:
        downsample = auto_downsample(data_shape)
    shape = tuple(max(4, int(round(s / downsample / 4)) * 4) for s in data_shape)
    if min(shape) < 32:
        raise ValueError(
            f"images of {data_shape[0]}x{data_shape[1]} down-sampled {downsample:g}x "
            f"give {shape[0]}x{shape[1]}, below the 32-pixel minimum"
        )
    return shape  # type: ignore[return-value]


def crop_shape(image_shape: tuple[int, int], crop: int) -> tuple[int, int]:
    """The training crop (h, w) for whole images of ``image_shape`` (no crop: the image)."""
    if not crop:
        return tuple(image_shape)
    return tuple(min(crop, side) for side in image_shape)


def resize(images: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(N, 1, H, W) float -> (N, 1, h, w), anti-aliased bilinear (identity if sizes match)."""
    if tuple(images.shape[-2:]) == tuple(shape):
        return images
    return F.interpolate(images, size=shape, mode="bilinear", antialias=True, align_corners=False)


def to_model_range(images01: torch.Tensor) -> torch.Tensor:
    """[0, 1] data intensities -> [-1, 1] model inputs (clipped)."""
    return (images01 * 2.0 - 1.0).clamp(-1.0, 1.0)


def to_data_range(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] model outputs -> [0, 1] data intensities."""
    return ((images + 1.0) * 0.5).clamp(0.0, 1.0)


def load_images(
    split: Split,
    contrast: str,
    shape: tuple[int, int],
    indices: np.ndarray | None = None,
    chunk: int = 256,
) -> torch.Tensor:
    """Images of one contrast as (N, 1, h, w) float32 in [-1, 1], resized to ``shape``."""
    source = split.image(contrast)
    indices = np.arange(len(split)) if indices is None else indices
    parts = []
    for start in range(0, len(indices), chunk):
        block = torch.from_numpy(
            np.asarray(source[indices[start : start + chunk]], dtype=np.float32)
        )
        parts.append(to_model_range(resize(block[:, None], shape)))
    if not parts:
        return torch.zeros(0, 1, *shape)
    return torch.cat(parts)


def load_masks(
    split: Split, shape: tuple[int, int], indices: np.ndarray | None = None
) -> torch.Tensor:
    """Brain masks as (N, 1, h, w) bool, resized with the same filter (> 0.5)."""
    indices = np.arange(len(split)) if indices is None else indices
    masks = torch.from_numpy(np.asarray(split.mask[indices], dtype=np.float32))[:, None]
    return resize(masks, shape) > 0.5
