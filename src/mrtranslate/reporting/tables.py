"""Summary tables as Markdown and CSV rows."""

from __future__ import annotations

import math

from mrtranslate.evaluation.metrics import measure_headings
from mrtranslate.runs import EvalSummary

REFERENCE_NAMES = {"copy": "copy input (reference)", "histmatch": "histogram matching (reference)"}


def _fmt(stat: dict) -> str:
    mean = stat.get("mean", math.nan)
    if isinstance(mean, str) or not math.isfinite(mean):
        return "inf" if stat.get("n_infinite") else "n/a"
    return f"{mean:.3f} ± {stat['std']:.3f}"


def summary_rows(
    summaries: list[EvalSummary], include_references: bool = True, variant: str = ""
) -> list[dict]:
    """One row per (model or reference, direction): mean, std, median, CI of each measure."""
    entries = [(s.display_name, s.measures) for s in summaries]
    if include_references and summaries:
        entries += [
            (REFERENCE_NAMES[name], measures) for name, measures in summaries[0].references.items()
        ]
    rows = []
    for name, measures in entries:
        for direction, stats in measures.items():
            row = {"model": name, "direction": direction}
            for key in measure_headings():
                stat = stats[key + variant]
                row |= {
                    f"{key}_mean": stat["mean"],
                    f"{key}_std": stat.get("std"),
                    f"{key}_median": stat["median"],
                    f"{key}_ci95_low": stat["ci95"][0],
                    f"{key}_ci95_high": stat["ci95"][1],
                    "n": stat["n"],
                }
            rows.append(row)
    return rows


def summary_markdown(summaries: list[EvalSummary], variant: str = "") -> str:
    """Markdown table: model x direction with mean ± std of every measure."""
    headings = measure_headings()
    lines = [
        "| model | direction | " + " | ".join(headings.values()) + " | n |",
        "|---|---|" + "---|" * (len(headings) + 1),
    ]
    entries = [(s.display_name, s.measures) for s in summaries]
    if summaries:
        entries += [(REFERENCE_NAMES[k], v) for k, v in summaries[0].references.items()]
    for name, measures in entries:
        for direction, stats in measures.items():
            cells = [_fmt(stats[key + variant]) for key in headings]
            lines.append(
                f"| {name} | {direction} | "
                + " | ".join(cells)
                + f" | {stats['mae' + variant]['n']} |"
            )
    return "\n".join(lines)
