"""Translation with a trained method: image stacks in batches, and whole NIfTI volumes.

- :mod:`~mrtranslate.inference.batches`: ``translate_stack`` (eval mode, ``inference_mode``,
  CPU micro-batches, autocast from :mod:`mrtranslate.hardware`) and ``time_synthesis``;
- :mod:`~mrtranslate.inference.volumes`: ``translate_volume`` / ``translate_paths`` with the
  training preprocessing, used by ``mrtranslate translate``.

Evaluation, ``translate``, the bench and the realism observer all translate through here.
"""

from __future__ import annotations

from mrtranslate.inference.batches import time_synthesis, translate_stack
from mrtranslate.inference.volumes import save_nifti_atomic, translate_paths, translate_volume

__all__ = [
    "save_nifti_atomic",
    "time_synthesis",
    "translate_paths",
    "translate_stack",
    "translate_volume",
]
