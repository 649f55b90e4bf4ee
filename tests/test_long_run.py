"""Trust over a long run: a resume keeps the decisions taken at the run's start, resumes across
the plain and fast paths, and updates with non-finite gradients are skipped (issue: trust over
a long run)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers import usage_error
from mrtranslate.cli import main
from mrtranslate.errors import TrainingError
from mrtranslate.runs import layout
from mrtranslate.training.run import train_run
from test_fast_path_training import _trainer


def _tiny(model, data, run, overrides=(), resume=False, stop_after=None):
    return train_run(
        model,
        data,
        run,
        profile="tiny",
        overrides=["train.conv_algorithm=direct", *overrides],
        resume=resume,
        progress=False,
        stop_after=stop_after,
    )


@pytest.mark.parametrize(("first", "then"), [("off", "on"), ("on", "off")])
def test_resume_across_plain_and_fast_paths(small_phantom, tmp_path, first, then):
    """A checkpoint of the plain path (unfused Adam) resumes on the fast path and the reverse,
    e.g. a run started on a CPU and resumed on a GPU."""
    run = tmp_path / "run"
    _tiny("cyclegan", small_phantom, run, [f"train.fast_path={first}"], stop_after=3)
    record = _tiny("cyclegan", small_phantom, run, [f"train.fast_path={then}"], resume=True)
    assert record.finished
    state = torch.load(layout.checkpoint_path(run), weights_only=False)
    assert state["decisions"]["fast_path"] is (then == "on")
    assert state["opt_g"]["param_groups"][0]["fused"] == (True if then == "on" else None)


def _auto_resolves_to(monkeypatch, precision: str) -> None:
    """``train.precision=auto`` resolves to ``precision`` (fp32: as on a CPU without native
    bf16), whatever this CPU would choose: these tests must not depend on the machine."""
    from mrtranslate import hardware

    real = hardware.resolve_precision
    native = precision == "bf16"

    def fixed_auto(requested, device):
        if requested == "auto":
            return hardware.PrecisionChoice("auto", precision, "cpu", native, "probe (test)")
        return real(requested, device)

    monkeypatch.setattr("mrtranslate.training.run.resolve_precision", fixed_auto)


def test_resume_keeps_the_recorded_decisions_instead_of_deciding_again(
    small_phantom, tmp_path, monkeypatch, capsys
):
    """The run started in fp32 on the plain path; on resume ``auto`` would now choose bf16 and
    the fast path (a borderline probe, or another machine): the recorded choices are kept."""
    from mrtranslate.training import trainer as trainer_module

    run = tmp_path / "run"
    _auto_resolves_to(monkeypatch, "fp32")
    _tiny("generators_s", small_phantom, run, ["train.precision=auto"], stop_after=2)
    started = torch.load(layout.checkpoint_path(run), weights_only=False)["decisions"]
    assert started == {"device": "cpu", "precision": "fp32", "fast_path": False}

    _auto_resolves_to(monkeypatch, "bf16")
    precisions = []
    real_init = trainer_module.Trainer.__init__

    def spy(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        precisions.append((self.precision, self.fast_path))

    monkeypatch.setattr(trainer_module.Trainer, "__init__", spy)
    capsys.readouterr()
    record = train_run("generators_s", small_phantom, run, resume=True, progress=True)
    assert precisions == [("fp32", False)]
    assert record.precision == "fp32"
    assert "decisions recorded at the run's start: cpu, fp32, plain path" in capsys.readouterr().out


def test_resume_of_a_gpu_run_without_a_gpu_names_the_override(small_phantom, tmp_path, capsys):
    run = tmp_path / "run"
    _tiny("simple", small_phantom, run, stop_after=1)
    path = layout.checkpoint_path(run)
    state = torch.load(path, weights_only=False)
    state["decisions"]["device"] = "cuda"
    torch.save(state, path)
    args = ["train", "--model", "simple", "--data", str(small_phantom), "--out", str(run)]
    err = usage_error(capsys, [*args, "--resume"])
    assert "started on a GPU" in err and "train.device=cpu" in err
    assert torch.load(path, weights_only=False)["step"] == state["step"]  # nothing changed
    assert main([*args, "--resume", "--set", "train.device=cpu", "--quiet"]) == 0


def test_resume_of_a_bf16_run_where_bf16_is_not_native_stops(
    small_phantom, tmp_path, capsys, monkeypatch
):
    run = tmp_path / "run"
    _tiny("simple", small_phantom, run, stop_after=1)
    path = layout.checkpoint_path(run)
    state = torch.load(path, weights_only=False)
    state["decisions"]["precision"] = "bf16"  # recorded on a machine with native bf16
    torch.save(state, path)
    _auto_resolves_to(monkeypatch, "fp32")  # and this one has none
    args = ["train", "--model", "simple", "--data", str(small_phantom), "--out", str(run)]
    err = usage_error(capsys, [*args, "--resume", "--set", "train.precision=auto"])
    assert "train.precision=fp32" in err and "train.precision=bf16" in err


class _NanGradient(torch.autograd.Function):
    """Forward: a zero scalar (the loss stays finite); backward: NaN for ``weight``."""

    @staticmethod
    def forward(ctx, weight):
        ctx.shape = weight.shape
        return weight.new_zeros(())

    @staticmethod
    def backward(ctx, grad):
        return torch.full(ctx.shape, float("nan"), device=grad.device)


def _poison(trainer, monkeypatch, step_name: str) -> None:
    """Make ``step_name``'s loss finite but its first parameter's gradient NaN."""
    real_step = getattr(trainer.method, step_name)
    params = trainer.g_params if step_name == "generator_step" else trainer.d_params

    def poisoned(*args):
        loss, *rest = real_step(*args)
        return (loss + _NanGradient.apply(params[0]), *rest)

    monkeypatch.setattr(trainer.method, step_name, poisoned)


def test_plain_path_refuses_an_update_with_non_finite_gradients(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, "off")
    trainer.step_tensors(0)
    before = {k: v.clone() for k, v in trainer.method.state_dict().items()}
    _poison(trainer, monkeypatch, "generator_step")
    with pytest.raises(TrainingError, match="non-finite gradients"):
        trainer.step_tensors(1)
    for name, value in trainer.method.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_fast_path_skips_updates_with_non_finite_gradients_and_counts_steps(tmp_path, monkeypatch):
    """Both optimisers of one step see NaN gradients: both updates are skipped, and the report
    counts one step, not two optimiser calls."""
    trainer = _trainer(tmp_path, "on")
    trainer.step_tensors(0)
    before = {k: v.clone() for k, v in trainer.method.named_parameters()}
    _poison(trainer, monkeypatch, "generator_step")
    _poison(trainer, monkeypatch, "discriminator_step")
    trainer.step_tensors(1)
    monkeypatch.undo()
    for name, value in trainer.method.named_parameters():
        assert torch.equal(value, before[name]), name
    trainer.state.step = 2
    with pytest.raises(TrainingError, match=r"in 1 step\(s\)"):
        trainer.report_skipped()


def _poison_step(trainer, monkeypatch, bad_step: int) -> None:
    """The generator's gradients are NaN at training step ``bad_step`` only."""
    real_update = trainer.generator_update

    def update(batch, step):
        if step != bad_step:
            return real_update(batch, step)
        with monkeypatch.context() as patch:
            _poison(trainer, patch, "generator_step")
            return real_update(batch, step)

    monkeypatch.setattr(trainer, "generator_update", update)


@pytest.mark.parametrize(
    "settings",
    [
        # the end of an epoch (step 3) comes before the next logging step
        ["train.log_every=100", "train.steps_per_epoch=3"],
        # a checkpoint_every save (step 2) comes before the next logging step
        ["train.log_every=100", "train.checkpoint_every=2"],
    ],
    ids=["epoch-end", "checkpoint-every"],
)
def test_no_checkpoint_is_written_over_a_skipped_update(tmp_path, monkeypatch, settings):
    trainer = _trainer(tmp_path, "on", extra=settings)
    _poison_step(trainer, monkeypatch, bad_step=1)
    with pytest.raises(TrainingError, match=r"in 1 step\(s\)"):
        trainer.fit({})
    assert not layout.checkpoint_path(tmp_path / "on").exists()
    assert trainer.state.step in (2, 3)


def test_a_run_trained_further_after_its_evaluation_is_not_reported(
    small_phantom, tmp_path, capsys
):
    """'Evaluated' means: of this checkpoint (its SHA-256), not 'a newer file'. A run evaluated,
    then resumed for more epochs, must be evaluated again before a report uses its numbers."""
    import json

    from mrtranslate.runs import is_evaluated

    run = tmp_path / "simple"
    _tiny("simple", small_phantom, run)
    assert main(["evaluate", "--run", str(run), "--quiet"]) == 0
    assert is_evaluated(run)
    summary = json.loads(layout.summary_path(run).read_text())
    assert summary["checkpoint"].startswith("sha256:")
    _tiny("simple", small_phantom, run, ["train.epochs=3"], resume=True)
    layout.summary_path(run).touch()  # newer than the checkpoint: file times would say "fresh"
    assert not is_evaluated(run)
    err = usage_error(capsys, ["report", "--runs", str(run), "--out", str(tmp_path / "r")])
    assert "older checkpoint" in err and "mrtranslate evaluate" in err
    assert not (tmp_path / "r").exists()
    assert main(["evaluate", "--run", str(run), "--quiet"]) == 0
    assert main(["report", "--runs", str(run), "--out", str(tmp_path / "r")]) == 0


def _plain_path_worker(rank: int, port: int, folder: str, results) -> None:
    import datetime

    import torch.distributed as dist

    from mrtranslate.training.distributed import DistInfo

    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=2,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        trainer = _trainer(Path(folder) / str(rank), "off")
        trainer.dist = DistInfo(rank=rank, world_size=2, local_rank=rank)
        trainer.step_tensors(0)
        if rank == 1:  # only this rank's gradients are NaN (its loss is finite)
            real_update = trainer.generator_update

            def update(batch, step):
                import pytest as _pytest

                with _pytest.MonkeyPatch.context() as patch:
                    _poison(trainer, patch, "generator_step")
                    return real_update(batch, step)

            trainer.generator_update = update
        try:
            trainer.step_tensors(1)
            results[rank] = "trained on"
        except TrainingError:
            results[rank] = "stopped"
    finally:
        dist.destroy_process_group()


def test_plain_path_non_finite_gradients_on_one_rank_stop_every_rank(tmp_path):
    """Two gloo processes on the plain path: a NaN on one rank stops both, neither waits for
    the other in a collective."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_plain_path_worker, args=(port, str(tmp_path), results), nprocs=2, join=True)
    assert dict(results) == {0: "stopped", 1: "stopped"}
