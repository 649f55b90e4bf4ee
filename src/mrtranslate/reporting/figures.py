"""The paper's figures as pure functions returning matplotlib Figures (Agg backend).

Figure 1: bar charts of MAE, PSNR and MI (and SSIM) per model and direction with 95% CIs, with
horizontal reference lines for "copy the input" (dashed) and histogram matching (dotted) in
each direction's colour.
Figure 2: one test subject: real T1w and T2w on top; per model the synthetic T1w and T2w with
their relative-error maps at the sides and a colour bar.
Figure 3 (volume data): the mid-brain axial slice of a held-out volume per direction: input,
real, the intensity-lookup baseline and every model.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mrtranslate.directions import DIRECTIONS, Direction  # noqa: E402
from mrtranslate.evaluation import metrics  # noqa: E402
from mrtranslate.evaluation.metrics import relative_error, zscore  # noqa: E402
from mrtranslate.runs import EvalSummary  # noqa: E402

DIRECTION_LABELS = {
    Direction.T1_TO_T2: "synthetic T2w (from T1w)",
    Direction.T2_TO_T1: "synthetic T1w (from T2w)",
}
COLORS = {Direction.T1_TO_T2: "#1f77b4", Direction.T2_TO_T1: "#ff7f0e"}
REFERENCE_STYLES = {"copy": ("--", "copy input"), "histmatch": (":", "histogram matching")}


def figure_bars(summaries: list[EvalSummary], variant: str = "") -> plt.Figure:
    """Bars of the mean per model and direction, error bars = 95% confidence interval, one panel
    per measure of :data:`mrtranslate.evaluation.metrics.MEASURE_TABLE`."""
    measures = metrics.MEASURE_TABLE
    names = [s.display_name for s in summaries]
    fig, axes = plt.subplots(1, len(measures), figsize=(3.6 * len(measures), 3.6))
    x = np.arange(len(names))
    width = 0.38
    for ax, measure in zip(np.atleast_1d(axes), measures):
        key = measure.key
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
        _reference_lines(ax, summaries[0].references if summaries else {}, key + variant)
        ax.set_xticks(x, names, rotation=30, ha="right")
        better = "higher" if measure.higher_is_better else "lower"
        ax.set_title(f"{measure.heading}, {better} is better", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def _reference_lines(ax, references: dict, key: str) -> None:
    """One horizontal line per reference point and direction (mean over the test images)."""
    for name, (style, label) in REFERENCE_STYLES.items():
        for direction in DIRECTIONS:
            stat = references.get(name, {}).get(direction, {}).get(key)
            value = _num(stat["mean"]) if stat else float("nan")
            if np.isfinite(value):
                ax.axhline(
                    value,
                    color=COLORS[direction],
                    linestyle=style,
                    linewidth=1.2,
                    label=f"{label} ({direction})",
                )


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


def figure_volume_slices(
    slices: dict[str, np.ndarray], names: dict[str, str], title: str = ""
) -> plt.Figure:
    """Figure 3. ``slices``: ``"<direction>/<input|real|candidate>"`` -> (h, w) in [0, 1];
    ``names``: candidate -> label, in column order (baselines first). One row per direction:
    input, real, then each candidate."""
    columns = ["input", "real", *names]
    labels = {"input": "input", "real": "real", **names}
    h, w = next(iter(slices.values())).shape
    fig, axes = plt.subplots(
        len(DIRECTIONS),
        len(columns),
        figsize=(len(columns) * 1.9 * w / h, len(DIRECTIONS) * 2.1 + 0.4),
        squeeze=False,
    )
    for r, direction in enumerate(DIRECTIONS):
        for c, column in enumerate(columns):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            image = slices.get(f"{direction}/{column}")
            if image is not None:
                ax.imshow(image, cmap="gray", vmin=0, vmax=1)
            ax.set_title(labels[column], fontsize=8)
        axes[r, 0].set_ylabel(DIRECTION_LABELS[direction], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
