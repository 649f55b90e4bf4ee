"""Perceptual study: API flow, no truth leaks, concurrency, crash safety, browser; realism."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from helpers import trained_and_evaluated
from mrtranslate.cli import main
from mrtranslate.data.dataset import open_dataset
from mrtranslate.perceptual import store
from mrtranslate.perceptual.app import create_app

ARTIFACTS = Path(os.environ.get("MRTRANSLATE_TEST_ARTIFACTS", "test-artifacts"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def gan_runs(small_phantom, tmp_path_factory):
    return trained_and_evaluated(
        ("cyclegan", "unit"), small_phantom, tmp_path_factory.mktemp("gan_runs")
    )


@pytest.fixture(scope="module")
def study_template(small_phantom, gan_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("studies") / "template"
    assert (
        main(
            [
                "perceptual",
                "build",
                "--data",
                str(small_phantom),
                "--runs",
                *map(str, gan_runs),
                "--out",
                str(out),
                "--real",
                "8",
                "--synthetic",
                "4",
            ]
        )
        == 0
    )
    return out


@pytest.fixture
def study(study_template, tmp_path):
    dest = tmp_path / "study"
    shutil.copytree(study_template, dest)
    return dest


def _truth(study: Path) -> dict[str, dict]:
    return {img["id"]: img for img in store.all_rows(study)["images"]}


def _admin_token(study: Path) -> str:
    conn = store.connect(study)
    try:
        return store.get_meta(conn, "admin_token")
    finally:
        conn.close()


def test_build_is_balanced(study):
    images = list(_truth(study).values())
    assert len(images) == 12
    real = [i for i in images if i["truth"] == "real"]
    synthetic = [i for i in images if i["truth"] == "synthetic"]
    assert len(real) == 8 and len(synthetic) == 4
    assert sorted(i["contrast"] for i in real) == ["t1w"] * 4 + ["t2w"] * 4
    assert sorted((i["contrast"], i["model"]) for i in synthetic) == [
        ("t1w", "CycleGAN"),
        ("t1w", "UNIT"),
        ("t2w", "CycleGAN"),
        ("t2w", "UNIT"),
    ]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i["id"]) for i in images)
    assert "truth" not in (study / "study.json").read_text()


def _join(client, name="Ada"):
    res = client.post("/api/readers", json={"name": name})
    assert res.status_code == 200
    return res.json()["token"]


def test_reader_flow_resume_and_no_second_answer(study):
    client = TestClient(create_app(study))
    assert "Real or synthetic?" in client.get("/").text
    token = _join(client)
    assert client.get(f"/r/{token}").status_code == 200
    seen = []
    for _ in range(5):
        nxt = client.get(f"/api/r/{token}/next").json()
        assert nxt["position"] == len(seen) + 1 and nxt["total"] == 12
        assert client.get(nxt["image_url"]).headers["content-type"] == "image/png"
        res = client.post(
            f"/api/r/{token}/answer", json={"image_id": nxt["image_id"], "label": "real"}
        )
        assert res.status_code == 200 and res.json()["answered"] == len(seen) + 1
        seen.append(nxt["image_id"])
    # a second answer to an answered image is refused and changes nothing
    res = client.post(f"/api/r/{token}/answer", json={"image_id": seen[0], "label": "synthetic"})
    assert res.status_code == 409
    # "close the browser": a brand-new client with the personal link continues at image 6
    client2 = TestClient(create_app(study))
    nxt = client2.get(f"/api/r/{token}/next").json()
    assert nxt["position"] == 6 and nxt["image_id"] not in seen
    while not nxt["done"]:
        client2.post(
            f"/api/r/{token}/answer", json={"image_id": nxt["image_id"], "label": "synthetic"}
        )
        nxt = client2.get(f"/api/r/{token}/next").json()
    assert nxt == {"done": True, "answered": 12, "total": 12}
    answers = store.all_rows(study)["answers"]
    assert len(answers) == 12
    assert [a["label"] for a in answers if a["image_id"] == seen[0]] == ["real"]


def test_readers_get_different_orders(study):
    client = TestClient(create_app(study))
    firsts = set()
    for i in range(6):
        token = _join(client, f"r{i}")
        order = [client.get(f"/api/r/{token}/next").json()["image_id"]]
        firsts.add(order[0])
    assert len(firsts) > 1


def test_admin_results_need_the_token(study):
    client = TestClient(create_app(study))
    token = _join(client)
    nxt = client.get(f"/api/r/{token}/next").json()
    client.post(f"/api/r/{token}/answer", json={"image_id": nxt["image_id"], "label": "real"})
    for path in ("/admin", "/admin/results.json", "/admin/results.csv"):
        assert client.get(path).status_code == 403
        assert client.get(path, params={"token": "0" * 32}).status_code == 403
    admin = _admin_token(study)
    results = client.get("/admin/results.json", headers={"X-Admin-Token": admin}).json()
    assert results["overall"]["answers"] == 1 and results["readers"] == 1
    assert set(results["by_model"]) == {"CycleGAN", "UNIT"}
    csv_text = client.get("/admin/results.csv", params={"token": admin}).text
    assert csv_text.startswith("reader_id,reader_name,position,image_id,label,truth")
    assert "Perceptual study results" in client.get("/admin", params={"token": admin}).text


@pytest.mark.parametrize(
    "method,path,kwargs,status",
    [
        (
            "post",
            "/api/readers",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            422,
        ),
        ("post", "/api/readers", {"json": {"name": ""}}, 422),
        ("post", "/api/readers", {"json": {"name": "x" * 101}}, 422),
        (
            "post",
            "/api/readers",
            {"content": b"{" + b"x" * 10000, "headers": {"content-type": "application/json"}},
            413,
        ),
        ("get", "/api/r/" + "f" * 32 + "/next", {}, 404),
        ("get", "/api/r/../../etc/passwd/next", {}, 404),
        ("get", "/img/../study.sqlite", {}, 404),
        ("get", "/img/" + "0" * 32 + ".png", {}, 404),
        ("get", "/r/not-a-token", {}, 404),
    ],
)
def test_malformed_requests_get_4xx(study, method, path, kwargs, status):
    client = TestClient(create_app(study), raise_server_exceptions=False)
    res = getattr(client, method)(path, **kwargs)
    assert res.status_code == status, res.text


@pytest.mark.parametrize(
    "payload",
    [
        {"image_id": "0" * 32, "label": "real"},
        {"image_id": "zz", "label": "real"},
        {"label": "real"},
        {"image_id": None, "label": "maybe"},
    ],
)
def test_bad_answers_get_4xx(study, payload):
    client = TestClient(create_app(study), raise_server_exceptions=False)
    token = _join(client)
    res = client.post(f"/api/r/{token}/answer", json=payload)
    assert 400 <= res.status_code < 500


def test_nothing_but_pixels_separates_real_from_synthetic(study):
    from PIL import Image

    truth = _truth(study)
    client = TestClient(create_app(study))
    token = _join(client)
    page = client.get(f"/r/{token}").text
    headers, nexts, sizes = {}, {}, set()
    while True:
        nxt = client.get(f"/api/r/{token}/next").json()
        if nxt["done"]:
            break
        image_id = nxt["image_id"]
        kind = truth[image_id]["truth"]
        nexts.setdefault(kind, set()).add(tuple(sorted(nxt)))
        res = client.get(nxt["image_url"])
        headers.setdefault(kind, set()).add(
            tuple(sorted((k, v) for k, v in res.headers.items() if k != "content-length"))
        )
        img = Image.open(study / "images" / f"{image_id}.png")
        assert img.mode == "L" and not img.info  # no text chunks, no gamma, no dpi
        sizes.add(img.size)
        client.post(f"/api/r/{token}/answer", json={"image_id": image_id, "label": "real"})
    assert nexts["real"] == nexts["synthetic"]  # the same fields for every image
    assert headers["real"] == headers["synthetic"]  # the same headers apart from the length
    assert len(sizes) == 1  # one display size for all
    files = sorted(p.name for p in (study / "images").iterdir())
    assert all(re.fullmatch(r"[0-9a-f]{32}\.png", f) for f in files)
    for image_id, img in truth.items():  # no id, URL or page text carries the truth
        for word in ("real", "synth", img["model"] or "model", img["subject"]):
            assert word.lower() not in image_id
    assert "CycleGAN" not in page and "phantom-" not in page
    raw = (study / "images" / files[0]).read_bytes()
    chunks = re.findall(rb"(tEXt|iTXt|zTXt|eXIf|tIME)", raw)
    assert not chunks


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(study: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mrtranslate",
            "perceptual",
            "serve",
            str(study),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


@pytest.mark.slow
def test_twenty_concurrent_readers_store_each_answer_once(study):
    port = _free_port()
    proc = _start_server(study, port)
    base = f"http://127.0.0.1:{port}"
    errors = []

    def reader(i: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            token = client.post("/api/readers", json={"name": f"reader {i}"}).json()["token"]
            while True:
                nxt = client.get(f"/api/r/{token}/next").json()
                if nxt["done"]:
                    return
                body = {"image_id": nxt["image_id"], "label": "real" if i % 2 else "synthetic"}
                res = client.post(f"/api/r/{token}/answer", json=body)
                again = client.post(f"/api/r/{token}/answer", json=body)  # a double click
                if res.status_code != 200 or again.status_code != 409:
                    errors.append((res.status_code, again.status_code))
                    return

    try:
        threads = [threading.Thread(target=reader, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert not errors
    rows = store.all_rows(study)
    assert len(rows["readers"]) == 20
    pairs = [(a["reader_id"], a["image_id"]) for a in rows["answers"]]
    assert len(pairs) == 20 * 12 and len(set(pairs)) == len(pairs)


@pytest.mark.slow
def test_sigkill_mid_study_loses_no_submitted_answer(study):
    port = _free_port()
    proc = _start_server(study, port)
    base = f"http://127.0.0.1:{port}"
    acknowledged = []
    with httpx.Client(base_url=base, timeout=30) as client:
        token = client.post("/api/readers", json={"name": "crash"}).json()["token"]
        for _ in range(5):
            nxt = client.get(f"/api/r/{token}/next").json()
            res = client.post(
                f"/api/r/{token}/answer", json={"image_id": nxt["image_id"], "label": "real"}
            )
            assert res.status_code == 200
            acknowledged.append(nxt["image_id"])
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc = _start_server(study, port)
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            nxt = client.get(f"/api/r/{token}/next").json()
            assert nxt["position"] == 6 and nxt["image_id"] not in acknowledged
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    stored = [a["image_id"] for a in store.all_rows(study)["answers"]]
    assert stored == acknowledged


@pytest.mark.slow
def test_reader_flow_in_a_real_browser(study):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Debian's chromium is required in CI ({CHROMIUM} not found)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    port = _free_port()
    proc = _start_server(study, port)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                ],
            )
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.fill("#name", "Browser Reader")
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(r".*/r/[0-9a-f]{32}$"))
            page.wait_for_function("document.getElementById('progress').textContent === '1 / 12'")
            page.screenshot(path=str(ARTIFACTS / "perceptual_reader.png"))
            for i in range(12):
                page.wait_for_function(
                    f"document.getElementById('progress').textContent === '{i + 1} / 12' && "
                    "!document.getElementById('real').disabled"
                )
                if i % 3 == 0:
                    page.click("#real")
                elif i % 3 == 1:
                    page.keyboard.press("s")
                else:
                    page.keyboard.press("R")
            page.wait_for_function(
                "document.getElementById('status').textContent.includes('Thank you')"
            )
            page.screenshot(path=str(ARTIFACTS / "perceptual_done.png"))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    answers = store.all_rows(study)["answers"]
    assert len(answers) == 12
    assert [a["label"] for a in answers] == ["real", "synthetic", "real"] * 4
    assert (ARTIFACTS / "perceptual_reader.png").stat().st_size > 1000


def test_serve_refuses_remote_bind_without_flag(study, capsys):
    code = main(["perceptual", "serve", str(study), "--host", "0.0.0.0"])
    assert code == 2 and "--allow-remote" in capsys.readouterr().err


def test_analyze_writes_results_and_figures(study, tmp_path):
    client = TestClient(create_app(study))
    for name in ("a", "b"):
        token = _join(client, name)
        while not (nxt := client.get(f"/api/r/{token}/next").json())["done"]:
            client.post(
                f"/api/r/{token}/answer", json={"image_id": nxt["image_id"], "label": "real"}
            )
    out = tmp_path / "analysis"
    assert main(["perceptual", "analyze", str(study), "--out", str(out)]) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["overall"]["answers"] == 24
    assert result["overall"]["accuracy"] == pytest.approx(16 / 24)  # all labelled real
    assert result["overall"]["specificity"] == 1.0 and result["overall"]["sensitivity"] == 0.0
    assert result["agreement"]["pairs"][0]["cohen_kappa"] == pytest.approx(1.0)
    for name in (
        "figure1d_perceptual_totals.png",
        "figure1e_perceptual_models.png",
        "answers.csv",
        "results.html",
    ):
        assert (out / name).stat().st_size > 0


def test_statistics_known_answers():
    from mrtranslate.perceptual.analysis import cohen_kappa, fleiss_kappa, wilson

    low, high = wilson(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    assert cohen_kappa(["real", "synthetic"] * 5, ["synthetic", "real"] * 5) == pytest.approx(-1)
    assert fleiss_kappa(np.array([[2, 0], [0, 2], [2, 0]])) == pytest.approx(1.0)


def test_realism_observer(small_phantom, gan_runs, tmp_path, capsys):
    assert (
        main(
            [
                "realism",
                "--data",
                str(small_phantom),
                "--runs",
                *map(str, gan_runs),
                "--out",
                str(tmp_path),
                "--folds",
                "2",
                "--epochs",
                "2",
            ]
        )
        == 0
    )
    result = json.loads((tmp_path / "realism.json").read_text())
    for model in ("CycleGAN", "UNIT"):
        for contrast in ("t1w", "t2w"):
            entry = result["models"][model][contrast]
            assert 0 <= entry["accuracy"] <= 1 and entry["held_out_images"] == 8
            assert entry["high_frequency_ratio"] > 0
    assert "observer accuracy" in capsys.readouterr().out


def test_realism_on_real_images_posing_as_synthetic_is_chance(small_phantom, gan_runs, tmp_path):
    """A control: when a run's "synthetic" images are the real ones, no observer can do better
    than chance (each real/synthetic pair is the same image: exactly half right) and the
    fine-detail ratio is exactly 1."""
    from mrtranslate.data.tensors import load_images, to_data_range
    from mrtranslate.directions import Direction
    from mrtranslate.runs import layout, load_evaluation

    run = tmp_path / "control"
    shutil.copytree(gan_runs[0], run)
    summary = load_evaluation(run)
    split = open_dataset(small_phantom).split("test")
    for contrast in ("t1w", "t2w"):
        real = to_data_range(load_images(split, contrast, tuple(summary.evaluation_shape)))
        np.save(layout.synthetic_path(run, Direction.producing(contrast)), real[:, 0].numpy())
    args = ["realism", "--data", str(small_phantom), "--runs", str(run), "--out", str(tmp_path)]
    assert main([*args, "--folds", "2", "--epochs", "3"]) == 0
    result = json.loads((tmp_path / "realism.json").read_text())
    for entry in result["models"][summary.display_name].values():
        assert entry["accuracy"] == 0.5
        assert entry["high_frequency_ratio"] == pytest.approx(1.0)


def test_observer_separates_obviously_different_images():
    import torch

    from mrtranslate.perceptual.realism import high_frequency_fraction, observer_accuracy

    gen = torch.Generator().manual_seed(0)
    real = torch.rand(40, 1, 32, 32, generator=gen) * 2 - 1
    smooth = torch.nn.functional.avg_pool2d(real, 5, stride=1, padding=2)
    result = observer_accuracy(real, smooth, folds=4, epochs=15)
    assert result["accuracy"] > 0.9
    assert high_frequency_fraction(((smooth + 1) / 2)[:, 0].numpy()) < high_frequency_fraction(
        ((real + 1) / 2)[:, 0].numpy()
    )


def test_report_includes_perceptual_and_realism(small_phantom, gan_runs, study, tmp_path):
    client = TestClient(create_app(study))
    token = _join(client)
    nxt = client.get(f"/api/r/{token}/next").json()
    client.post(f"/api/r/{token}/answer", json={"image_id": nxt["image_id"], "label": "real"})
    assert (
        main(
            [
                "realism",
                "--data",
                str(small_phantom),
                "--runs",
                *map(str, gan_runs),
                "--out",
                str(tmp_path / "realism"),
                "--folds",
                "2",
                "--epochs",
                "1",
            ]
        )
        == 0
    )
    out = tmp_path / "report"
    assert (
        main(
            [
                "report",
                "--runs",
                *map(str, gan_runs),
                "--out",
                str(out),
                "--perceptual",
                str(study),
                "--realism",
                str(tmp_path / "realism"),
            ]
        )
        == 0
    )
    page = (out / "report.html").read_text()
    assert "Perceptual study (Figure 1 d, e)" in page and "Automated observer" in page
    assert page.count("data:image/png;base64,") == 5
    assert (out / "perceptual" / "figure1e_perceptual_models.png").is_file()


def test_admin_page_links_work(study):
    client = TestClient(create_app(study))
    admin = _admin_token(study)
    page = client.get("/admin", params={"token": admin}).text
    links = re.findall(r"href='([^']+)'", page)
    assert len(links) == 2
    for link in links:
        assert client.get(link.replace("&amp;", "&")).status_code == 200


# ---------------------------------------------------------------- blinding and hardening


def _build(small_phantom, gan_runs, out: Path, real: int, synthetic: int, seed: int = 0) -> Path:
    args = ["perceptual", "build", "--data", str(small_phantom), "--runs", *map(str, gan_runs)]
    counts = ["--real", str(real), "--synthetic", str(synthetic), "--seed", str(seed)]
    assert main([*args, "--out", str(out), *counts]) == 0
    return out


@pytest.fixture(scope="module")
def large_study(small_phantom, gan_runs, tmp_path_factory):
    """120 images (60 real, 60 synthetic) from tiny runs whose images look nothing like real."""
    return _build(small_phantom, gan_runs, tmp_path_factory.mktemp("large") / "s", 60, 60)


def _position_p_value(positions: dict[str, list[int]], n: int) -> float:
    """Two-sided permutation p-value of the difference in mean position (synthetic - real)."""
    rng = np.random.default_rng(0)
    synthetic, real = np.array(positions["synthetic"]), np.array(positions["real"])
    observed = abs(synthetic.mean() - real.mean())
    pooled = np.concatenate([synthetic, real])
    count = 0
    for _ in range(n):
        rng.shuffle(pooled)
        count += abs(pooled[: len(synthetic)].mean() - pooled[len(synthetic) :].mean()) >= observed
    return (count + 1) / (n + 1)


def _attack(study: Path, readers: int) -> tuple[dict, float]:
    """What an attacker sees as a reader: ids, order, bytes and headers, joined with the truth
    (from the database) only afterwards, to test whether any of them predicts it."""
    truth = _truth(study)
    client = TestClient(create_app(study))
    lengths, headers, positions = {}, {}, {"real": [], "synthetic": []}
    for r in range(readers):
        token = _join(client, f"attacker {r}")
        position = 0
        while True:
            nxt = client.get(f"/api/r/{token}/next").json()
            if nxt["done"]:
                break
            position += 1
            kind = truth[nxt["image_id"]]["truth"]
            positions[kind].append(position)
            if r == 0:  # the bytes are the same for every reader
                res = client.get(nxt["image_url"])
                lengths.setdefault(kind, set()).add(len(res.content))
                headers.setdefault(kind, set()).add(tuple(sorted(res.headers.items())))
            client.post(
                f"/api/r/{token}/answer", json={"image_id": nxt["image_id"], "label": "real"}
            )
    return {"lengths": lengths, "headers": headers}, _position_p_value(positions, 2000)


def test_no_side_channel_predicts_the_truth(small_phantom, gan_runs, large_study, tmp_path):
    from PIL import Image

    truth = _truth(large_study)
    assert len(truth) == 120
    # The synthetic images really differ: their mean absolute deviation from mid-grey differs.
    pixels = {
        kind: [
            np.asarray(Image.open(large_study / "images" / f"{i}.png"), dtype=float).std()
            for i, img in truth.items()
            if img["truth"] == kind
        ]
        for kind in ("real", "synthetic")
    }
    assert abs(np.mean(pixels["real"]) - np.mean(pixels["synthetic"])) > 1.0
    seen, p_value = _attack(large_study, readers=3)
    # Bytes and headers: one length and one set of headers (Content-Length included) for all.
    assert seen["lengths"]["real"] == seen["lengths"]["synthetic"]
    assert len(seen["lengths"]["real"]) == 1
    assert seen["headers"]["real"] == seen["headers"]["synthetic"]
    assert len(seen["headers"]["real"] | seen["headers"]["synthetic"]) == 1
    # Order: the truth at each position is independent of the position (permutation test at
    # the 5% level; a fresh set of readers is asked when the first rejects, so a chance
    # rejection (5%) fails the test only with probability 0.25%).
    if p_value < 0.05:
        _, p_value = _attack(large_study, readers=3)
    assert p_value >= 0.05
    # Ids: the same seed chooses the same images but gives other, unrelated ids.
    again = _build(small_phantom, gan_runs, tmp_path / "again", 60, 60)
    other = _truth(again)
    assert not set(other) & set(truth)

    def selection(images: dict) -> list:
        return sorted(
            (img["truth"], img["contrast"], img["model"] or "", img["subject"])
            for img in images.values()
        )

    assert selection(truth) == selection(other)


def test_body_limit_holds_for_chunked_transfer(study):
    client = TestClient(create_app(study), raise_server_exceptions=False)

    def chunks(total: int, size: int = 65536):
        yield b'{"name": "'
        for _ in range(total // size):
            yield b"x" * size
        yield b'"}'

    res = client.post(
        "/api/readers", content=chunks(1 << 20), headers={"content-type": "application/json"}
    )
    assert res.status_code == 413
    small = client.post(
        "/api/readers",
        content=iter([b'{"name": ', b'"chunked reader"}']),
        headers={"content-type": "application/json"},
    )
    assert small.status_code == 200  # a small chunked body still works
    assert len(store.all_rows(study)["readers"]) == 1


@pytest.mark.parametrize("name", ["\ud800", "line\nbreak", "bell\x07", "   ", "x" * 101])
def test_bad_reader_names_get_422(study, name):
    client = TestClient(create_app(study), raise_server_exceptions=False)
    body = json.dumps({"name": name}).encode()
    res = client.post("/api/readers", content=body, headers={"content-type": "application/json"})
    assert res.status_code == 422, res.text
    assert store.all_rows(study)["readers"] == []


def test_readers_with_the_same_name_stay_apart_and_csv_is_neutralised(study):
    client = TestClient(create_app(study))
    tokens = [_join(client, "Ada"), _join(client, "Ada"), _join(client, '=HYPERLINK("x")')]
    for token, label in zip(tokens, ("real", "synthetic", "real")):
        for _ in range(4):
            nxt = client.get(f"/api/r/{token}/next").json()
            client.post(
                f"/api/r/{token}/answer", json={"image_id": nxt["image_id"], "label": label}
            )
    admin = _admin_token(study)
    results = client.get("/admin/results.json", params={"token": admin}).json()
    per_reader = results["per_reader"]
    assert [r["name"] for r in per_reader] == ["Ada", "Ada", '=HYPERLINK("x")']
    assert len({r["reader_id"] for r in per_reader}) == 3
    assert all(r["answers"] == 4 for r in per_reader)
    assert len(results["agreement"]["pairs"]) == 3
    csv_text = client.get("/admin/results.csv", params={"token": admin}).text
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert len(rows) == 12 and len({r["reader_id"] for r in rows}) == 3
    assert {r["reader_name"] for r in rows} == {"Ada", '\'=HYPERLINK("x")'}
    assert not any(cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r.values())
