"""The paper's figures as pure functions returning matplotlib Figures (Agg backend).

Figure 1: bar charts of MAE, PSNR and MI (and SSIM) per model and direction with 95% CIs.
Figure 2: one test subject: real T1w and T2w on top; per model the synthetic T1w and T2w with
their relative-error maps at the sides and a colour bar.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mrtranslate.directions import DIRECTIONS, Direction  # noqa: E402
from mrtranslate.evaluation.metrics import relative_error, zscore  # noqa: E402
from mrtranslate.reporting.tables import LABELS  # noqa: E402
from mrtranslate.runs import EvalSummary  # noqa: E402

DIRECTION_LABELS = {
    Direction.T1_TO_T2: "synthetic T2w (from T1w)",
    Direction.T2_TO_T1: "synthetic T1w (from T2w)",
}
COLORS = {Direction.T1_TO_T2: "#1f77b4", Direction.T2_TO_T1: "#ff7f0e"}


def figure_bars(
    summaries: list[EvalSummary], measures=("mae", "psnr", "mi", "ssim"), variant: str = ""
) -> plt.Figure:
    """Bars of the mean per model and direction, error bars = 95% confidence interval."""
    names = [s.display_name for s in summaries]
    fig, axes = plt.subplots(1, len(measures), figsize=(3.6 * len(measures), 3.6))
    x = np.arange(len(names))
    width = 0.38
    for ax, key in zip(np.atleast_1d(axes), measures):
        for k, direction in enumerate(DIRECTIONS):
            stats = [s.measures[direction][key + variant] for s in summaries]
            means = np.array([_num(st["mean"]) for st in stats])
            low = means - np.array([_num(st["ci95"][0]) for st in stats])
            high = np.array([_num(st["ci95"][1]) for st in stats]) - means
            ax.bar(
                x + (k - 0.5) * width,
                means,
                width,
                yerr=[low, high],
                capsize=3,
                color=COLORS[direction],
                label=DIRECTION_LABELS[direction],
            )
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set_title(LABELS[key])
        ax.grid(axis="y", alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def _num(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def figure_examples(
    real_t1: np.ndarray,
    real_t2: np.ndarray,
    synthetic: dict[str, dict[str, np.ndarray]],
    clip: float = 1.0,
) -> plt.Figure:
    """Figure 2. ``synthetic``: model -> {"t2-to-t1": synthetic T1w, "t1-to-t2": synthetic T2w}.

    Images are (h, w) in [0, 1]; error maps are |z_syn - z_real| / max(|z_real|, 0.1) on
    z-scored images, colour scale clipped at ``clip``.
    """
    rows = 1 + len(synthetic)
    h, w = real_t1.shape
    fig, axes = plt.subplots(
        rows, 4, figsize=(4 * 1.9 * w / h + 0.8, rows * 1.9 + 0.3), squeeze=False
    )
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    axes[0, 1].imshow(real_t1, cmap="gray", vmin=0, vmax=1)
    axes[0, 1].set_title("real T1w", fontsize=9)
    axes[0, 2].imshow(real_t2, cmap="gray", vmin=0, vmax=1)
    axes[0, 2].set_title("real T2w", fontsize=9)
    axes[0, 0].set_title("error of synthetic T1w", fontsize=8)
    axes[0, 3].set_title("error of synthetic T2w", fontsize=8)
    zt1, zt2 = zscore(real_t1), zscore(real_t2)
    image = None
    for r, (name, images) in enumerate(synthetic.items(), start=1):
        syn_t1, syn_t2 = images[Direction.T2_TO_T1], images[Direction.T1_TO_T2]
        axes[r, 1].imshow(syn_t1, cmap="gray", vmin=0, vmax=1)
        axes[r, 2].imshow(syn_t2, cmap="gray", vmin=0, vmax=1)
        image = axes[r, 0].imshow(
            relative_error(zt1, zscore(syn_t1)), cmap="inferno", vmin=0, vmax=clip
        )
        axes[r, 3].imshow(relative_error(zt2, zscore(syn_t2)), cmap="inferno", vmin=0, vmax=clip)
        axes[r, 0].set_ylabel(name, fontsize=9)
        axes[r, 0].yaxis.set_visible(True)
    if image is not None:
        bar = fig.colorbar(image, ax=axes[:, [0, 3]].ravel().tolist(), fraction=0.03, pad=0.02)
        bar.set_label(f"relative absolute error (clipped at {clip:g})", fontsize=8)
    return fig
