"""A picture of a data set: T1w, T2w and mask of a few subjects, so a user can look at the data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mrtranslate.data.dataset import Dataset
from mrtranslate.fileio import atomic_write


def save_preview(dataset: Dataset, out: Path, split: str = "train", count: int = 4) -> Path:
    """Save a grid (rows: subjects; columns: T1w, T2w, mask) of the first ``count`` images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = dataset.split(split)
    count = max(1, min(count, len(data)))
    picks = np.linspace(0, len(data) - 1, count).round().astype(int)
    h, w = dataset.shape
    fig, axes = plt.subplots(
        count, 3, figsize=(3 * 2.2 * w / h + 0.5, count * 2.2 + 0.4), squeeze=False
    )
    for row, i in enumerate(picks):
        panels = [(data.t1w[i], "T1w"), (data.t2w[i], "T2w"), (data.mask[i], "mask")]
        for col, (img, title) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(np.asarray(img), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title)
            if col == 0:
                ax.set_ylabel(str(data.subjects[i]), fontsize=8)
    fig.suptitle(f"{dataset.root.name}: {split} split ({dataset.meta.get('source')})", fontsize=10)
    fig.tight_layout()
    fmt = out.suffix.lstrip(".").lower() or "png"
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=100, format=fmt))
    plt.close(fig)
    return out
