"""The self-contained HTML report (images embedded as base64; opens from disk, no server)."""

from __future__ import annotations

import json
import math
import re
from html import escape
from pathlib import Path

from mrtranslate import __version__
from mrtranslate.directions import Direction
from mrtranslate.evaluation import metrics
from mrtranslate.runs import EvalSummary, layout

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.85em}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3} td:first-child,td:nth-child(2){text-align:left}
img{max-width:100%} pre{background:#f6f6f6;padding:1em;white-space:pre-wrap;font-size:0.85em}
.small{color:#666;font-size:0.85em}
.note{background:#fff7d6;border-left:4px solid #e0b000;padding:0.6em 1em}
.worse{color:#b00000;font-weight:bold} tr.baseline td{background:#f7f7f7;font-style:italic}
"""


def _num(value, digits: int = 3) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return escape(str(value))
    if math.isinf(value):
        return "inf"
    if math.isnan(value):
        return "n/a"
    return f"{value:.{digits}g}" if abs(value) < 1e-3 and value else f"{value:.{digits}f}"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _summary_table(rows: list[dict]) -> str:
    headings = metrics.measure_headings()
    headers = ["model", "direction"] + [f"{v} mean [95% CI]" for v in headings.values()] + ["n"]
    body = []
    for r in rows:
        cells = [escape(r["model"]), escape(r["direction"])]
        for key in headings:
            cells.append(
                f"{_num(r[key + '_mean'])} [{_num(r[key + '_ci95_low'])}, "
                f"{_num(r[key + '_ci95_high'])}]"
            )
        body.append(cells + [str(r["n"])])
    return _table(headers, body)


def _timing_table(summaries: list[EvalSummary]) -> str:
    rows = []
    for s in summaries:
        t = s.training
        syn = s.synthesis[Direction.T1_TO_T2]
        batched = [k for k in syn if k != "seconds_per_image_batch1"]
        rows.append(
            [
                escape(s.display_name),
                _num(t.get("mean_seconds_per_epoch")),
                str(t.get("images_per_epoch")),
                escape(str(t.get("precision"))),
                escape(str(t.get("device"))),
                _num(1000 * syn["seconds_per_image_batch1"]),
                _num(1000 * syn[batched[0]]) if batched else "n/a",
            ]
        )
    return _table(
        [
            "model",
            "training s/epoch",
            "images/epoch",
            "precision",
            "device",
            "synthesis ms/image (batch 1)",
            "synthesis ms/image (batched)",
        ],
        rows,
    )


def _stats_table(stats: list[dict], variant: str) -> str:
    rows = []
    for r in stats:
        if r["measure"].endswith("_mask") != (variant == "_mask"):
            continue
        star = " *" if r["p_holm"] < 0.05 else ""
        rows.append(
            [
                escape(r["direction"]),
                escape(r["measure"]),
                escape(r["a"]),
                escape(r["b"]),
                _num(r["median_difference"]),
                _num(r["p"]),
                _num(r["p_holm"]) + star,
            ]
        )
    return _table(
        [
            "direction",
            "measure",
            "model a",
            "model b",
            "median difference (a - b)",
            "p (Wilcoxon)",
            "p (Holm)",
        ],
        rows,
    )


def _training_table(runs: list[Path], under_trained: dict[str, str]) -> str:
    """Each model's training: steps, crop, training time, so a reader sees whether the
    comparison was fair; models trained below the study's floor are marked under-trained."""
    from mrtranslate.runs import load_record

    rows = []
    for run in runs:
        record = load_record(run)
        cfg_path = layout.config_path(run)
        cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
        crop = (cfg.get("train") or {}).get("crop") or 0
        model = record.model
        note = under_trained.get(model)
        rows.append(
            [
                escape(record.display_name or model),
                str(record.steps_done),
                f"{crop}x{crop}" if crop else "whole images",
                _num(sum(record.seconds_per_epoch) / 60, 2),
                f"<span class=worse>under-trained: {escape(note)}</span>" if note else "",
            ]
        )
    return _table(["model", "steps", "training crop", "training minutes", "note"], rows)


def _settings(runs: list[Path]) -> str:
    parts = []
    for run in runs:
        cfg_path = layout.config_path(run)
        cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
        parts.append(
            f"<details><summary>{escape(run.name)}: {escape(str(cfg.get('model')))}, "
            f"profile {escape(str(cfg.get('profile')))}</summary><pre>"
            f"{escape(json.dumps(cfg, indent=1))}</pre></details>"
        )
    return "".join(parts)


def _extra_html(extra: dict) -> list[str]:
    parts = []
    if "perceptual" in extra:
        from mrtranslate.perceptual.report import results_table

        figs = "".join(
            f'<img alt="Figure 1 d/e" src="data:image/png;base64,{b64}">'
            for b64 in extra["perceptual_figures"]
        )
        parts += [
            "<h2>Perceptual study (Figure 1 d, e)</h2>",
            results_table(extra["perceptual"]),
            figs,
        ]
    if "realism" in extra:
        rows = []
        for model, per in extra["realism"]["models"].items():
            for contrast, e in per.items():
                low, high = e["accuracy_ci95"]
                rows.append(
                    [
                        escape(model),
                        contrast.upper(),
                        f"{100 * e['accuracy']:.1f}% [{100 * low:.1f}, {100 * high:.1f}]",
                        str(e["held_out_images"]),
                        _num(e["high_frequency_ratio"]),
                    ]
                )
        parts += [
            "<h2>Automated observer</h2><p>A small CNN trained to tell real from synthetic "
            "test images, cross-validated by subject: 50% accuracy means "
            "indistinguishable. High-frequency ratio: spectral power above 0.25 "
            "cycles/pixel relative to real images (1 = as detailed as real).</p>",
            _table(
                [
                    "model",
                    "contrast",
                    "held-out accuracy [95% CI]",
                    "images",
                    "high-frequency ratio",
                ],
                rows,
            ),
        ]
    return parts


def _resolution_note(summary: EvalSummary) -> str:
    """The working resolution, stated prominently: the synthetic images are no sharper."""
    h, w = summary.evaluation_shape
    data_shape = summary.training.get("data_image_shape")
    if not data_shape:
        return f"<p class=note><b>Working resolution: {h}x{w} pixels.</b></p>"
    factor = max(d / m for d, m in zip(data_shape, (h, w)))
    if factor <= 1.0 + 1e-6:
        return (
            f"<p class=note><b>Working resolution: {h}x{w} pixels</b>, the data's own "
            "resolution.</p>"
        )
    return (
        f"<p class=note><b>Working resolution: {h}x{w} pixels</b>, the data's "
        f"{data_shape[0]}x{data_shape[1]} images down-sampled {factor:.1f}x; the models were "
        "trained and evaluated at this size, and their synthetic images carry no finer detail "
        "(train with a larger <code>mrtranslate study --budget</code> or "
        "<code>--set train.downsample=1</code> for full resolution).</p>"
    )


def _data_and_settings(summaries: list[EvalSummary], citation: str | None) -> list[str]:
    first = summaries[0]
    shape = "x".join(str(v) for v in first.evaluation_shape)
    models = ", ".join(s.display_name for s in summaries)
    precisions = ", ".join(sorted({str(s.training.get("precision")) for s in summaries}))
    return [
        "<h2>Data and settings</h2>",
        _resolution_note(first),
        f"<p>Data set: <code>{escape(first.data)}</code>; {first.test_images} test images "
        f"per contrast, compared at {shape} pixels (the runs' working resolution). Models: "
        f"{escape(models)}; profile {escape(str(first.profile))}; training precision "
        f"{escape(precisions)}.</p>",
        f"<p class=note>Data: {escape(_citation_sentence(citation))}</p>" if citation else "",
    ]


def _citation_sentence(citation: str) -> str:
    """How to cite the data, as one sentence: the data set's own text when it already says
    "cite" at its start (BIDS ``HowToAcknowledge`` often does: "Cite all three: ..."), else
    "please cite" before it."""
    text = citation.strip()
    if re.match(r"(please\s+)?(cite|acknowledge)\b", text, re.IGNORECASE):
        return text
    return f"please cite {text}"


def _site_section(tables: dict[str, list[dict]]) -> str:
    """Per site (data from several sites): each site's summary inside the brain and its
    pairwise tests, beside the pooled tables; empty for one site."""
    rows, stats = tables.get("summary_by_site") or [], tables.get("statistics_by_site") or []
    sites = list(dict.fromkeys(r["site"] for r in rows))
    if not sites:
        return ""
    parts = [
        "<h2>Per site</h2><p>The test images of each site alone (inside the brain mask): a "
        "change that helps one site and hurts another shows here, not in the pooled tables.</p>"
    ]
    for site in sites:
        parts += [
            f"<h3>Site {escape(site)}</h3>",
            _summary_table([r for r in rows if r["site"] == site]),
            _stats_table([t for t in stats if t["site"] == site], "_mask"),
        ]
    return "".join(parts)


def render_page(
    summaries: list[EvalSummary],
    runs: list[Path],
    images: dict[str, str],
    tables: dict[str, list[dict]],
    subject: str,
    extra: dict | None = None,
) -> str:
    extra = extra or {}
    sections = [
        f"<h1>mrtranslate report</h1><p class=small>mrtranslate {__version__}; runs: "
        f"{escape(', '.join(str(r) for r in runs))}</p>",
        *_data_and_settings(summaries, extra.get("citation")),
        "<h2>Training</h2>",
        _training_table(runs, extra.get("under_trained") or {}),
        _settings(runs),
        extra.get("volume_html", ""),
        "<h2>Figure 1: error measures</h2><p>Mean per model and direction over the test images, "
        "error bars = 95% confidence interval of the mean; horizontal lines: the reference "
        "points in each direction's colour (dashed: copy the input; dotted: histogram "
        "matching). Whole image (the paper's way):</p>",
        f'<img alt="Figure 1" src="data:image/png;base64,{images["figure1"]}">',
        "<p>Inside the brain mask:</p>",
        f'<img alt="Figure 1, mask" src="data:image/png;base64,{images["figure1_mask"]}">',
        "<h2>Figure 2: example translations</h2>",
        f"<p>Test subject <code>{escape(subject)}</code>. Top: the real images (each is the input "
        "of the other contrast's translations and the ground truth of its own). Sides: relative "
        "absolute error maps.</p>",
        f'<img alt="Figure 2" src="data:image/png;base64,{images["figure2"]}">',
        "<h2>Summary tables</h2><h3>Whole image</h3>",
        _summary_table(tables["summary"]),
        "<h3>Inside the brain mask</h3>",
        _summary_table(tables["summary_mask"]),
        "<p class=small>'copy input' and 'histogram matching' are reference points that need no "
        "training.</p>",
        _site_section(tables),
        "<h2>Timing</h2>",
        _timing_table(summaries),
        "<h2>Statistical comparisons</h2><p>Two-sided Wilcoxon signed-rank tests on the per-image "
        "values of each pair of models, Holm-corrected within each direction and measure; "
        "* marks p (Holm) &lt; 0.05.</p>",
        "<h3>Whole image</h3>",
        _stats_table(tables["statistics"], ""),
        "<h3>Inside the brain mask</h3>",
        _stats_table(tables["statistics"], "_mask"),
        *_extra_html(extra),
        "<h2>Metric definitions</h2>",
        f"<pre>{escape(metrics.__doc__.strip())}</pre>",
    ]
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>mrtranslate report"
        f"</title><style>{STYLE}</style></head><body>{''.join(sections)}</body></html>\n"
    )
