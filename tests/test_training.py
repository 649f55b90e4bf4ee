"""Training runs: CLI errors, run records, exact resume after SIGKILL, DDP, non-finite losses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import usage_error
from mrtranslate.cli import main
from mrtranslate.errors import TrainingError
from mrtranslate.methods import names
from mrtranslate.runs import load_checkpoint, load_run
from mrtranslate.training.run import train_run


def test_bad_set_keys_and_missing_data(small_phantom, tmp_path, capsys):
    base = [
        "train",
        "--model",
        "simple",
        "--data",
        str(small_phantom),
        "--out",
        str(tmp_path / "r"),
        "--profile",
        "tiny",
        "--quiet",
    ]
    assert "unknown config key" in usage_error(capsys, [*base, "--set", "train.epoch=3"])
    assert "int" in usage_error(capsys, [*base, "--set", "train.epochs=three"])
    assert "section.key=value" in usage_error(capsys, [*base, "--set", "train.epochs"])
    assert "precision" in usage_error(capsys, [*base, "--set", "train.precision=fp8"])
    assert "positive" in usage_error(capsys, [*base, "--set", "train.batch_size=0"])
    err = usage_error(
        capsys,
        [
            "train",
            "--model",
            "simple",
            "--data",
            str(tmp_path / "none"),
            "--out",
            str(tmp_path / "r"),
            "--quiet",
        ],
    )
    assert "not found" in err
    assert "invalid choice" in usage_error(capsys, [*base[:2], "nosuchmodel", *base[3:]])
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


@pytest.mark.parametrize("model", names())
def test_each_model_trains_with_tiny_profile(model, small_phantom, tmp_path):
    record = train_run(model, small_phantom, tmp_path / model, profile="tiny", progress=False)
    assert record.finished and record.steps_done == 6
    assert len(record.seconds_per_epoch) == 2
    saved = json.loads((tmp_path / model / "run.json").read_text())
    assert saved["seed"] == 0 and saved["environment"]["torch"] == torch.__version__
    assert Path(saved["data"]["path"]).is_absolute()  # evaluation works from any folder
    assert saved["environment"]["git_commit"]
    cfg = json.loads((tmp_path / model / "config.json").read_text())
    assert cfg["model"] == model and cfg["profile"] == "tiny"
    assert list((tmp_path / model / "tensorboard").iterdir())
    run = load_run(tmp_path / model)
    x = torch.zeros(1, 1, *run.model_image_shape)
    with torch.no_grad():
        y = run.method.translate(x, "t1-to-t2")
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_existing_run_needs_resume(small_phantom, tmp_path, capsys):
    args = [
        "train",
        "--model",
        "simple",
        "--data",
        str(small_phantom),
        "--out",
        str(tmp_path),
        "--profile",
        "tiny",
        "--quiet",
    ]
    assert main(args) == 0
    assert "--resume" in usage_error(capsys, args)
    assert main([*args, "--resume"]) == 0  # finished: nothing more to do


def _weights(path):
    return load_checkpoint(path)["method"]


def _train_cmd(data, out, model, extra=()):
    return [
        sys.executable,
        "-m",
        "mrtranslate",
        "train",
        "--model",
        model,
        "--data",
        str(data),
        "--out",
        str(out),
        "--profile",
        "tiny",
        "--quiet",
        "--set",
        "train.steps_per_epoch=40",
        "--set",
        "train.epochs=3",
        "--set",
        "train.checkpoint_every=1",
        *extra,
    ]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cyclegan", "unit"])
def test_resume_after_sigkill_gives_identical_weights(model, small_phantom, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # Two separate runs are compared, so both must use the same convolution algorithms (with
    # auto each measures its own; a resumed run keeps its checkpoint's: test_conv_algorithms).
    direct = ("--set", "train.conv_algorithm=direct")
    reference = tmp_path / "reference"
    subprocess.run(
        _train_cmd(small_phantom, reference, model, direct), check=True, env=env, timeout=600
    )

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(small_phantom, killed, model, direct), env=env)
    ckpt = killed / "checkpoint.pt"
    deadline = time.time() + 300
    while time.time() < deadline:
        if ckpt.is_file() and load_checkpoint(ckpt)["step"] >= 45:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = load_checkpoint(ckpt)  # the latest checkpoint is intact after the kill
    assert not state["finished"] and 45 <= state["step"] < 120

    subprocess.run(
        [*_train_cmd(small_phantom, killed, model, direct), "--resume"],
        check=True,
        env=env,
        timeout=600,
    )
    ref, res = _weights(reference / "checkpoint.pt"), _weights(ckpt)
    assert ref.keys() == res.keys()
    for key in ref:
        assert torch.equal(ref[key], res[key]), key


@pytest.mark.slow
def test_distributed_training_matches_single_process(small_phantom, tmp_path):
    """2 gloo processes with 2 images each equal 1 process with the global batch of 4.

    The Simple model is used because every one of its parameters has a well-conditioned
    gradient: for convs followed by instance norm the bias gradient is zero up to rounding, and
    Adam's first steps (which normalise the gradient by its magnitude) would turn rounding
    differences between the two summation orders into visible weight differences.
    """
    from mrtranslate.methods import build_method, make_config
    from mrtranslate.training.seed import seed_everything

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = [
        "--model",
        "simple",
        "--data",
        str(small_phantom),
        "--profile",
        "tiny",
        "--quiet",
        "--set",
        "train.batch_size=4",
        "--set",
        "train.steps_per_epoch=4",
        "--precision",
        "fp32",  # bf16 rounding depends on how the batch is split; equality holds in fp32
    ]
    subprocess.run(
        [sys.executable, "-m", "mrtranslate", "train", "--out", str(tmp_path / "single"), *common],
        check=True,
        env=env,
        timeout=600,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "mrtranslate",
            "train",
            "--out",
            str(tmp_path / "ddp"),
            *common,
        ],
        check=True,
        env=env,
        timeout=600,
    )
    single = _weights(tmp_path / "single" / "checkpoint.pt")
    ddp = _weights(tmp_path / "ddp" / "checkpoint.pt")
    assert json.loads((tmp_path / "ddp" / "run.json").read_text())["world_size"] == 2
    for key in single:
        torch.testing.assert_close(ddp[key], single[key], rtol=1e-5, atol=1e-6)
    cfg = make_config("simple", "tiny")
    seed_everything(cfg.train.seed)
    initial = build_method("simple", cfg.net, cfg.loss, (32, 32)).state_dict()
    assert all(not torch.equal(initial[k], single[k]) for k in single)  # training moved them


def test_non_finite_loss_stops_and_keeps_last_checkpoint(small_phantom, tmp_path, monkeypatch):
    from mrtranslate.methods.cyclegan import CycleGAN

    run = tmp_path / "run"
    train_run(
        "cyclegan",
        small_phantom,
        run,
        profile="tiny",
        progress=False,
        overrides=["train.epochs=2"],
        stop_after=3,
    )
    before = load_checkpoint(run / "checkpoint.pt")
    original = CycleGAN.generator_step

    def broken(self, batch):
        loss, logs, fakes = original(self, batch)
        return loss * float("nan"), logs, fakes

    monkeypatch.setattr(CycleGAN, "generator_step", broken)
    with pytest.raises(TrainingError, match="non-finite loss"):
        train_run("cyclegan", small_phantom, run, profile="tiny", progress=False, resume=True)
    after = load_checkpoint(run / "checkpoint.pt")
    assert after["step"] == before["step"] == 3
    for key, value in before["method"].items():
        assert torch.equal(value, after["method"][key])


def test_checkpoint_loading_never_executes_code(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    path = tmp_path / "checkpoint.pt"
    with open(path, "wb") as handle:
        pickle.dump({"format": "mrtranslate-checkpoint", "x": Evil()}, handle, protocol=2)
    from mrtranslate.errors import UsageError

    with pytest.raises(UsageError):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.slow
def test_distributed_cyclegan_is_reproducible_for_a_fixed_number_of_processes(
    small_phantom, tmp_path
):
    """The README's guarantee for models with pools and noise: the same seed and number of
    processes give identical weights (though not those of single-process training)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        args = ["--model", "cyclegan", "--data", str(small_phantom), "--out", str(out)]
        subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
            + ["-m", "mrtranslate", "train", *args, "--profile", "tiny", "--quiet"]
            + ["--precision", "fp32", "--set", "train.batch_size=4"]
            # bitwise equality needs the same convolution algorithms in both runs (auto measures)
            + ["--set", "train.conv_algorithm=direct"],
            check=True,
            env=env,
            timeout=600,
        )
        runs.append(_weights(out / "checkpoint.pt"))
    assert runs[0].keys() == runs[1].keys()
    for key in runs[0]:
        assert torch.equal(runs[0][key], runs[1][key]), key
