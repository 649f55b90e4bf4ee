"""Convolution algorithms (direct, channels-last, Winograd) compute the same function, and the
per-layer choice is made by measurement, kept on resume and fixed by a study plan."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mrtranslate.config import apply_overrides
from mrtranslate.hardware import autocast
from mrtranslate.methods import build_method, make_config
from mrtranslate.nets import nnpack
from mrtranslate.nets.conv import Conv2d, conv_layers
from mrtranslate.nets.winograd import winograd_conv2d, winograd_matrices
from mrtranslate.training import conv_tuning
from mrtranslate.training.conv_tuning import fixed_choice, tune_convolutions
from mrtranslate.training.decisions import decide
from mrtranslate.training.trainer import Trainer, TrainingData


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize(("kernel", "tile"), [(2, 6), (3, 6), (4, 6), (5, 6), (3, 7), (3, 8)])
def test_winograd_transforms_compute_a_correlation_exactly(kernel, tile):
    a_t, g, b_t = winograd_matrices(kernel, tile)
    gen = torch.Generator().manual_seed(kernel * tile)
    for _ in range(5):
        d = torch.randn(tile, dtype=torch.float64, generator=gen)
        w = torch.randn(kernel, dtype=torch.float64, generator=gen)
        expected = torch.stack([(d[i : i + kernel] * w).sum() for i in range(tile - kernel + 1)])
        assert torch.allclose(a_t @ ((g @ w) * (b_t @ d)), expected, atol=1e-12)


@pytest.mark.parametrize(
    ("batch", "channels", "out_channels", "size", "kernel", "padding", "tile"),
    [
        (1, 8, 16, (16, 16), 3, 1, 6),  # residual-block shape
        (2, 5, 3, (13, 11), 3, 1, 6),  # odd sizes: partial tiles at the border
        (2, 4, 6, (17, 15), 4, 1, 6),  # PatchGAN's stride-1 4x4 layer (output 16x14)
        (1, 3, 2, (9, 12), 5, 2, 6),
        (1, 4, 4, (10, 10), 2, 0, 6),
        (1, 6, 5, (20, 18), 3, 0, 8),
    ],
)
def test_winograd_matches_direct_convolution_and_its_gradients(
    batch, channels, out_channels, size, kernel, padding, tile
):
    torch.manual_seed(0)
    x = torch.randn(batch, channels, *size, requires_grad=True)
    w = (torch.randn(out_channels, channels, kernel, kernel) / kernel).requires_grad_()
    b = torch.randn(out_channels, requires_grad=True)
    direct = F.conv2d(x, w, b, padding=padding)
    fast = winograd_conv2d(x, w, b, padding, tile)
    assert fast.shape == direct.shape
    assert _rel(fast, direct) < 5e-5
    grad_out = torch.randn_like(direct)
    for got, want in zip(
        torch.autograd.grad(fast, (x, w, b), grad_out),
        torch.autograd.grad(direct, (x, w, b), grad_out),
        strict=True,
    ):
        assert _rel(got, want) < 5e-5


@pytest.mark.skipif(not nnpack.available(), reason="this PyTorch build has no NNPACK")
@pytest.mark.parametrize(
    ("batch", "channels", "out_channels", "size", "kernel", "padding"),
    [(1, 8, 16, (16, 16), 3, 1), (2, 5, 3, (13, 11), 3, 1), (2, 4, 6, (17, 15), 4, 1)],
)
def test_nnpack_matches_direct_convolution_and_its_gradients(
    batch, channels, out_channels, size, kernel, padding
):
    torch.manual_seed(0)
    x = torch.randn(batch, channels, *size, requires_grad=True)
    w = (torch.randn(out_channels, channels, kernel, kernel) / kernel).requires_grad_()
    b = torch.randn(out_channels, requires_grad=True)
    direct = F.conv2d(x, w, b, padding=padding)
    fast = nnpack.nnpack_conv2d(x, w, b, padding)
    assert fast.shape == direct.shape and _rel(fast, direct) < 5e-5
    grad_out = torch.randn_like(direct)
    for got, want in zip(
        torch.autograd.grad(fast, (x, w, b), grad_out),
        torch.autograd.grad(direct, (x, w, b), grad_out),
        strict=True,
    ):
        assert _rel(got, want) < 5e-5
    # no input gradient asked for (a network's first layer): only weight and bias
    w_only = torch.autograd.grad(nnpack.nnpack_conv2d(x.detach(), w, None, padding).sum(), w)[0]
    expected = torch.autograd.grad(F.conv2d(x.detach(), w, None, padding=padding).sum(), w)[0]
    assert _rel(w_only, expected) < 5e-5


def test_conv2d_layer_is_nn_conv2d_and_its_algorithms_agree():
    torch.manual_seed(1)
    layer = Conv2d(6, 7, 3, padding=1)
    assert isinstance(layer, nn.Conv2d)
    assert set(layer.state_dict()) == set(nn.Conv2d(6, 7, 3, padding=1).state_dict())
    fast = ("winograd", "nnpack") if nnpack.available() else ("winograd",)
    assert layer.candidates() == ("direct", "channels_last", *fast)
    x = torch.randn(2, 6, 12, 20)
    outputs = {}
    for algorithm in layer.candidates():
        layer.set_algorithm(algorithm)
        outputs[algorithm] = layer(x)
        assert outputs[algorithm].is_contiguous()
    for algorithm in ("channels_last", *fast):
        assert _rel(outputs[algorithm], outputs["direct"]) < 5e-5
    # under bf16 autocast Winograd and NNPACK fall back to the direct convolution (same bits)
    with autocast(torch.device("cpu"), "bf16"):
        layer.set_algorithm("direct")
        expected = layer(x)
        for algorithm in fast:
            layer.set_algorithm(algorithm)
            assert torch.equal(layer(x), expected)


def test_winograd_is_refused_where_it_does_not_apply():
    strided = Conv2d(4, 4, 3, stride=2, padding=1)
    assert "winograd" not in strided.candidates()
    with pytest.raises(ValueError, match="cannot compute"):
        strided.set_algorithm("winograd")
    assert "winograd" not in Conv2d(4, 4, 7).candidates()  # kernel larger than the tile allows
    assert "winograd" not in Conv2d(4, 4, 3, padding=1, padding_mode="reflect").candidates()


def _cyclegan(size=(32, 32), upsample="resize"):
    cfg = make_config("cyclegan", "quick")
    sets = ["net.width=4", "net.blocks=2", "net.disc_width=8"]
    apply_overrides(cfg, [*sets, f"net.upsample={upsample}"])
    torch.manual_seed(0)
    return cfg, build_method("cyclegan", cfg.net, cfg.loss, size)


def _batch(size=(32, 32)):
    gen = torch.Generator().manual_seed(3)
    return {k: torch.rand(1, 1, *size, generator=gen) * 2 - 1 for k in ("t1w", "t2w")}


def _no_autocast():
    return autocast(torch.device("cpu"), "fp32")


def test_tuner_keeps_only_algorithms_that_save_enough_and_leaves_the_method_alone(monkeypatch):
    _cfg, method = _cyclegan()
    before = {k: v.clone() for k, v in method.state_dict().items()}
    rng = torch.get_rng_state()
    calls = []

    def fake_time(layer, shape, algorithm, autocast, repeats=3):
        calls.append((conv_tuning._signature(layer, shape), algorithm))
        return {"direct": 1.0, "channels_last": 0.95, "winograd": 0.5, "nnpack": 0.6}[algorithm]

    monkeypatch.setattr(conv_tuning, "time_layer", fake_time)
    choice = tune_convolutions(method, _batch(), _no_autocast, min_gain=0.1, check_steps=False)
    layers = conv_layers(method)
    for name, layer in layers.items():
        fastest = [a for a in ("winograd", "nnpack") if a in layer.candidates()]
        expected = fastest[0] if fastest else "direct"
        assert choice.algorithms[name] == expected == layer.algorithm
    assert "winograd" in choice.counts() and "channels_last" not in choice.counts()
    # identical layers (same configuration and input shape) are measured once
    assert len(calls) == len(set(calls)) < 3 * len(layers)
    assert torch.equal(torch.get_rng_state(), rng)
    after = method.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and image pools


@pytest.mark.skipif(not nnpack.available(), reason="this PyTorch build has no NNPACK")
@pytest.mark.parametrize(
    ("step_seconds", "expected"),
    [
        ({"nnpack": 3.0, "winograd": 1.0, "direct": 2.0}, "without NNPACK"),
        ({"nnpack": 1.0, "winograd": 2.0, "direct": 3.0}, "per-layer choice"),
        ({"nnpack": 3.0, "winograd": 4.0, "direct": 2.0}, "all direct"),
    ],
)
def test_whole_steps_decide_between_the_per_layer_choice_and_safer_ones(
    monkeypatch, step_seconds, expected
):
    """Per layer NNPACK is fastest, then Winograd; whole steps (faked here: each layer adds
    the seconds of its algorithm) may disagree, and then win."""
    _cfg, method = _cyclegan()
    per_layer = {"direct": 1.0, "channels_last": 1.0, "winograd": 0.6, "nnpack": 0.5}
    monkeypatch.setattr(
        conv_tuning, "time_layer", lambda layer, shape, algorithm, *a, **k: per_layer[algorithm]
    )

    def fake_steps(probe, batch, autocast, repeats=1):
        return sum(step_seconds[layer.algorithm] for layer in conv_layers(probe).values())

    monkeypatch.setattr(conv_tuning, "time_whole_steps", fake_steps)
    choice = tune_convolutions(method, _batch(), _no_autocast)
    whole = choice.measurements[-1]["whole_step_seconds"]
    assert whole["chosen"] == expected
    used = set(choice.algorithms.values())
    assert (
        used
        == {
            "without NNPACK": {"direct", "winograd"},
            "per-layer choice": {"direct", "nnpack"},
            "all direct": {"direct"},
        }[expected]
    )
    assert {n: m.algorithm for n, m in conv_layers(method).items()} == choice.algorithms


def test_tuning_a_model_that_draws_noise_leaves_the_random_state_alone(monkeypatch):
    """UNIT draws latent noise in its generator step: the tuner's probe step must not consume
    the trainer's random numbers (or a tuned run would differ from an untuned one)."""
    cfg = make_config("unit", "quick")
    apply_overrides(cfg, ["net.width=4", "net.blocks=1", "net.disc_width=4"])
    method = build_method("unit", cfg.net, cfg.loss, (32, 32))
    monkeypatch.setattr(conv_tuning, "time_layer", lambda *args, **kwargs: 1.0)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    tune_convolutions(method, _batch(), _no_autocast)
    assert torch.equal(torch.rand(3), expected)


def _all_fast(method) -> dict[str, str]:
    return {
        name: "winograd" if "winograd" in layer.candidates() else "channels_last"
        for name, layer in conv_layers(method).items()
    }


@pytest.mark.parametrize("upsample", ["transpose", "resize"])
def test_training_with_the_fast_algorithms_follows_the_plain_path(tmp_path, upsample):
    """CycleGAN steps with every layer on Winograd or channels-last (with either up-sampling;
    resize adds two tunable convolutions): the first step's losses (same weights) equal the
    plain path's up to float32 rounding; later losses stay within 5% and after five steps the
    weights differ by less than Adam allows (about lr per step; 2 lr here), since its
    normalised update amplifies rounding in near-zero gradients (a GAN loss of ~0.03 was seen
    2.05% apart at step 4 on one run)."""
    results = []
    for fast in (False, True):
        cfg, method = _cyclegan(upsample=upsample)
        apply_overrides(cfg, ["train.precision=fp32", "train.steps_per_epoch=100"])
        data = TrainingData(t1w=torch.rand(4, 1, 32, 32) * 2 - 1, t2w=torch.rand(4, 1, 32, 32))
        trainer = Trainer(method, cfg.train, data, tmp_path / str(fast), decide(cfg.train))
        trainer.conv_choice = fixed_choice(method, _all_fast(method) if fast else {}, "test")
        logs = [trainer.train_step(step) for step in range(5)]
        results.append((logs, {k: v.clone() for k, v in method.state_dict().items()}))
    (plain_logs, plain_weights), (fast_logs, fast_weights) = results
    for key, value in plain_logs[0].items():
        assert fast_logs[0][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    for plain, fast in zip(plain_logs[1:], fast_logs[1:], strict=True):
        for key in plain:
            assert fast[key] == pytest.approx(plain[key], rel=5e-2, abs=1e-4), key
    bound = 2 * 5 * cfg.train.lr  # rounding noise can steer a zero-gradient bias (before IN)
    for key, value in plain_weights.items():
        if value.is_floating_point() and "pool" not in key:
            assert float((fast_weights[key] - value).abs().max()) < bound, key


def test_a_resumed_trainer_keeps_the_recorded_algorithms(tmp_path, monkeypatch):
    cfg, method = _cyclegan()
    apply_overrides(cfg, ["train.precision=fp32", "train.steps_per_epoch=100"])
    data = TrainingData(t1w=torch.rand(2, 1, 32, 32) * 2 - 1, t2w=torch.rand(2, 1, 32, 32))
    trainer = Trainer(method, cfg.train, data, tmp_path, decide(cfg.train))
    trainer.conv_choice = fixed_choice(method, _all_fast(method), "test")
    state = trainer.state_dict()

    def must_not_measure(*args, **kwargs):
        raise AssertionError("a resumed run measured again")

    monkeypatch.setattr(conv_tuning, "tune_convolutions", must_not_measure)
    _cfg, fresh = _cyclegan()
    resumed = Trainer(fresh, cfg.train, data, tmp_path, decide(cfg.train))
    resumed.load_state_dict(state)
    assert resumed.prepare_convolutions().algorithms == _all_fast(fresh)
    assert {n: m.algorithm for n, m in conv_layers(fresh).items()} == _all_fast(fresh)


def test_fixed_choice_names_unknown_layers():
    _cfg, method = _cyclegan()
    with pytest.raises(ValueError, match="no convolution layer named nope"):
        fixed_choice(method, {"nope": "direct"}, "test")


class _FixedPlan:
    """A plan (the run's Plan protocol) that sets the steps and fixes two layers' algorithms."""

    def __init__(self, chosen: dict[str, str]):
        self.chosen = chosen

    def apply(self, cfg):
        cfg.train.epochs, cfg.train.steps_per_epoch, cfg.train.decay_epochs = 1, 2, 0
        return cfg

    def conv_algorithms_of(self, model: str) -> dict[str, str]:
        return self.chosen if model == "cyclegan" else {}

    def precision_choice_on(self, device: str):
        return None  # the run resolves its own precision

    def to_dict(self) -> dict:
        return {"chosen": self.chosen}


def test_run_json_records_the_algorithms_a_plan_fixed(small_phantom, tmp_path):
    from mrtranslate.training.run import RunRequest, train_run

    chosen = {"d_t1.net.8": "winograd", "g_t1_to_t2.net.1": "channels_last"}
    sets = ("train.downsample=2", "net.width=4", "net.blocks=2", "net.disc_width=8")
    request = RunRequest(plan=_FixedPlan(chosen), overrides=sets)
    record = train_run("cyclegan", small_phantom, tmp_path / "run", progress=False, request=request)
    assert record.steps_done == 2  # the plan's steps
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["plan"] == {"chosen": chosen} and config["train"]["steps_per_epoch"] == 2
    written = json.loads((tmp_path / "run" / "run.json").read_text())["conv_algorithms"]
    assert written == record.conv_algorithms
    assert written["reason"] == "fixed by the study plan"
    assert written["algorithms"]["d_t1.net.8"] == "winograd"
    assert written["algorithms"]["g_t1_to_t2.net.1"] == "channels_last"
    assert written["counts"]["direct"] == len(written["algorithms"]) - 2


def test_bench_counts_a_model_s_flops_whatever_algorithm_computes_it():
    from mrtranslate.bench import count_flops

    net = nn.Sequential(Conv2d(4, 8, 3, padding=1), Conv2d(8, 2, 3, padding=1))
    x = torch.randn(1, 4, 16, 16)
    direct = count_flops(lambda: net(x), net)
    assert direct == 2 * 16 * 16 * 9 * (4 * 8 + 8 * 2)  # multiply-adds x 2
    for algorithm in net[0].candidates():
        net[0].set_algorithm(algorithm)
        net[1].set_algorithm(algorithm)
        assert count_flops(lambda: net(x), net) == direct
        assert net[0].algorithm == algorithm  # restored


def test_bf16_tuning_ignores_the_float32_only_algorithms(monkeypatch):
    _cfg, method = _cyclegan()
    times = {"direct": 1.0, "channels_last": 0.8, "winograd": 0.1, "nnpack": 0.1}
    monkeypatch.setattr(
        conv_tuning, "time_layer", lambda layer, s, algorithm, *a, **k: times[algorithm]
    )
    choice = tune_convolutions(method, _batch(), _no_autocast, fp32=False, check_steps=False)
    assert set(choice.algorithms.values()) == {"channels_last"}


def test_a_whole_step_gain_below_half_the_threshold_keeps_everything_direct(monkeypatch):
    _cfg, method = _cyclegan()
    monkeypatch.setattr(
        conv_tuning,
        "time_layer",
        lambda layer, s, algorithm, *a, **k: 1.0 if algorithm == "direct" else 0.5,
    )

    def fake_steps(probe, batch, autocast, repeats=2):
        direct = all(layer.algorithm == "direct" for layer in conv_layers(probe).values())
        return 1.0 if direct else 0.97  # 3% faster: below min_gain / 2 = 5%

    monkeypatch.setattr(conv_tuning, "time_whole_steps", fake_steps)
    choice = tune_convolutions(method, _batch(), _no_autocast, min_gain=0.1)
    assert set(choice.algorithms.values()) == {"direct"}
    assert choice.measurements[-1]["whole_step_seconds"]["chosen"] == "all direct"


class _OneLayer(nn.Module):
    """A 'method' of one convolution, enough for the tuner (shapes from one generator step)."""

    def __init__(self, layer: Conv2d):
        super().__init__()
        self.layer = layer

    def generator_step(self, batch):
        out = self.layer(batch["t1w"])
        return out.float().mean(), {}, {}

    def discriminator_parameters(self):
        return []


@pytest.mark.parametrize(
    ("layer", "shape"),
    [
        (Conv2d(4, 8, 7, padding=0), (2, 4, 30, 26)),  # 7x7 without padding
        (Conv2d(16, 8, 1), (2, 16, 20, 18)),  # 1x1
        (Conv2d(8, 8, 3, padding=1), (2, 8, 24, 20)),
    ],
    ids=["7x7-pad0", "1x1", "3x3"],
)
def test_the_tuner_only_picks_algorithms_that_agree_with_direct(monkeypatch, layer, shape):
    """Whatever the timings say, the chosen algorithm computes the layer: its output and both
    gradients on the real shape match F.conv2d."""
    torch.manual_seed(0)
    method = _OneLayer(layer)
    for fastest in layer.candidates():

        def fake_time(lay, shp, algorithm, autocast, repeats=3, fastest=fastest):
            return 0.1 if algorithm == fastest else 1.0

        monkeypatch.setattr(conv_tuning, "time_layer", fake_time)
        batch = {"t1w": torch.randn(shape)}
        choice = tune_convolutions(method, batch, _no_autocast, check_steps=False)
        assert choice.algorithms["layer"] == fastest  # these all agree with direct
        x = torch.randn(shape, requires_grad=True)
        got = method.layer(x)
        want = F.conv2d(x, layer.weight, layer.bias, padding=layer.padding)
        assert _rel(got, want) < 1e-4
        grad_out = torch.randn_like(want)
        for a, b in zip(
            torch.autograd.grad(got, (x, layer.weight, layer.bias), grad_out),
            torch.autograd.grad(want, (x, layer.weight, layer.bias), grad_out),
            strict=True,
        ):
            assert _rel(a, b) < 1e-4


def test_an_algorithm_that_disagrees_with_direct_is_never_chosen(monkeypatch):
    from mrtranslate.nets import conv as conv_module

    layer = Conv2d(8, 8, 3, padding=1)
    method = _OneLayer(layer)
    real = conv_module.winograd_conv2d

    def wrong(x, weight, bias, padding):  # off by a little more than the tolerance
        out = real(x, weight, bias, padding)
        return out + 2e-3 * out.detach().abs().max()

    monkeypatch.setattr(conv_module, "winograd_conv2d", wrong)
    monkeypatch.setattr(
        conv_tuning,
        "time_layer",
        lambda lay, shp, algorithm, autocast, repeats=3: 0.1 if algorithm == "winograd" else 1.0,
    )
    choice = tune_convolutions(
        method, {"t1w": torch.randn(2, 8, 24, 20)}, _no_autocast, check_steps=False
    )
    assert choice.algorithms["layer"] != "winograd"
    record = choice.measurements[0]
    assert record["rejected"] == ["winograd"] and record["ms"]["winograd"] is None
    assert record["max_error"]["winograd"] > conv_tuning.TOLERANCE["fp32"]
