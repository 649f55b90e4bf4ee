"""Tests that fail when training is broken in the ways that matter: shuffled pairs, swapped GAN
targets, missing UNIT latent noise, a missing supervised term, wrong paper settings, and a
learning-rate decay that the trainer does not apply."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mrtranslate.config import apply_overrides
from mrtranslate.losses import l1
from mrtranslate.methods import build_method, get, make_config, names
from mrtranslate.training.decisions import decide
from mrtranslate.training.trainer import Trainer, TrainingData, lr_factor

SHAPE = (32, 32)


def _method(model: str):
    cfg = make_config(model, "tiny")
    torch.manual_seed(0)
    return cfg, build_method(model, cfg.net, cfg.loss, SHAPE)


def _trainer(model: str, data: TrainingData, tmp_path, overrides=()) -> Trainer:
    cfg, method = _method(model)
    apply_overrides(cfg, ["train.precision=fp32", *overrides])
    return Trainer(method, cfg.train, data, tmp_path, decide(cfg.train), progress=False)


@pytest.mark.parametrize("model", names())
def test_paired_models_see_pairs_and_unpaired_models_do_not(model, tmp_path):
    n = 16
    ids = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, *SHAPE).clone()
    data = TrainingData(t1w=ids, t2w=-ids)  # pair i: (i, -i)
    trainer = _trainer(model, data, tmp_path, ["train.batch_size=4"])
    same = []
    for step in range(4):
        batch = trainer.batch(step)
        same.append(torch.equal(batch["t2w"], -batch["t1w"]))
    if get(model).paired:
        assert all(same)
    else:
        assert not all(same)  # different subjects at a step (independent orders)


class _Constant(nn.Module):
    """A discriminator stand-in that scores every image ``value``."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return torch.full((x.shape[0], 1, 4, 4), self.value) + 0 * self.weight


@pytest.mark.parametrize("model", ["cyclegan", "cyclegan_s"])
def test_lsgan_targets(model):
    _, method = _method(model)
    batch = {"t1w": torch.rand(2, 1, *SHAPE) * 2 - 1, "t2w": torch.rand(2, 1, *SHAPE) * 2 - 1}
    method.d_t1, method.d_t2 = _Constant(1.0), _Constant(1.0)
    _, logs, fakes = method.generator_step(batch)
    assert logs["g/adv_t1"] == 0 and logs["g/adv_t2"] == 0  # D says "real": G is content
    _, d_logs = method.discriminator_step(batch, fakes)
    assert d_logs["d/t1"] == pytest.approx(0.5)  # real scored right (0), fakes wrong (1)
    method.d_t1, method.d_t2 = _Constant(0.0), _Constant(0.0)
    _, logs, _ = method.generator_step(batch)
    assert logs["g/adv_t1"] == pytest.approx(1.0) and logs["g/adv_t2"] == pytest.approx(1.0)


def test_lsgan_loss_is_the_mean_squared_distance_to_the_target():
    """Scores between and beyond the targets tell a square from other powers (constant 0/1
    scores cannot)."""
    from mrtranslate.losses import lsgan_loss

    scores = torch.tensor([0.5, 2.0, -1.0, 1.0])
    assert float(lsgan_loss(scores, True)) == pytest.approx((0.25 + 1.0 + 4.0 + 0.0) / 4)
    assert float(lsgan_loss(scores, False)) == pytest.approx((0.25 + 4.0 + 1.0 + 1.0) / 4)


def test_unit_adds_latent_noise_in_training_only():
    cfg, method = _method("unit")
    assert cfg.net.dropout == 0  # the only randomness left is the latent noise
    batch = {"t1w": torch.rand(2, 1, *SHAPE) * 2 - 1, "t2w": torch.rand(2, 1, *SHAPE) * 2 - 1}

    def fakes(seed: int):
        torch.manual_seed(seed)
        with torch.no_grad():
            return method.generator_step(batch)[2]["t2w"]

    method.train()
    assert not torch.equal(fakes(1), fakes(2))  # z = mu + n, n ~ N(0, I), in the training step
    method.eval()
    assert torch.equal(fakes(1), fakes(2))  # z = mu at inference


def test_cyclegan_s_adds_the_weighted_supervised_term():
    cfg, method = _method("cyclegan_s")
    batch = {"t1w": torch.rand(2, 1, *SHAPE) * 2 - 1, "t2w": torch.rand(2, 1, *SHAPE) * 2 - 1}
    torch.manual_seed(1)
    loss, logs, fakes = method.generator_step(batch)
    expected_sup = l1(fakes["t2w"], batch["t2w"]) + l1(fakes["t1w"], batch["t1w"])
    assert cfg.loss.supervised == 10
    assert logs["g/sup_t1"] + logs["g/sup_t2"] == pytest.approx(float(expected_sup), rel=1e-5)
    unsupervised = (
        logs["g/adv_t1"]
        + logs["g/adv_t2"]
        + cfg.loss.cycle * (logs["g/cycle_t1"] + logs["g/cycle_t2"])
    )
    assert float(loss) == pytest.approx(float(unsupervised + 10 * expected_sup), rel=1e-5)


def test_paper_profile_values():
    unit = make_config("unit", "paper").train
    assert (unit.lr, unit.weight_decay, unit.epochs, unit.decay_epochs) == (1e-4, 1e-4, 100, 0)
    assert make_config("unit", "paper").net.dropout == 0.5
    assert make_config("unit", "quick").net.dropout == 0.0
    for model in ("generators_s", "simple"):
        t = make_config(model, "paper").train
        assert (t.lr, t.beta1, t.beta2, t.decay_epochs, t.epochs) == (1e-3, 0.9, 0.999, 0, 200)
    for model in ("cyclegan", "cyclegan_s"):
        cfg = make_config(model, "paper")
        t = cfg.train
        assert (t.lr, t.beta1, t.epochs, t.decay_epochs, t.batch_size) == (2e-4, 0.5, 200, 100, 1)
        assert (cfg.loss.cycle, cfg.loss.pool_size, cfg.net.width, cfg.net.blocks) == (
            10,
            50,
            32,
            9,
        )


def test_the_trainer_applies_the_learning_rate_decay(tmp_path):
    data = TrainingData(t1w=torch.rand(4, 1, *SHAPE) * 2 - 1, t2w=torch.rand(4, 1, *SHAPE) * 2 - 1)
    trainer = _trainer(
        "cyclegan",
        data,
        tmp_path,
        ["train.epochs=4", "train.decay_epochs=2", "train.steps_per_epoch=2"],
    )
    base = trainer.cfg.lr
    seen = []
    for step in range(8):
        trainer.train_step(step)
        seen.append([g["lr"] for opt in (trainer.opt_g, trainer.opt_d) for g in opt.param_groups])
    expected = [base * lr_factor(s, 8, 4) for s in range(8)]
    assert expected[:4] == [base] * 4 and expected[-1] == pytest.approx(base / 4)
    for lrs, want in zip(seen, expected):
        assert all(lr == pytest.approx(want) for lr in lrs)
