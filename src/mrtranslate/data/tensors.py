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


TILE_STRIDE = 0.75  # tiles start every TILE_STRIDE * tile pixels (overlap: the window's ramp)


def tile_starts(length: int, tile: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``length`` pixels, every
    :data:`TILE_STRIDE` tiles, the last one flush with the end (translation of a run
    trained on crops: inference/batches.py)."""
    if length <= tile:
        return [0]
    stride = max(1, round(tile * TILE_STRIDE))
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def resize(images: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(N, C, H, W) float -> (N, C, h, w), anti-aliased bilinear (identity if sizes match)."""
    if tuple(images.shape[-2:]) == tuple(shape):
        return images
    return F.interpolate(images, size=shape, mode="bilinear", antialias=True, align_corners=False)


def to_model_range(images01: torch.Tensor) -> torch.Tensor:
    """[0, 1] data intensities -> [-1, 1] model inputs (clipped)."""
    return (images01 * 2.0 - 1.0).clamp(-1.0, 1.0)


def to_data_range(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] model outputs -> [0, 1] data intensities."""
    return ((images + 1.0) * 0.5).clamp(0.0, 1.0)


def neighbour_indices(subjects: np.ndarray, context: int) -> np.ndarray:
    """(N, context) int64: for image i, the images i - h .. i + h (h = context // 2) of the same
    subject, in slice order; past either end of a subject's slab the edge slice repeats.

    Relies on the layout every importer writes: the slices of one subject are consecutive and in
    increasing slice order (``subjects`` is the split's per-image subject id).
    """
    subjects = np.asarray(subjects)
    n, half = len(subjects), context // 2
    if n == 0:
        return np.zeros((0, context), dtype=np.int64)
    starts = np.r_[True, subjects[1:] != subjects[:-1]]
    first = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    ends = np.r_[subjects[1:] != subjects[:-1], True]
    last = np.minimum.accumulate(np.where(ends, np.arange(n), n)[::-1])[::-1]
    offsets = np.arange(-half, half + 1)
    rows = np.arange(n)[:, None] + offsets[None, :]
    return np.clip(rows, first[:, None], last[:, None]).astype(np.int64)


def has_slabs(subjects: np.ndarray) -> bool:
    """Whether some subject has several (consecutive) slices, so 2.5D context carries anything."""
    subjects = np.asarray(subjects)
    return bool(len(subjects) > 1 and (subjects[1:] == subjects[:-1]).any())


def with_brain_floor(images01: np.ndarray, masks: np.ndarray, floor: float) -> np.ndarray:
    """[0, 1] images with every brain voxel raised to at least ``floor`` (0: unchanged).

    Dark tissue inside the brain (CSF in T1w: zero or negative before scaling) would otherwise be
    exactly the background's value, and a network could not tell the two apart."""
    if floor <= 0:
        return images01
    return np.where(masks > 0, np.maximum(images01, floor), images01).astype(np.float32)


def load_images(
    split: Split,
    contrast: str,
    shape: tuple[int, int],
    indices: np.ndarray | None = None,
    chunk: int = 256,
    context: int = 1,
    floor: float = 0.0,
) -> torch.Tensor:
    """Images of one contrast as (N, context, h, w) float32 in [-1, 1], resized to ``shape``.

    ``context`` > 1: each image with its neighbouring slices as channels, in slice order
    (:func:`neighbour_indices`; channel ``context // 2`` is the image itself). ``floor``: brain
    voxels raised to at least this [0, 1] intensity first (:func:`with_brain_floor`).
    """
    indices = np.arange(len(split)) if indices is None else np.asarray(indices)
    if context > 1:
        rows = neighbour_indices(split.slabs, context)[indices]
        needed, inverse = np.unique(rows, return_inverse=True)
        single = load_images(split, contrast, shape, needed, chunk, floor=floor)[:, 0]
        return single[torch.from_numpy(inverse.reshape(rows.shape))]
    source = split.image(contrast)
    parts = []
    for start in range(0, len(indices), chunk):
        picked = indices[start : start + chunk]
        block = np.asarray(source[picked], dtype=np.float32)
        if floor > 0:
            block = with_brain_floor(block, np.asarray(split.mask[picked]), floor)
        parts.append(to_model_range(resize(torch.from_numpy(block)[:, None], shape)))
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
