"""The data commands through the real command line: help, info, preview and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import usage_error
from mrtranslate.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mrtranslate", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "args", [[], ["data"], ["data", "phantom"], ["data", "info"], ["data", "preview"]]
)
def test_help_of_each_command(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*args, "--help"])
    assert exc.value.code == 0
    assert "usage: mrtranslate" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("mrtranslate ")


def test_phantom_info_end_to_end(tmp_path):
    out = tmp_path / "X"
    res = run_cli(
        "data",
        "phantom",
        "--out",
        str(out),
        "--subjects",
        "50",
        "--test-subjects",
        "10",
        "--seed",
        "1",
        "--size",
        "64x64",
        "--spacing",
        "3",
        "--quiet",
    )
    assert res.returncode == 0, res.stderr
    info = run_cli("data", "info", str(out))
    assert info.returncode == 0
    data = json.loads(info.stdout)
    assert data["splits"]["train"]["images"] == 40 and data["splits"]["test"]["images"] == 10
    assert data["contrasts"] == ["t1w", "t2w"] and data["paired"] is True
    assert data["seed"] == 1 and data["image_shape"] == [64, 64] and data["source"] == "phantom"


def test_preview(small_phantom, tmp_path):
    out = tmp_path / "preview.png"
    assert main(["data", "preview", str(small_phantom), "--out", str(out), "--count", "2"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--subjects", "0"], "subjects"),
        (["--subjects", "-3"], "subjects"),
        (["--test-subjects", "0"], "test-subjects"),
        (["--subjects", "10", "--test-subjects", "12"], "smaller"),
        (["--size", "62x64"], "divisible by 4"),
        (["--size", "28x28"], ">= 32"),
        (["--size", "abc"], "size"),
        (["--slices-per-subject", "0"], "slices"),
    ],
)
def test_phantom_bad_input(tmp_path, capsys, extra, needle):
    out = tmp_path / "d"
    err = usage_error(capsys, ["data", "phantom", "--out", str(out), "--quiet", *extra])
    assert needle in err
    assert not out.exists()


def test_phantom_refuses_non_empty_folder_and_keeps_data(tmp_path, capsys):
    out = tmp_path / "existing"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    err = usage_error(
        capsys,
        [
            "data",
            "phantom",
            "--out",
            str(out),
            "--quiet",
            "--subjects",
            "3",
            "--test-subjects",
            "1",
        ],
    )
    assert "--overwrite" in err
    assert (out / "precious.txt").read_text() == "keep me"


def test_phantom_unwritable_path(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    usage_error(capsys, ["data", "phantom", "--out", str(blocker / "d"), "--quiet"])
    assert blocker.read_text() == "not a folder"


def test_overwrite_replaces_data_set(tmp_path, capsys):
    out = tmp_path / "d"
    base = [
        "data",
        "phantom",
        "--out",
        str(out),
        "--quiet",
        "--subjects",
        "3",
        "--test-subjects",
        "1",
        "--size",
        "32x32",
        "--spacing",
        "6",
    ]
    assert main([*base, "--seed", "1"]) == 0
    assert main([*base, "--seed", "2", "--overwrite"]) == 0
    assert json.loads((out / "dataset.json").read_text())["seed"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial leftovers


def test_info_on_missing_or_foreign_folder(tmp_path, capsys):
    usage_error(capsys, ["data", "info", str(tmp_path / "nope")])
    usage_error(capsys, ["data", "info", str(tmp_path)])
