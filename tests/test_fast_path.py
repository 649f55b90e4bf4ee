"""The fast path computes the same function: channels-last, bf16 autocast, torch.compile; bench."""

from __future__ import annotations

import json

import pytest
import torch

from mrtranslate.cli import main
from mrtranslate.config import apply_overrides
from mrtranslate.hardware import resolve_precision
from mrtranslate.methods import build_method, make_config
from mrtranslate.training.decisions import decide
from mrtranslate.training.trainer import Trainer, TrainingData


def _method(model: str, seed: int = 0):
    cfg = make_config(model, "tiny")
    torch.manual_seed(seed)
    return cfg, build_method(model, cfg.net, cfg.loss, (32, 32))


@pytest.mark.parametrize("model", ["cyclegan", "unit", "generators_s"])
def test_channels_last_equals_plain_layout(model):
    _, plain = _method(model)
    _, fast = _method(model)
    fast.to(memory_format=torch.channels_last)
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    plain.eval()
    fast.eval()
    with torch.inference_mode():
        ref = plain.translate(x, "t1-to-t2")
        out = fast.translate(x.contiguous(memory_format=torch.channels_last), "t1-to-t2")
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model", ["cyclegan", "unit"])
def test_training_step_channels_last_equals_plain(model, tmp_path):
    data = TrainingData(t1w=torch.rand(4, 1, 32, 32) * 2 - 1, t2w=torch.rand(4, 1, 32, 32) * 2 - 1)
    logs = []
    for channels_last in (False, True):
        cfg, method = _method(model)
        apply_overrides(cfg, [f"train.channels_last={channels_last}"])
        trainer = Trainer(method, cfg.train, data, tmp_path, decide(cfg.train), progress=False)
        logs.append(trainer.train_step(0))
    for key in logs[0]:
        assert logs[1][key] == pytest.approx(logs[0][key], rel=1e-4, abs=1e-5), key


@pytest.mark.parametrize("model", ["cyclegan", "unit"])
def test_bf16_autocast_within_tolerance(model):
    _, method = _method(model)
    method.eval()
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.inference_mode():
        ref = method.translate(x, "t2-to-t1")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = method.translate(x, "t2-to-t1").float()
    # bf16 keeps 8 bits of mantissa: outputs in [-1, 1] agree to a few hundredths.
    assert (low - ref).abs().max() < 0.05
    assert (low - ref).abs().mean() < 0.01


@pytest.mark.slow
def test_torch_compile_on_and_off_agree():
    from mrtranslate.nets import ResnetGenerator

    torch.manual_seed(0)
    net = ResnetGenerator(width=8, blocks=1).eval()
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        ref = net(x)
        net.compile()
        out = net(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


PLAIN_FAST = ["direct", "auto"]


def test_bench_writes_valid_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "--models",
            "simple",
            "--size",
            "32",
            "--metrics-images",
            "20",
            "--precision",
            "fp32,bf16",
            "--repeats",
            "1",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    assert {"machine", "ceilings", "results", "skipped"} <= set(report)
    native = report["machine"]["bf16_native"]
    assert native == resolve_precision("auto", "cpu").bf16_native
    expected = [(p, a) for p in (["fp32", "bf16"] if native else ["fp32"]) for a in PLAIN_FAST]
    assert [(r["precision"], r["conv_algorithm"]) for r in report["results"]] == expected
    for plain, fast in zip(report["results"][::2], report["results"][1::2], strict=True):
        ratio = plain["train_step_seconds_median"] / fast["train_step_seconds_median"]
        assert fast["speedup_vs_direct"]["train"] == pytest.approx(ratio)
        assert plain["conv_algorithms"] == {"direct": 4} and "speedup_vs_direct" not in plain
        # FLOPs are the model's, whatever algorithm computes them
        assert fast["train_step_gflop"] == pytest.approx(plain["train_step_gflop"])
    assert bool(report["skipped"]) != native
    assert report["machine"]["device"] == "cpu" and report["machine"]["cpu_capability"]
    for r in report["results"]:
        assert r["train_images_per_second"] > 0 and r["infer_b16_images_per_second"] > 0
        assert r["train_step_gflop"] > 0 and r["infer_gflop_per_image"] > 0
    assert report["ceilings"]["conv3x3_fp32_gflops"] > 0
    # Simple at the paper's width: 1x1 convs 1 -> 256 -> 1, i.e. 512 multiply-adds (1024 FLOPs)
    # per pixel and direction; one translated 32x32 image = 1024 * 1024 FLOPs.
    for r in report["results"]:
        assert r["infer_gflop_per_image"] == pytest.approx(1024 * 32 * 32 / 1e9)
    assert report["metrics"]["images"] == 20 and report["metrics"]["seconds_76x64"] > 0
    assert "Simple" in capsys.readouterr().out


def test_bench_skips_emulated_bf16_with_a_note(tmp_path, capsys, monkeypatch):
    from mrtranslate import bench, hardware

    monkeypatch.setattr(hardware, "onednn_reports_bf16", lambda: False)
    monkeypatch.setattr(hardware, "measure_cpu_bf16", lambda: (0.002, 0.060))

    def never(*args, **kwargs):
        raise AssertionError("emulated bf16 must not be measured")

    real_bench_model = bench.bench_model

    def fp32_only(model, precision, *args, **kwargs):
        if precision == "bf16":
            never()
        return real_bench_model(model, precision, *args, **kwargs)

    monkeypatch.setattr(bench, "bench_model", fp32_only)
    out = tmp_path / "bench.json"
    args = ["bench", "--models", "simple", "--size", "32", "--metrics-images", "4"]
    assert main([*args, "--repeats", "1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [r["precision"] for r in report["results"]] == ["fp32", "fp32"]
    assert report["ceilings"]["conv3x3_bf16_gflops"] is None
    assert report["machine"]["bf16_native"] is False
    assert "bf16 skipped: not native" in report["skipped"][0]["reason"]
    assert "bf16 skipped" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args", [["--size", "30"], ["--precision", "fp16"], ["--batch", "0"], ["--device", "tpu"]]
)
def test_bench_bad_input(args, capsys):
    assert main(["bench", "--models", "simple", *args]) == 2
    assert capsys.readouterr().err.startswith("mrtranslate: error:")


@pytest.mark.parametrize("model", ["cyclegan", "unit"])
def test_joint_real_fake_discriminator_call_equals_two_calls(model):
    from mrtranslate.methods.base import score_real_and_fake

    _, method = _method(model)
    real, fake = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(3, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        joint_real, joint_fake = score_real_and_fake(method.d_t1, real, fake)
        separate_real, separate_fake = method.d_t1(real), method.d_t1(fake)
    if isinstance(separate_real, list):
        for a, b in zip([*joint_real, *joint_fake], [*separate_real, *separate_fake]):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    else:
        torch.testing.assert_close(joint_real, separate_real, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(joint_fake, separate_fake, rtol=1e-5, atol=1e-6)


def test_micro_batched_translation_equals_one_batch():
    from mrtranslate.inference import translate_stack

    _, method = _method("cyclegan")
    method.eval()
    x = torch.rand(5, 1, 32, 32) * 2 - 1
    with torch.inference_mode():
        ref = method.translate(x, "t1-to-t2")
    torch.testing.assert_close(
        translate_stack(method, x, "t1-to-t2", 16), ref, rtol=1e-4, atol=1e-5
    )


def test_unit_batched_generator_step_equals_separate_calls():
    from mrtranslate.losses import bce_gan_loss, l1, latent_kl

    _, m = _method("unit")
    m.eval()  # no latent noise, so both computations are deterministic
    batch = {"t1w": torch.rand(2, 1, 32, 32) * 2 - 1, "t2w": torch.rand(2, 1, 32, 32) * 2 - 1}
    with torch.no_grad():
        _, logs, fakes = m.generator_step(batch)
        mu1, mu2 = m.encode(batch["t1w"], m.enc_t1), m.encode(batch["t2w"], m.enc_t2)
        fake_t2, fake_t1 = m.decode(mu1, m.dec_t2), m.decode(mu2, m.dec_t1)
        rec_t1 = m.decode(mu1, m.dec_t1)
        mu_c1 = m.encode(fake_t2, m.enc_t2)
        cyc_t1 = m.decode(mu_c1, m.dec_t1)
        expected = {
            "g/adv_t2": bce_gan_loss(m.d_t2(fake_t2), True),
            "g/kl": latent_kl(mu1) + latent_kl(mu2),
            "g/rec_t1": l1(rec_t1, batch["t1w"]),
            "g/cycle_t1": l1(cyc_t1, batch["t1w"]),
        }
    torch.testing.assert_close(fakes["t2w"], fake_t2, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fakes["t1w"], fake_t1, rtol=1e-4, atol=1e-5)
    for key, value in expected.items():
        torch.testing.assert_close(logs[key], value, rtol=1e-4, atol=1e-5)


def test_auto_downsample_keeps_small_images_usable():
    from mrtranslate.data.tensors import working_shape

    assert working_shape((304, 256), 0) == (76, 64)
    assert working_shape((128, 112), 0) == (64, 56)
    assert working_shape((64, 64), 0) == (64, 64)
    assert working_shape((304, 256), 2) == (152, 128)


def test_bench_volume_times_a_whole_volume_and_skips_empty_tiles(tmp_path, monkeypatch):
    """``bench --volume``: one whole volume translated as translate does; tiles without brain
    (the ellipsoid's corners, its thin first and last slices) are skipped."""
    from mrtranslate import bench

    monkeypatch.setattr(bench, "VOLUME_SHAPE", (96, 96, 24))
    monkeypatch.setattr(bench, "VOLUME_BRAIN_SEMI_AXES", (30, 36, 10))
    out = tmp_path / "volume.json"
    assert main(["bench", "--volume", "--models", "simple", "--crop", "32", "--precision",
                 "fp32", "--repeats", "1", "--json", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())["volume"]
    assert result["model"] == "simple" and result["precision"] == "fp32"
    assert result["seconds"] > 0 and len(result["seconds_all"]) == 1
    assert 0 < result["axial_tiles_translated"] < result["axial_tiles"]
    assert result["machine"]["cpu_capability"]
