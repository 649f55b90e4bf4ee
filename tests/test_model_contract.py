"""The contract every registered model keeps, and proof that a new model needs one file and one
registry line.

Each test is parametrised over the model registry (plus a throw-away model registered here, the
way a new model would be): translation shapes and range, gradient flow, a tiny training step,
save/load round trip and exact resume.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from mrtranslate.config import LossSettings, NetSettings, apply_overrides
from mrtranslate.directions import DIRECTIONS, Direction
from mrtranslate.losses import l1
from mrtranslate.methods import build_method, make_config, names, registry
from mrtranslate.methods.base import Method
from mrtranslate.training.decisions import decide
from mrtranslate.training.trainer import Trainer, TrainingData

SHAPE = (32, 32)


# ---------------------------------------------------------------- the throw-away model
# Everything a new model needs: its settings, a method class and a spec (in a new module), and
# one line that registers it (in mrtranslate/methods/__init__.py). Nothing else in the package
# changes: not config.py, not the registry's profiles, not nets/__init__.py.
FILES_A_NEW_MODEL_TOUCHES = (
    "mrtranslate/methods/<its module>.py",
    "mrtranslate/methods/__init__.py",
)


@dataclass
class ThrowAwayNet(NetSettings):
    """The throw-away model's own network settings (not borrowed from another model)."""

    width: int = 12  # filters of its 3x3 convolution
    kernel: int = 3  # its kernel size (odd)

    positive = ("width", "kernel")


class ThrowAway(Method):
    """A 3x3 conv per direction trained with L1 on pairs; (B, 1, H, W) in [-1, 1]."""

    paired = True

    def __init__(self, *, width: int, kernel: int, name: str):
        super().__init__()
        self.name = name

        def make() -> nn.Module:
            conv = nn.Conv2d(1, width, kernel, padding=kernel // 2)
            return nn.Sequential(conv, nn.ReLU(), nn.Conv2d(width, 1, 1), nn.Tanh())

        self.g_t1_to_t2, self.g_t2_to_t1 = make(), make()

    @classmethod
    def from_config(cls, *, spec, net, loss, image_shape) -> ThrowAway:
        return cls(width=net.width, kernel=net.kernel, name=spec.name)

    def generators(self):
        return {"g_t1_to_t2": self.g_t1_to_t2, "g_t2_to_t1": self.g_t2_to_t1}

    def generator_parameters(self):
        return [*self.g_t1_to_t2.parameters(), *self.g_t2_to_t1.parameters()]

    def generator_step(self, batch):
        fake_t2, fake_t1 = self.g_t1_to_t2(batch["t1w"]), self.g_t2_to_t1(batch["t2w"])
        loss = l1(fake_t2, batch["t2w"]) + l1(fake_t1, batch["t1w"])
        return loss, {"g/total": loss.detach()}, {"t1w": fake_t1.detach(), "t2w": fake_t2.detach()}

    def discriminator_step(self, batch, fakes):
        raise RuntimeError("no discriminator")

    def translate(self, images, direction):
        net = self.g_t1_to_t2 if direction == Direction.T1_TO_T2 else self.g_t2_to_t1
        return net(images)


THROW_AWAY = registry.ModelSpec(
    name="throwaway",
    display_name="ThrowAway",
    paired=True,
    method=ThrowAway,
    summary="a test model",
    net_settings=ThrowAwayNet,
    defaults={"train.lr": 1e-3},
    tiny={"net.width": 16},
)


@pytest.fixture
def throw_away_registered():
    registry.register(THROW_AWAY)  # the one registry line
    try:
        yield THROW_AWAY
    finally:
        registry.unregister(THROW_AWAY.name)


ALL = [*names(), "throwaway"]


@pytest.fixture(params=ALL)
def model(request):
    if request.param != "throwaway":
        yield request.param
        return
    registry.register(THROW_AWAY)
    try:
        yield THROW_AWAY.name
    finally:
        registry.unregister(THROW_AWAY.name)


# ---------------------------------------------------------------- the contract


def _data(n: int = 4) -> TrainingData:
    gen = torch.Generator().manual_seed(0)
    t1 = torch.rand(n, 1, *SHAPE, generator=gen) * 2 - 1
    return TrainingData(t1w=t1, t2w=-t1)  # a real (inverting) mapping, paired


def _trainer(model: str, tmp_path, seed: int = 0) -> Trainer:
    cfg = make_config(model, "tiny")
    apply_overrides(cfg, ["train.precision=fp32", "train.steps_per_epoch=4", "train.epochs=2"])
    torch.manual_seed(seed)
    method = build_method(model, cfg.net, cfg.loss, SHAPE)
    return Trainer(method, cfg.train, _data(), tmp_path, decide(cfg.train), progress=False)


def test_spec_matches_the_method(model):
    spec = registry.get(model)
    method = build_method(model, *_nets(model), SHAPE)
    assert method.name == spec.name and method.paired == spec.paired
    assert isinstance(method, spec.method)
    assert make_config(model, "paper").model == model


def _nets(model: str):
    cfg = make_config(model, "tiny")
    return cfg.net, cfg.loss


def test_translation_shapes_and_range(model):
    method = build_method(model, *_nets(model), SHAPE).eval()
    x = torch.rand(3, 1, *SHAPE) * 2 - 1
    with torch.inference_mode():
        for direction in DIRECTIONS:
            y = method.translate(x, direction)
            assert y.shape == x.shape and y.dtype == torch.float32
            assert torch.isfinite(y).all() and y.min() >= -1 and y.max() <= 1
            assert torch.equal(y, method.translate(x, direction))  # deterministic in eval mode


def test_gradients_reach_every_parameter(model, tmp_path):
    trainer = _trainer(model, tmp_path)
    batch = trainer.batch(0)
    _, fakes = trainer.generator_update(batch, 0)
    for p in trainer.g_params:
        assert p.grad is not None and torch.isfinite(p.grad).all()
    assert any(p.grad.abs().sum() > 0 for p in trainer.g_params)
    if trainer.opt_d:
        trainer.discriminator_update(batch, fakes, 0)
        for p in trainer.d_params:
            assert p.grad is not None and torch.isfinite(p.grad).all()


def test_a_tiny_training_step_changes_the_weights(model, tmp_path):
    trainer = _trainer(model, tmp_path)
    before = [p.detach().clone() for p in trainer.g_params]
    logs = trainer.train_step(0)
    assert logs and all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert any(not torch.equal(a, p) for a, p in zip(before, trainer.g_params))


def test_save_and_load_round_trip(model, tmp_path):
    trainer = _trainer(model, tmp_path)
    trainer.train_step(0)
    state = trainer.method.state_dict()
    again = build_method(model, *_nets(model), SHAPE)
    again.load_state_dict(state)
    x = torch.rand(2, 1, *SHAPE) * 2 - 1
    trainer.method.eval(), again.eval()
    with torch.inference_mode():
        for direction in DIRECTIONS:
            assert torch.equal(
                trainer.method.translate(x, direction), again.translate(x, direction)
            )


def test_resume_gives_the_same_weights(model, tmp_path):
    straight = _trainer(model, tmp_path / "a")
    for step in range(4):
        straight.train_step(step)
        straight.state.step = step + 1
    first = _trainer(model, tmp_path / "b")
    for step in range(2):
        first.train_step(step)
        first.state.step = step + 1
    resumed = _trainer(model, tmp_path / "c", seed=123)  # other initial weights, overwritten
    resumed.load_state_dict(first.state_dict())
    for step in range(2, 4):
        resumed.train_step(step)
    for key, value in straight.method.state_dict().items():
        assert torch.equal(value, resumed.method.state_dict()[key]), key


LEARNING_TERMS = {  # a term of each model that must fall when it trains on a fixed batch
    "cyclegan": ("g/cycle_t1", "g/cycle_t2"),
    "cyclegan_s": ("g/sup_t1", "g/sup_t2"),
    "unit": ("g/rec_t1", "g/rec_t2"),
}


def test_training_lowers_the_loss_on_a_fixed_batch(model, tmp_path):
    cfg = make_config(model, "tiny")
    constant_lr = ["train.epochs=1", "train.decay_epochs=0", "train.steps_per_epoch=30"]
    apply_overrides(
        cfg, ["train.precision=fp32", "train.lr=1e-3", "train.batch_size=2", *constant_lr]
    )
    torch.manual_seed(0)
    method = build_method(model, cfg.net, cfg.loss, SHAPE)
    data = _data(2)  # two images: every step sees the same batch
    trainer = Trainer(method, cfg.train, data, tmp_path, decide(cfg.train), progress=False)
    terms = LEARNING_TERMS.get(model, ("g/total",))

    def loss() -> float:
        torch.manual_seed(123)
        with torch.no_grad():
            logs = trainer.method.generator_step(trainer.batch(0))[1]
        return float(sum(logs[t] for t in terms))

    before = loss()
    for step in range(30):
        trainer.train_step(step)
    assert loss() < 0.95 * before  # falls by more than 5% in 30 steps (rounding: ~1e-6)


# ---------------------------------------------------------------- one file, one line


@pytest.mark.slow
def test_a_new_model_runs_through_the_whole_package(
    throw_away_registered, small_phantom, tmp_path, capsys
):
    """Registered, the throw-away model is listed, trains, evaluates and reports like the
    others, with no other change to the package."""
    import json

    from mrtranslate.cli import main

    assert main(["models"]) == 0
    assert "ThrowAway" in capsys.readouterr().out
    out = tmp_path / "study"
    args = ["study", "--data", str(small_phantom), "--out", str(out), "--profile", "tiny"]
    own = ["--set", "net.kernel=5", "--set", "net.width=5"]  # its own key, and a shared name
    assert main([*args, "--models", "throwaway", "simple", *own, "--quiet"]) == 0
    assert (out / "runs" / "throwaway" / "eval" / "summary.json").is_file()
    assert "ThrowAway" in (out / "report" / "report.html").read_text()
    config = json.loads((out / "runs" / "throwaway" / "config.json").read_text())
    assert (config["net"]["width"], config["net"]["kernel"]) == (5, 5)
    record = json.loads((out / "runs" / "throwaway" / "run.json").read_text())
    assert record["parameters"]["g_t1_to_t2"] == (5 * 25 + 5) + (5 + 1)  # built with them
    simple = json.loads((out / "runs" / "simple" / "config.json").read_text())
    assert simple["net"]["width"] == 5 and "kernel" not in simple["net"]  # only where it exists


def test_a_models_configuration_lives_in_the_methods_package():
    """No module outside ``mrtranslate/methods`` names a model's settings classes or keys, so a
    sixth model touches only the files in FILES_A_NEW_MODEL_TOUCHES."""
    from pathlib import Path

    import mrtranslate

    src = Path(mrtranslate.__file__).parent
    outside = {
        p: p.read_text(encoding="utf-8")
        for p in src.rglob("*.py")
        if p.relative_to(src).parts[0] != "methods"
    }
    for spec in registry.specs():
        pairs = (
            (spec.net_settings, NetSettings, "net"),
            (spec.loss_settings, LossSettings, "loss"),
        )
        for settings, shared, section in pairs:
            own = set(settings.__dataclass_fields__) - set(shared.__dataclass_fields__)
            for path, text in outside.items():
                if settings is not shared:
                    assert settings.__name__ not in text, (path, settings.__name__)
                for key in own:
                    assert f"{section}.{key}" not in text, (path, f"{section}.{key}")
