"""Two baselines for whole-volume translation that need no training of a network.

- **copy**: the input volume itself, as the "translation" (after the same per-volume
  normalisation as everything else, see :mod:`mrtranslate.evaluation.volume_measures`).
- **lookup**: a per-voxel intensity lookup table. The source volume is normalised (in-brain
  99.5th percentile, clipped to [0, 1]); its range is cut into ``bins`` equal bins; each bin maps
  to the median normalised target intensity of the brain voxels whose source intensity fell in
  that bin, pooled over the **training participants only**. Empty bins take the value of the
  nearest filled bins (linear interpolation between bin centres). Unlike histogram matching it
  can invert contrast (CSF: dark on T1w, bright on T2w), so it is the strongest translation
  without spatial context: a model that does not beat it has learnt nothing beyond a
  voxel-wise intensity map.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from mrtranslate.evaluation.volume_measures import normalise_volume

LOOKUP_BINS = 256
BASELINES = ("copy", "lookup")


@dataclass
class IntensityLookup:
    """Median target intensity per source-intensity bin (see the module docstring)."""

    table: np.ndarray  # (bins,) float64: normalised target intensity of each source bin
    fitted_on: list[str] = field(default_factory=list)  # the participants it was fitted on
    voxels: int = 0

    @classmethod
    def fit(
        cls,
        pairs: Iterable[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
        bins: int = LOOKUP_BINS,
    ) -> IntensityLookup:
        """Fit on ``(participant, source, target, brain)`` volumes (raw intensities)."""
        sources, targets, names = [], [], []
        for participant, source, target, brain in pairs:
            brain = np.asarray(brain, dtype=bool)
            sources.append(normalise_volume(source, brain)[brain])
            targets.append(normalise_volume(target, brain)[brain])
            names.append(participant)
        if not sources:
            raise ValueError("the intensity lookup needs at least one training volume")
        s = np.concatenate(sources)
        t = np.concatenate(targets)
        index = _bin_of(s, bins)
        order = np.argsort(index, kind="stable")
        index, t = index[order], t[order]
        starts = np.searchsorted(index, np.arange(bins), side="left")
        ends = np.searchsorted(index, np.arange(bins), side="right")
        filled = ends > starts
        medians = np.array([np.median(t[a:b]) if b > a else np.nan for a, b in zip(starts, ends)])
        centres = (np.arange(bins) + 0.5) / bins
        table = np.interp(centres, centres[filled], medians[filled])
        return cls(table=table, fitted_on=names, voxels=int(s.size))

    def apply(self, source: np.ndarray, brain: np.ndarray) -> np.ndarray:
        """The lookup's translation of a raw source volume: normalised target intensities in
        [0, 1] inside ``brain``, 0 outside (float32, the source's shape)."""
        brain = np.asarray(brain, dtype=bool)
        normalised = normalise_volume(source, brain)
        out = self.table[_bin_of(normalised, self.table.size)]
        return np.where(brain, out, 0.0).astype(np.float32)


def _bin_of(values: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bin of values in [0, 1] (1 falls in the last bin)."""
    return np.clip((values * bins).astype(np.int64), 0, bins - 1)
