"""One data set from several sources: sites recorded, the split stratified by site."""

from __future__ import annotations

import json

import pytest

from helpers import phantom_volumes, save, usage_error
from mrtranslate.cli import main
from mrtranslate.data.dataset import open_dataset


def _bids(root, indices, size, citation):
    for i in indices:
        vols, affine = phantom_volumes(i, size=size)
        anat = root / f"sub-{i:02d}" / "anat"
        save(anat / f"sub-{i:02d}_T1w.nii.gz", vols["t1w"], affine)
        save(anat / f"sub-{i:02d}_T2w.nii.gz", vols["t2w"], affine)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": root.name, "HowToAcknowledge": citation})
    )
    return root


@pytest.fixture(scope="module")
def two_sites(tmp_path_factory):
    """Site A: six participants, 64x64 slices; site B: three, 48x48, two of them with ids
    that site A uses too (sub-00, sub-01)."""
    base = tmp_path_factory.mktemp("sites")
    a = _bids(base / "hospital-a", range(6), 64, "Cite A et al. 2020, doi:10/a.")
    b = _bids(base / "b-scans", (0, 1, 6), 48, "Cite B et al. 2021, doi:10/b.")
    return a, b


def _csv_rows(path) -> list[dict]:
    import csv

    return list(csv.DictReader(path.read_text().splitlines()))


def _import(a, b, out, *extra):
    args = ["data", "import", "--format", "bids", "--root", f"siteA={a}", "--root", str(b)]
    return main([*args, "--out", str(out), "--slices", "1:3", "--quiet", *extra])


def test_two_sources_make_one_data_set_with_each_site_recorded(two_sites, tmp_path, capsys):
    a, b = two_sites
    out = tmp_path / "both"
    assert _import(a, b, out, "--test-fraction", "0.34") == 0
    capsys.readouterr()
    ds = open_dataset(out)
    assert ds.shape == (64, 64)  # holds both sources' slices
    people = {s.participant: s for split in ("train", "test") for s in ds.volume_sources(split)}
    # nine people; the ids both sites use get the site's name, none is merged into another
    assert len(people) == 9
    assert {"siteA-sub-00", "b-scans-sub-00", "siteA-sub-01", "b-scans-sub-01"} <= set(people)
    assert people["sub-06"].site == "b-scans" and people["sub-05"].site == "siteA"
    # each slice knows its site
    for split in ("train", "test"):
        for subject in set(ds.split(split).subjects.tolist()):
            expected = (
                "b-scans" if subject.startswith("b-scans") or subject == "sub-06" else "siteA"
            )
            assert ds.site_of(subject) == expected
    assert main(["data", "info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["sites"] == {"siteA": {"train": 4, "test": 2}, "b-scans": {"train": 2, "test": 1}}
    assert "siteA: Cite A" in info["citation"] and "b-scans: Cite B" in info["citation"]


@pytest.mark.parametrize("seed", range(4))
def test_the_split_is_by_participant_and_stratified_by_site(two_sites, tmp_path, seed):
    a, b = two_sites
    out = tmp_path / f"s{seed}"
    assert _import(a, b, out, "--test-fraction", "0.34", "--seed", str(seed)) == 0
    ds = open_dataset(out)
    sides = {
        split: {(s.site, s.participant) for s in ds.volume_sources(split)}
        for split in ("train", "test")
    }
    assert not sides["train"] & sides["test"]
    test_sites = [site for site, _ in sides["test"]]
    assert test_sites.count("siteA") == 2 and test_sites.count("b-scans") == 1
    for split in ("train", "test"):  # the slices follow their participant's side
        assert {ds.site_of(s) for s in ds.split(split).subjects.tolist()} == {"siteA", "b-scans"}


def test_test_subjects_win_over_the_stratified_split(two_sites, tmp_path):
    a, b = two_sites
    chosen = tmp_path / "test.txt"
    chosen.write_text("siteA-sub-00\nsub-03\n")
    assert _import(a, b, tmp_path / "d", "--test-subjects", str(chosen)) == 0
    ds = open_dataset(tmp_path / "d")
    assert {s.participant for s in ds.volume_sources("test")} == {"siteA-sub-00", "sub-03"}
    assert ds.participants_per_site()["b-scans"] == {"train": 3, "test": 0}


def test_bad_sources_are_usage_errors(two_sites, tmp_path, capsys):
    a, b = two_sites
    base = ["data", "import", "--format", "bids", "--out", str(tmp_path / "x"), "--quiet"]
    same = usage_error(capsys, [*base, "--root", f"s={a}", "--root", f"s={b}"])
    assert "both called 's'" in same
    folders = ["data", "import", "--format", "folders", "--out", str(tmp_path / "y")]
    assert "one --root" in usage_error(capsys, [*folders, "--root", str(a), "--root", str(b)])
    missing = usage_error(capsys, [*base, "--root", str(a), "--root", str(tmp_path / "none")])
    assert "not found" in missing
    assert not (tmp_path / "x").exists()


def test_a_csv_of_pairs_names_its_sites(two_sites, tmp_path):
    a, b = two_sites
    rows = ["subject,t1w,t2w,site"]
    for root, site, ids in ((a, "north", (0, 1, 2, 3)), (b, "south", (0, 1, 6))):
        for i in ids:
            anat = root / f"sub-{i:02d}" / "anat"
            t1, t2 = (anat / f"sub-{i:02d}_{c}.nii.gz" for c in ("T1w", "T2w"))
            rows.append(f"sub-{i:02d},{t1},{t2},{site}")
    csv = tmp_path / "pairs.csv"
    csv.write_text("\n".join(rows) + "\n")
    out = tmp_path / "pairs"
    args = ["data", "import", "--format", "pairs", "--csv", str(csv), "--out", str(out)]
    assert main([*args, "--slices", "1:3", "--test-fraction", "0.3", "--quiet"]) == 0
    ds = open_dataset(out)
    assert ds.sites() == ["north", "south"]
    assert ds.participants_per_site() == {
        "north": {"train": 3, "test": 1},
        "south": {"train": 2, "test": 1},
    }
    assert ds.site_of("south-sub-00") == "south" and ds.site_of("sub-02") == "north"


def test_one_source_keeps_its_split_and_is_one_site(two_sites, tmp_path):
    a, _ = two_sites
    out = tmp_path / "one"
    args = ["data", "import", "--format", "bids", "--root", str(a), "--out", str(out)]
    assert main([*args, "--slices", "1:3", "--quiet"]) == 0
    ds = open_dataset(out)
    assert ds.sites() == ["hospital-a"]
    # the same participants in test as the split of one source has always chosen
    from mrtranslate.data.dataset import split_subjects

    expected = split_subjects([f"sub-{i:02d}" for i in range(6)], 1, 0)["test"]
    assert [s.participant for s in ds.volume_sources("test")] == expected


def test_summaries_by_site_keep_each_sites_images_apart():
    from mrtranslate.evaluation.evaluate import columns, summarise_by_site

    rows = [dict.fromkeys(columns(), float(v)) for v in (1, 1, 3, 3, 3)]
    sites = ["a", "a", "b", "b", "b"]
    by_site = summarise_by_site({"t1-to-t2": rows}, sites)
    assert by_site["a"]["t1-to-t2"]["mae"]["mean"] == 1.0
    assert (
        by_site["b"]["t1-to-t2"]["mae"]["mean"] == 3.0 and by_site["b"]["t1-to-t2"]["mae"]["n"] == 3
    )
    assert summarise_by_site({"t1-to-t2": rows}, ["a"] * 5) == {}  # one site: the pooled table


@pytest.mark.slow
def test_slice_volume_and_report_tables_per_site(two_sites, tmp_path):
    """Two sites through evaluate, evaluate-volumes and report: each per-site table holds
    that site's test images and participants only, beside the pooled one."""
    import numpy as np

    from helpers import trained_and_evaluated
    from mrtranslate.runs import load_evaluation

    a, b = two_sites
    data = tmp_path / "data"
    assert _import(a, b, data, "--test-fraction", "0.34", "--slices", "brain") == 0
    runs = trained_and_evaluated(("generators_s", "simple"), data, tmp_path / "runs")
    summary = load_evaluation(runs[0])
    rows = _csv_rows(runs[0] / "eval" / "metrics.csv")
    for site in ("siteA", "b-scans"):
        mine = [
            float(r["mae_mask"]) for r in rows if r["site"] == site and r["direction"] == "t1-to-t2"
        ]
        stat = summary.measures_by_site[site]["t1-to-t2"]["mae_mask"]
        assert stat["n"] == len(mine) > 0 and np.isclose(stat["mean"], np.mean(mine))
    assert {r["site"] for r in rows} == {"siteA", "b-scans"}

    volumes = tmp_path / "volumes"
    args = ["evaluate-volumes", "--runs", *map(str, runs), "--out", str(volumes), "--quiet"]
    assert main(args) == 0
    result = json.loads((volumes / "summary.json").read_text())
    table = _csv_rows(volumes / "volumes.csv")
    for site, alone in result["sites"].items():
        mine = [r for r in table if r["site"] == site and r["candidate"] == "generators_s"]
        entry = alone["directions"]["t1-to-t2"]["generators_s"]
        forward = [float(r["r"]) for r in mine if r["direction"] == "t1-to-t2"]
        assert entry["n"] == len(forward) == {"siteA": 2, "b-scans": 1}[site]
        assert np.isclose(entry["mean"]["r"], np.mean(forward))
    assert "### Site b-scans" in (volumes / "summary.md").read_text()

    report = tmp_path / "report"
    args = ["report", "--runs", *map(str, runs), "--volumes", str(volumes), "--out", str(report)]
    assert main(args) == 0
    page = (report / "report.html").read_text()
    assert page.count("<h3>Site siteA</h3>") == 2 and page.count("<h3>Site b-scans</h3>") == 2
    by_site = _csv_rows(report / "summary_by_site.csv")
    for row in by_site:
        expected = summary.measures_by_site[row["site"]] if row["model"] == "Generators_s" else None
        if expected:
            assert np.isclose(
                float(row["mae_mean"]), expected[row["direction"]]["mae_mask"]["mean"]
            )
    assert {r["site"] for r in by_site} == {"siteA", "b-scans"}
