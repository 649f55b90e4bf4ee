"""One QC picture per prepared session: is the T2w on the T1w, is the mask on the brain?

Three views through the brain's centre (axial, coronal, sagittal) of the prepared T1w in grey,
the registered T2w's edges in red (Sobel gradient magnitude above its 90th percentile inside
the head) and the brain mask's outline in yellow. A good registration puts the red edges on the
T1w's own boundaries (ventricles, brain surface, skull); a shifted one shows them displaced.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from mrtranslate.fileio import atomic_write
from mrtranslate.preparation.registration import sitk


def _views(volume: np.ndarray, centre: tuple[int, int, int]) -> list[np.ndarray]:
    """Axial, coronal, sagittal slices of a (z, y, x) LPS-ordered array, superior/anterior up."""
    z, y, x = centre
    return [
        volume[z, ::-1, ::-1],  # axial: anterior up, patient's left on the right
        volume[::-1, y, ::-1],  # coronal: superior up
        volume[::-1, :, x][:, ::-1],  # sagittal: superior up, anterior left
    ]


def save_qc(path: Path, t1w, t2w, mask, title: str) -> None:
    """Write the QC picture of one session (SimpleITK images on one grid) atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = sitk()
    t1 = s.GetArrayFromImage(t1w).astype(np.float32)
    t2 = s.GetArrayFromImage(t2w).astype(np.float32)
    brain = s.GetArrayFromImage(mask) > 0
    centre = (
        tuple(int(round(c)) for c in np.argwhere(brain).mean(0))
        if brain.any()
        else tuple(n // 2 for n in t1.shape)
    )
    spacing = np.asarray(t1w.GetSpacing())[::-1]  # (z, y, x)
    gradient = np.sqrt(sum(ndimage.sobel(t2, axis=a) ** 2 / spacing[a] ** 2 for a in range(3)))
    inside = t2 > np.percentile(t2, 50)
    edges = gradient > np.percentile(gradient[inside], 90) if inside.any() else gradient > 0
    high = np.percentile(t1, 99.5) or 1.0
    aspects = [spacing[1] / spacing[2], spacing[0] / spacing[2], spacing[0] / spacing[1]]
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4), facecolor="black")
    for ax, grey, edge, outline, aspect in zip(
        axes, _views(t1, centre), _views(edges, centre), _views(brain, centre), aspects
    ):
        ax.imshow(grey, cmap="gray", vmin=0, vmax=high, aspect=aspect, interpolation="none")
        ax.imshow(
            np.ma.masked_where(~edge, edge),
            cmap="autumn",
            alpha=0.7,
            aspect=aspect,
            interpolation="none",
        )
        if outline.any():
            ax.contour(outline.astype(float), levels=[0.5], colors="yellow", linewidths=0.8)
        ax.set_axis_off()
    fig.suptitle(title + "  (red: registered T2w edges; yellow: brain mask)", color="white")
    fig.tight_layout()

    def write(tmp: Path) -> None:
        fig.savefig(tmp, format="png", dpi=100, facecolor="black")

    try:
        atomic_write(path, write)
    finally:
        plt.close(fig)
