"""The training fast path (``train.fast_path``; on by default on CUDA only): fused Adam, images
resident on the device, and no host synchronisation inside a step. Tested on the CPU, where the
same code runs with ``train.fast_path=on``."""

from __future__ import annotations

import pytest
import torch

from mrtranslate.config import apply_overrides
from mrtranslate.errors import TrainingError
from mrtranslate.methods import build_method, make_config
from mrtranslate.training.decisions import decide
from mrtranslate.training.trainer import Trainer, TrainingData

SIZE = (32, 32)


def _trainer(tmp_path, fast: str, model: str = "cyclegan", extra=()) -> Trainer:
    cfg = make_config(model, "quick")
    apply_overrides(
        cfg,
        [
            "net.width=4",
            "net.blocks=2",
            "net.disc_width=8",
            "train.precision=fp32",
            "train.steps_per_epoch=100",
            f"train.fast_path={fast}",
            "train.conv_algorithm=direct",
            *extra,
        ],
    )
    torch.manual_seed(0)
    method = build_method(model, cfg.net, cfg.loss, SIZE)
    gen = torch.Generator().manual_seed(1)
    data = TrainingData(
        t1w=torch.rand(4, 1, *SIZE, generator=gen) * 2 - 1,
        t2w=torch.rand(4, 1, *SIZE, generator=gen) * 2 - 1,
    )
    return Trainer(method, cfg.train, data, tmp_path / fast, decide(cfg.train), progress=False)


def test_fast_path_is_selected_on_cuda_only_by_default(tmp_path):
    assert not _trainer(tmp_path, "auto").fast_path  # this is a CPU
    trainer = _trainer(tmp_path, "on")
    assert trainer.fast_path and trainer.opt_g.defaults["fused"] is True
    assert _trainer(tmp_path, "off").opt_g.defaults["fused"] is None


def test_fast_path_computes_the_plain_path_s_losses(tmp_path):
    """Same weights, same batch: identical first-step losses; then fused and unfused Adam
    differ by rounding only (weights within Adam's per-step bound)."""
    runs = []
    for fast in ("off", "on"):
        trainer = _trainer(tmp_path, fast)
        logs = [trainer.train_step(step) for step in range(5)]
        runs.append((logs, {k: v.clone() for k, v in trainer.method.state_dict().items()}))
    (plain_logs, plain_weights), (fast_logs, fast_weights) = runs
    assert fast_logs[0] == plain_logs[0]
    for plain, fast in zip(plain_logs[1:], fast_logs[1:], strict=True):
        for key in plain:
            assert fast[key] == pytest.approx(plain[key], rel=2e-2, abs=1e-4), key
    bound = 2 * 5 * 4e-4  # 2 lr per step, 5 steps (quick profile lr)
    for key, value in plain_weights.items():
        if value.is_floating_point() and "pool" not in key:
            assert float((fast_weights[key] - value).abs().max()) < bound, key


def test_a_fast_step_never_waits_for_the_device(tmp_path, monkeypatch):
    """No .item(), float(), int() or bool() of a tensor inside a step: each is a host
    synchronisation on a GPU. The image pool is full, so both of its branches run."""
    trainer = _trainer(tmp_path, "on", extra=["loss.pool_size=2"])
    trainer.step_tensors(0)  # warm-up outside the check (lazy optimiser state)

    def forbidden(self, *args, **kwargs):
        raise AssertionError("host synchronisation inside a step")

    for name in ("item", "__float__", "__bool__", "__int__", "__index__", "tolist", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    logs = trainer.step_tensors(1)
    monkeypatch.undo()
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in logs.values())
    assert "g/total" in logs and "d/total" in logs


def test_fast_path_skips_a_non_finite_update_and_reports_it(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, "on")
    trainer.step_tensors(0)
    before = {k: v.clone() for k, v in trainer.method.state_dict().items()}
    adam_steps = [float(s["step"]) for s in trainer.opt_g.state.values()]
    real_step = trainer.method.generator_step

    def poisoned(batch):
        loss, logs, fakes = real_step(batch)
        return loss * float("nan"), logs, fakes

    monkeypatch.setattr(trainer.method, "generator_step", poisoned)
    trainer.step_tensors(1)
    monkeypatch.undo()
    after = trainer.method.state_dict()
    for name, _param in trainer.method.named_parameters():
        if name.startswith("g_"):  # the generators' update was skipped
            assert torch.equal(after[name], before[name]), name
    assert [float(s["step"]) for s in trainer.opt_g.state.values()] == adam_steps
    assert all(torch.isfinite(p).all() for p in trainer.method.parameters())
    trainer.state.step = 2
    with pytest.raises(TrainingError, match=r"non-finite loss in 1 step\(s\).*skipped"):
        trainer.report_skipped()


def test_fast_path_fit_stops_at_the_next_check_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, "on", extra=["train.log_every=3"])
    trainer.fit({}, stop_after=1)  # step 0 (checked) and a checkpoint
    trainer.save({})
    checkpoint = (tmp_path / "on" / "checkpoint.pt").read_bytes()
    real_step = trainer.method.discriminator_step

    def poisoned(batch, fakes):
        loss, logs = real_step(batch, fakes)
        return loss * float("inf"), logs

    monkeypatch.setattr(trainer.method, "discriminator_step", poisoned)
    with pytest.raises(TrainingError, match="non-finite loss in 3 step"):
        trainer.fit({})
    assert trainer.state.step == 4  # steps 1, 2, 3 ran; the check after step 3 raised
    assert (tmp_path / "on" / "checkpoint.pt").read_bytes() == checkpoint


def test_fit_reads_losses_from_the_device_only_at_logging_steps(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, "on", extra=["train.log_every=100"])
    reads = []
    real_float = torch.Tensor.__float__

    def counting_float(self):
        reads.append(1)
        return real_float(self)

    monkeypatch.setattr(torch.Tensor, "__float__", counting_float)
    trainer.fit({}, stop_after=6)  # logs at step 0 only
    logged = len(trainer.step_tensors(6))
    assert len(reads) == logged


def test_fit_reports_skipped_updates_before_returning(tmp_path, monkeypatch):
    """A run stopped mid-epoch (``stop_after``) must not return normally (and be saved by its
    caller) with unreported skipped updates."""
    trainer = _trainer(tmp_path, "on", extra=["train.log_every=100"])
    trainer.fit({}, stop_after=1)
    real_step = trainer.method.generator_step

    def poisoned(batch):
        loss, logs, fakes = real_step(batch)
        return loss * float("nan"), logs, fakes

    monkeypatch.setattr(trainer.method, "generator_step", poisoned)
    with pytest.raises(TrainingError, match="non-finite loss in 2 step"):
        trainer.fit({}, stop_after=2)


def _any_rank_worker(rank: int, port: int, results) -> None:
    import torch.distributed as dist

    from mrtranslate.training.distributed import DistInfo, any_rank

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        info = DistInfo(rank=rank, world_size=2)
        # case 0: no rank flags; 1: rank 1 only; 2: both ranks flag
        flags = [
            any_rank(torch.tensor(float(case == 2 or (rank == 1 and case == 1))), info)
            for case in (0, 1, 2)
        ]
        results[rank] = [float(f) for f in flags]
    finally:
        dist.destroy_process_group()


def test_a_non_finite_loss_on_one_rank_makes_every_rank_skip():
    """Gradients are averaged, so a NaN on one rank reaches all: all must skip the update. The
    flag stays exactly 1 when several ranks flag (``found_inf`` is a 0/1 flag)."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_any_rank_worker, args=(port, results), nprocs=2, join=True)
    assert results[0] == results[1] == [0.0, 1.0, 1.0]
