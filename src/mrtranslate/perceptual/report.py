"""Perceptual-study results as HTML, CSV/JSON files and the paper's Figure 1 (d) and (e)."""

from __future__ import annotations

import math
from html import escape
from pathlib import Path

from mrtranslate.fileio import atomic_write, write_json_atomic, write_text_atomic


def _pct(value) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{100 * value:.1f}%"
    )


def _ci(pair) -> str:
    return f"[{_pct(pair[0])}, {_pct(pair[1])}]"


def results_table(result: dict) -> str:
    rows = []
    for label, stats in [
        ("all images", result["overall"]),
        *[(f"{c.upper()}", s) for c, s in result["by_contrast"].items()],
    ]:
        rows.append(
            f"<tr><td>{escape(label)}</td><td>{stats['answers']}</td>"
            f"<td>{stats['synthetic_labelled_real']} / {stats['synthetic_shown']}</td>"
            f"<td>{_pct(stats['accuracy'])} {_ci(stats['accuracy_ci95'])}</td>"
            f"<td>{_pct(stats['sensitivity'])} {_ci(stats['sensitivity_ci95'])}</td>"
            f"<td>{_pct(stats['specificity'])} {_ci(stats['specificity_ci95'])}</td>"
            f"<td>{stats['binomial_p_vs_chance']:.3g}</td></tr>"
        )
    head = (
        "<tr><th>images</th><th>answers</th><th>synthetic labelled real</th><th>accuracy "
        "[95% CI]</th><th>sensitivity</th><th>specificity</th><th>p (binomial vs 50%)</th>"
        "</tr>"
    )
    models = "".join(
        f"<tr><td>{escape(m)}</td>"
        + "".join(
            f"<td>{s[c]['labelled_real']} / {s[c]['synthetic_shown']} "
            f"({_pct(s[c]['fraction_labelled_real'])})</td>"
            for c in ("t1w", "t2w", "all")
        )
        + "</tr>"
        for m, s in result["by_model"].items()
    )
    agreement = (
        "".join(
            f"<tr><td>{escape(p['a_name'])} (#{p['a']})</td>"
            f"<td>{escape(p['b_name'])} (#{p['b']})</td>"
            f"<td>{p['images']}</td><td>{p['cohen_kappa']:.3f}</td></tr>"
            for p in result["agreement"]["pairs"]
        )
        or "<tr><td colspan=4>needs two or more readers</td></tr>"
    )
    fleiss = result["agreement"].get("fleiss_kappa")
    return (
        f"<p>{result['readers']} reader(s), {result['images']} images.</p>"
        f"<table>{head}{''.join(rows)}</table>"
        "<h3>Synthetic images labelled real, per model</h3><table><tr><th>model</th>"
        f"<th>T1w</th><th>T2w</th><th>all</th></tr>{models}</table>"
        "<h3>Agreement between readers</h3><table><tr><th>reader a</th><th>reader b</th>"
        f"<th>common images</th><th>Cohen's kappa</th></tr>{agreement}</table>"
        + (
            f"<p>Fleiss' kappa: {fleiss:.3f}</p>"
            if fleiss is not None and not math.isnan(fleiss)
            else ""
        )
    )


def results_html(
    result: dict, csv_link: str = "answers.csv", json_link: str = "results.json"
) -> str:
    """A results page linking to the answers (CSV) and results (JSON) exports."""
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Study results</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto}"
        "td,th{border:1px solid #ccc;padding:3px 8px}table{border-collapse:collapse}"
        "</style></head><body><h1>Perceptual study results</h1>"
        f"{results_table(result)}<p><a href='{escape(csv_link)}'>answers (CSV)</a> · "
        f"<a href='{escape(json_link)}'>results (JSON)</a></p>"
        "</body></html>"
    )


def figures(result: dict, out: Path) -> list[Path]:
    """Figure 1 (d): totals per contrast; (e): synthetic images labelled real per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(figsize=(5, 3.5))
    labels, real_ok, syn_fooled = [], [], []
    for contrast, stats in result["by_contrast"].items():
        labels.append(contrast.upper())
        real_ok.append(stats["real_shown"] - stats["real_labelled_synthetic"])
        syn_fooled.append(stats["synthetic_labelled_real"])
    x = range(len(labels))
    ax.bar([i - 0.2 for i in x], real_ok, 0.4, label="real labelled real")
    ax.bar([i + 0.2 for i in x], syn_fooled, 0.4, label="synthetic labelled real")
    ax.set_xticks(list(x), labels)
    ax.set_ylabel("images")
    ax.set_title("Perceptual study: totals")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out / "figure1d_perceptual_totals.png"))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    models = list(result["by_model"])
    for k, contrast in enumerate(("t1w", "t2w")):
        values = [result["by_model"][m][contrast]["fraction_labelled_real"] for m in models]
        ax.bar(
            [i + (k - 0.5) * 0.38 for i in range(len(models))],
            values,
            0.38,
            label=f"synthetic {contrast.upper()}",
        )
    ax.set_xticks(list(range(len(models))), models)
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction labelled real")
    ax.set_title("Perceptual study: per model")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out / "figure1e_perceptual_models.png"))
    return paths


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path


def write_analysis(study: Path, out: Path) -> dict:
    """``results.json``, ``answers.csv``, ``results.html`` and the two figures into ``out``."""
    from mrtranslate.perceptual import store
    from mrtranslate.perceptual.analysis import analyse
    from mrtranslate.perceptual.store import answers_csv

    result = analyse(store.all_rows(study))
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", result)
    write_text_atomic(out / "answers.csv", answers_csv(study))
    write_text_atomic(out / "results.html", results_html(result))
    figures(result, out)
    return result
