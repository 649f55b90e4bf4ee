"""The command line sets a short OpenMP spin before PyTorch loads, unless the user chose one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

SHOW = "import os, mrtranslate.cli; print(os.environ.get('GOMP_SPINCOUNT'))"


def _run(env_extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run(
        [sys.executable, "-c", SHOW], env={**env, **env_extra}, capture_output=True, text=True
    )
    return out.stdout.strip()


def test_cli_sets_a_short_spin_unless_the_user_chose():
    assert _run({}) == "10000"
    assert _run({"GOMP_SPINCOUNT": "77"}) == "77"
    assert _run({"OMP_WAIT_POLICY": "PASSIVE"}) == "None"


def test_too_late_once_torch_is_loaded():
    code = "import os, torch, mrtranslate.openmp as o; print(o.configure())"
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "False"


def test_run_records_the_openmp_settings(small_phantom, tmp_path, monkeypatch):
    from mrtranslate.cli import main

    chosen = {"GOMP_SPINCOUNT": "4321", "OMP_WAIT_POLICY": "ACTIVE"}
    for name, value in chosen.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    out = tmp_path / "run"
    args = ["train", "--model", "simple", "--data", str(small_phantom), "--out", str(out)]
    assert main([*args, "--profile", "tiny", "--quiet", "--set", "train.epochs=1"]) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["environment"]["openmp"] == {**chosen, "OMP_NUM_THREADS": None}
