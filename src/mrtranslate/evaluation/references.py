"""Reference points that need no training, so that the models' numbers have context.

- ``copy``: the input image itself, used as the "translation".
- ``histmatch``: the input's intensities mapped monotonically so that its histogram matches the
  mean histogram of the target contrast's training images (quantile mapping with 512 quantiles).
  A monotonic map cannot invert CSF contrast, so this is the best a pure intensity remapping
  without spatial context and without contrast inversion can do.
"""

from __future__ import annotations

import numpy as np
import torch

REFERENCES = ("copy", "histmatch")
QUANTILES = np.linspace(0.0, 1.0, 512)


def reference_quantiles(target_train: torch.Tensor) -> np.ndarray:
    """Mean quantile function of the target contrast's training images ((N, 1, h, w) input)."""
    flat = target_train.reshape(target_train.shape[0], -1).numpy().astype(np.float64)
    return np.quantile(flat, QUANTILES, axis=1).mean(axis=1)


def histogram_match(images: torch.Tensor, ref_quantiles: np.ndarray) -> torch.Tensor:
    """Map each image's quantiles onto ``ref_quantiles`` (piecewise-linear, monotonic)."""
    out = np.empty(images.shape, dtype=np.float32)
    for i, img in enumerate(images.numpy().astype(np.float64)):
        own = np.quantile(img.ravel(), QUANTILES)
        own, keep = np.unique(own, return_index=True)  # strictly increasing for interpolation
        out[i] = np.interp(img, own, ref_quantiles[keep]).astype(np.float32)
    return torch.from_numpy(out)


def reference_translation(
    name: str, source: torch.Tensor, target_quantiles: np.ndarray
) -> torch.Tensor:
    """The reference ``name`` applied to (N, 1, h, w) source images in [-1, 1].

    ``target_quantiles``: :func:`reference_quantiles` of the target contrast's training images.
    """
    if name == "copy":
        return source.clone()
    if name == "histmatch":
        return histogram_match(source, target_quantiles)
    raise ValueError(f"unknown reference {name!r}")
