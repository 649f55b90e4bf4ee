"""``mrtranslate report``: figures, tables, statistics and a self-contained ``report.html``."""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import json
from pathlib import Path

import numpy as np

from mrtranslate.data.dataset import open_dataset
from mrtranslate.data.tensors import load_images, to_data_range
from mrtranslate.directions import DIRECTIONS
from mrtranslate.errors import UsageError
from mrtranslate.evaluation.metrics import measure_keys
from mrtranslate.evaluation.volumes import volume_markdown
from mrtranslate.fileio import atomic_write, write_json_atomic, write_text_atomic
from mrtranslate.reporting import figures
from mrtranslate.reporting.html_page import render_page
from mrtranslate.reporting.statistics import pairwise_tests
from mrtranslate.reporting.tables import summary_markdown, summary_rows
from mrtranslate.reporting.volume_section import load_volume_results, volume_figure, volume_html
from mrtranslate.runs import EvalSummary, load_evaluation, load_metric_rows, load_synthetic


def _check_comparable(summaries: list[EvalSummary], runs: list[Path]) -> None:
    first = summaries[0]
    for summary, run in zip(summaries[1:], runs[1:]):
        for key in ("data", "evaluation_shape", "test_images"):
            if getattr(summary, key) != getattr(first, key):
                raise UsageError(
                    f"{run} was evaluated with {key} {getattr(summary, key)}, but {runs[0]} "
                    f"with {getattr(first, key)}; a report compares runs on the same data"
                )


def _statistics(summaries: list[EvalSummary], rows: list[list[dict]]) -> list[dict]:
    out = []
    for direction in DIRECTIONS:
        for variant in ("", "_mask"):
            for measure in measure_keys():
                key = measure + variant
                values = {
                    s.display_name: np.array(
                        [float(r[key]) for r in run_rows if r["direction"] == direction]
                    )
                    for s, run_rows in zip(summaries, rows)
                }
                for test in pairwise_tests(values):
                    out.append({"direction": direction, "measure": key, **test})
    return out


def _site_summaries(summaries: list[EvalSummary], site: str) -> list[EvalSummary]:
    """``summaries`` with each one's measures of ``site``'s test images alone."""
    return [dataclasses.replace(s, measures=s.measures_by_site[site]) for s in summaries]


def site_tables(summaries: list[EvalSummary], rows: list[list[dict]]) -> dict[str, list[dict]]:
    """Per site, for data from several sites: the summary rows (inside the brain) and the
    pairwise tests of each site's test images alone, each row naming its site; empty lists
    for data from one site. A change that helps one site and hurts another shows here."""
    sites = list(summaries[0].measures_by_site) if summaries else []
    sites = [s for s in sites if all(s in summary.measures_by_site for summary in summaries)]
    summary, statistics = [], []
    for site in sites:
        alone = _site_summaries(summaries, site)
        summary += [{"site": site, **r} for r in summary_rows(alone, False, variant="_mask")]
        mine = [[r for r in run_rows if r.get("site") == site] for run_rows in rows]
        statistics += [{"site": site, **t} for t in _statistics(summaries, mine)]
    return {"summary_by_site": summary, "statistics_by_site": statistics}


def _save_figure(fig, out: Path, stem: str) -> str:
    """Save PNG and SVG; return the PNG as base64 for embedding."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    png = buf.getvalue()
    atomic_write(out / f"{stem}.png", lambda tmp: tmp.write_bytes(png))
    atomic_write(
        out / f"{stem}.svg", lambda tmp: fig.savefig(tmp, format="svg", bbox_inches="tight")
    )
    plt.close(fig)
    return base64.b64encode(png).decode("ascii")


def _csv(rows: list[dict]) -> str:
    if not rows:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


REPRESENTATIVE_QUANTILE = 0.75


def representative_index(masks: np.ndarray) -> int:
    """The test image at the 75th percentile of brain area (masks: (N, H, W)): in volume data a
    slice through the middle of the brain (never the small first slice below the cerebellum,
    nor the largest, possibly unusual one); with one slice per subject, a typical subject."""
    areas = np.asarray(masks, dtype=bool).reshape(len(masks), -1).sum(axis=1)
    rank = int(round(REPRESENTATIVE_QUANTILE * (len(areas) - 1)))
    return int(np.argsort(areas, kind="stable")[rank])


def _example_images(summaries: list[EvalSummary], runs: list[Path], index: int | None) -> tuple:
    dataset = open_dataset(summaries[0].data)
    shape = tuple(summaries[0].evaluation_shape)
    split = dataset.split("test")
    chosen = "chosen with --subject-index"
    if index is None:
        index = representative_index(split.mask)
        chosen = "the test image at the 75th percentile of brain area"
    if not 0 <= index < len(split):
        raise UsageError(f"--subject-index must be in [0, {len(split) - 1}], got {index}")
    pick = np.array([index])
    real_t1 = to_data_range(load_images(split, "t1w", shape, pick))[0, 0].numpy()
    real_t2 = to_data_range(load_images(split, "t2w", shape, pick))[0, 0].numpy()
    synthetic = {}
    for summary, run in zip(summaries, runs):
        synthetic[summary.display_name] = {
            d: load_synthetic(run, d, summary)[index] for d in DIRECTIONS
        }
    subject = f"{split.subjects[index]} (test image {index} of {len(split)}, {chosen})"
    return real_t1, real_t2, synthetic, subject, dataset.citation


def _extra_sections(out: Path, perceptual: str | Path | None, realism: str | Path | None) -> dict:
    """Perceptual-study results (with Figure 1 d, e) and automated-observer results, if given."""
    extra: dict = {}
    if perceptual is not None:
        from mrtranslate.perceptual.report import write_analysis

        study = Path(perceptual)
        if not (study / "study.sqlite").is_file():
            raise UsageError(f"{study} is not a perceptual study (no study.sqlite)")
        extra["perceptual"] = write_analysis(study, out / "perceptual")
        extra["perceptual_figures"] = [
            base64.b64encode((out / "perceptual" / name).read_bytes()).decode("ascii")
            for name in ("figure1d_perceptual_totals.png", "figure1e_perceptual_models.png")
        ]
    if realism is not None:
        path = Path(realism)
        path = path / "realism.json" if path.is_dir() else path
        if not path.is_file():
            raise UsageError(f"no realism results at {path}; run 'mrtranslate realism' first")
        extra["realism"] = json.loads(path.read_text())
    return extra


def _volume_section(folder: str | Path | None, out: Path) -> dict:
    """The whole-volume table and Figure 3 (PNG/SVG per held-out subject), if given."""
    if folder is None:
        return {}
    summary, slices = load_volume_results(folder)
    write_text_atomic(out / "volumes.md", volume_markdown(summary) + "\n")
    pictures = [
        (subject, _save_figure(volume_figure(summary, subject, s), out, f"figure3_{subject}"))
        for subject, s in slices.items()
    ]
    return {"volumes": summary, "volume_html": volume_html(summary, pictures)}


def _write_tables(out: Path, summaries: list, tables: dict[str, list]) -> None:
    """Each table as CSV, and the summary tables as Markdown (``summary.md``)."""
    for name, rows in tables.items():
        if rows or not name.endswith("_by_site"):  # one site: no per-site files
            write_text_atomic(out / f"{name}.csv", _csv(rows))
    whole, mask = summary_markdown(summaries), summary_markdown(summaries, "_mask")
    text = f"## Whole image\n\n{whole}\n\n## Inside the brain mask\n\n{mask}\n"
    for site in dict.fromkeys(r["site"] for r in tables.get("summary_by_site", [])):
        table = summary_markdown(_site_summaries(summaries, site), "_mask")
        text += f"\n## Site {site}, inside the brain mask\n\n{table}\n"
    write_text_atomic(out / "summary.md", text)


def build_report(
    runs: list[str | Path],
    out: str | Path,
    subject_index: int | None = None,
    perceptual: str | Path | None = None,
    realism: str | Path | None = None,
    volumes: str | Path | None = None,
    under_trained: dict[str, str] | None = None,
) -> Path:
    """Write figures, tables, statistics and ``report.html`` for evaluated ``runs`` into ``out``.

    ``subject_index``: the test image of Figure 2 (default: the 75th percentile of brain area);
    ``volumes``: a folder written by :func:`mrtranslate.evaluation.volumes.evaluate_volumes`;
    ``under_trained``: model -> what it got, for models a study trained below its floor.
    """
    runs = [Path(r) for r in runs]
    for run in runs:
        if not run.is_dir():
            raise UsageError(f"run folder not found: {run}")
    summaries = [load_evaluation(r) for r in runs]
    metric_rows = [load_metric_rows(r) for r in runs]
    _check_comparable(summaries, runs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    images = {
        "figure1": _save_figure(figures.figure_bars(summaries), out, "figure1_measures"),
        "figure1_mask": _save_figure(
            figures.figure_bars(summaries, variant="_mask"), out, "figure1_measures_mask"
        ),
    }
    real_t1, real_t2, synthetic, subject, citation = _example_images(summaries, runs, subject_index)
    images["figure2"] = _save_figure(
        figures.figure_examples(real_t1, real_t2, synthetic), out, "figure2_examples"
    )
    tables = {
        "summary": summary_rows(summaries),
        "summary_mask": summary_rows(summaries, variant="_mask"),
        "statistics": _statistics(summaries, metric_rows),
        **site_tables(summaries, metric_rows),
    }
    _write_tables(out, summaries, tables)
    write_json_atomic(
        out / "report.json",
        {
            "runs": [str(r) for r in runs],
            "summaries": [s.to_dict() for s in summaries],
            "statistics": tables["statistics"],
            "statistics_by_site": tables["statistics_by_site"],
            "figure2_subject": subject,
            "citation": citation,
            "under_trained": under_trained or {},
        },
    )
    extra = _extra_sections(out, perceptual, realism) | _volume_section(volumes, out)
    extra["citation"] = citation
    extra["under_trained"] = under_trained or {}
    page = render_page(summaries, runs, images, tables, subject, extra)
    write_text_atomic(out / "report.html", page)
    return out / "report.html"
