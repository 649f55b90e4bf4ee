"""The fast path computes the same function: channels-last, bf16 autocast, torch.compile; bench."""

from __future__ import annotations

import json

import pytest
import torch

from mrtranslate.cli import main
from mrtranslate.config import apply_overrides, make_config
from mrtranslate.methods import build_method
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
        trainer = Trainer(method, cfg.train, data, tmp_path, torch.device("cpu"), progress=False)
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


def test_bench_writes_valid_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "--models",
            "simple",
            "--size",
            "32",
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
    assert {"machine", "ceilings", "results"} <= set(report)
    assert [r["precision"] for r in report["results"]] == ["fp32", "bf16"]
    for r in report["results"]:
        assert r["train_images_per_second"] > 0 and r["infer_b16_images_per_second"] > 0
        assert r["train_step_gflop"] > 0 and r["infer_gflop_per_image"] > 0
    assert report["ceilings"]["conv3x3_fp32_gflops"] > 0
    assert "Simple" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["--size", "30"], ["--precision", "fp16"], ["--batch", "0"]])
def test_bench_bad_input(args, capsys):
    assert main(["bench", "--models", "simple", *args]) == 2
    assert capsys.readouterr().err.startswith("mrtranslate: error:")
