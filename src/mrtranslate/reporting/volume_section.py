"""The report's whole-volume section: the table with both baselines and Figure 3.

Reads the output folder of :func:`mrtranslate.evaluation.volumes.evaluate_volumes`
(``summary.json`` and ``slices/<subject>.npz``).
"""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path

import numpy as np

from mrtranslate.errors import UsageError
from mrtranslate.evaluation.volume_baselines import BASELINES
from mrtranslate.evaluation.volumes import LABELS, NORMALISATION, candidate_label
from mrtranslate.reporting import figures


def load_volume_results(folder: str | Path) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """``summary.json`` and the mid-brain slices of an evaluate-volumes folder (one-line
    errors when missing or damaged)."""
    folder = Path(folder)
    path = folder / "summary.json"
    if not path.is_file():
        raise UsageError(
            f"no volume evaluation at {folder}; run 'mrtranslate evaluate-volumes' first"
        )
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        summary["directions"], summary["measures"]  # noqa: B018 - the keys must exist
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path} is damaged ({type(exc).__name__}); evaluate again") from None
    slices = {}
    for subject in summary.get("test_subjects", []):
        npz = folder / "slices" / f"{subject}.npz"
        if npz.is_file():
            try:
                with np.load(npz, allow_pickle=False) as data:
                    slices[subject] = {k: data[k] for k in data.files if k != "slice_index"}
                    slices[subject]["slice_index"] = int(data["slice_index"])
            except (OSError, ValueError, KeyError) as exc:
                raise UsageError(f"{npz} is damaged ({type(exc).__name__})") from None
    return summary, slices


def volume_figure(summary: dict, subject: str, slices: dict):
    """Figure 3 for one held-out subject."""
    first = next(iter(summary["directions"].values()))
    names = {n: candidate_label(n, summary) for n in first if n != "copy"}
    images = {k: v for k, v in slices.items() if k != "slice_index"}
    title = f"{subject}, axial slice {slices['slice_index']} (through the brain's centre of mass)"
    return figures.figure_volume_slices(images, names, title)


def _cell(entry: dict, measure: str) -> str:
    value = entry["mean"].get(measure, math.nan)
    text = "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"
    versus = entry.get("versus_lookup", {}).get(measure)
    if versus is None:
        return escape(text)
    detail = f"better than the lookup in {versus['participants_better']} of {versus['n']}"
    if versus.get("wilcoxon_p") is not None:
        detail += f"; Wilcoxon p = {versus['wilcoxon_p']:.3g}"
    if versus["better"]:
        return f'<span title="{escape(detail)}">{escape(text)}</span>'
    return f'<span class=worse title="{escape(detail)}">{escape(text)} &dagger;</span>'


def _volume_table(summary: dict) -> tuple[str, list[str]]:
    """The table of one summary (pooled, or one site's) and its verdict items."""
    measures = summary["measures"]
    head = "".join(f"<th>{escape(LABELS.get(m, m))}</th>" for m in measures)
    rows, verdict = [], []
    for direction, table in summary["directions"].items():
        order = [n for n in BASELINES if n in table] + [n for n in table if n not in BASELINES]
        for name in order:
            entry = table[name]
            css = " class=baseline" if entry["kind"] == "baseline" else ""
            cells = "".join(f"<td>{_cell(entry, m)}</td>" for m in measures)
            rows.append(
                f"<tr{css}><td>{escape(direction)}</td><td>"
                f"{escape(candidate_label(name, summary))}</td>{cells}<td>{entry['n']}</td></tr>"
            )
        winners = [candidate_label(n, summary) for n, e in table.items() if e.get("beats_lookup")]
        verdict.append(
            f"<li>{escape(direction)}: "
            + (
                f"{escape(', '.join(winners))} beat{'s' if len(winners) == 1 else ''} the "
                "intensity lookup in MAE, r and SSIM"
                if winners
                else "<b>no model beats the intensity lookup</b> in MAE, r and SSIM together"
            )
            + "</li>"
        )
    html = (
        f"<table><tr><th>direction</th><th>candidate</th>{head}<th>n</th></tr>"
        f"{''.join(rows)}</table>"
    )
    return html, verdict


def _site_tables(summary: dict) -> str:
    """Each site's participants alone (data from several sites), with its own verdict."""
    parts = []
    for site, alone in summary.get("sites", {}).items():
        table, verdict = _volume_table(alone)
        parts.append(f"<h3>Site {escape(site)}</h3><ul>{''.join(verdict)}</ul>{table}")
    if not parts:
        return ""
    return (
        "<p>Per site: each site's held-out participants alone (a model that helps one site "
        f"and hurts another shows here).</p>{''.join(parts)}"
    )


def volume_html(summary: dict, figures_b64: list[tuple[str, str]]) -> str:
    """The section: verdict, table (baselines first, models marked where they do not beat the
    lookup), per-site tables, Figure 3 and the normalisation."""
    table, verdict = _volume_table(summary)
    participants = summary.get("test_subjects", [])
    fitted = next(iter(summary.get("lookup", {}).values()), {}).get("fitted_on", [])
    figs = "".join(
        f"<p>Figure 3: held-out <code>{escape(s)}</code></p>"
        f'<img alt="Figure 3 {escape(s)}" src="data:image/png;base64,{b64}">'
        for s, b64 in figures_b64
    )
    return (
        "<h2>Whole volumes: does any model beat the baselines?</h2>"
        f"<p>Held-out volumes: {escape(', '.join(participants))} (whole volumes, both "
        "directions). Baselines computed the same way: <i>copy input</i> (the source volume "
        "itself) and an <i>intensity lookup</i> (median target intensity per source-intensity "
        f"bin) fitted on the training participants only ({escape(', '.join(fitted))}).</p>"
        f"<ul>{''.join(verdict)}</ul>{table}"
        "<p class=small>Means over held-out participants. &dagger; (red): this model does not "
        "beat the intensity lookup on this measure; hover a cell for the per-participant count "
        "and the paired test. Detail ratio: in-plane high-frequency energy relative to the real "
        "volume (1 = as detailed). Slice consistency error and median slice jump: change "
        f"between neighbouring axial slices that the real volume does not have. "
        f"Normalisation: {escape(summary.get('normalisation', NORMALISATION))}.</p>"
        f"{_site_tables(summary)}{figs}"
    )
