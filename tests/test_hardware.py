"""Device and precision resolution: what fits this machine, decided without a GPU."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from mrtranslate import hardware
from mrtranslate.errors import UsageError
from mrtranslate.hardware import inference_precision, resolve_device, resolve_precision


@pytest.fixture
def fake_gpus(monkeypatch):
    """Pretend two CUDA devices exist, the current one being cuda:0."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_and_cuda_resolve_to_an_indexed_device(fake_gpus):
    # torch.cuda.set_device(torch.device("cuda")) raises: the resolved device must carry an index.
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("auto").index == 0
    assert resolve_device("cuda", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("auto", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(UsageError, match="does not exist"):
        resolve_device("cuda:2")


def test_device_resolution_without_a_gpu(no_gpu):
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    for name in ("cuda", "cuda:0"):
        with pytest.raises(UsageError, match="no CUDA device"):
            resolve_device(name)


@pytest.mark.parametrize("name", ["tpu", "cuda:x", "cuda0", ""])
def test_unknown_device_names_are_usage_errors(name, no_gpu):
    with pytest.raises(UsageError):
        resolve_device(name)


def _probe(monkeypatch, reported: bool, fp32_s: float, bf16_s: float, flags=()):
    """A CPU whose oneDNN reports bf16 or not, whose probe measures these times and whose
    flags list these bf16 instructions (none by default: the machine's own do not leak in)."""
    monkeypatch.setattr(hardware, "onednn_reports_bf16", lambda: reported)
    monkeypatch.setattr(hardware, "measure_cpu_bf16", lambda: (fp32_s, bf16_s))
    monkeypatch.setattr(hardware, "cpu_bf16_flags", lambda: tuple(flags))


def test_auto_picks_bf16_where_native_and_faster(monkeypatch):
    _probe(monkeypatch, reported=True, fp32_s=0.010, bf16_s=0.006)
    choice = resolve_precision("auto", "cpu")
    assert choice.precision == "bf16" and choice.bf16_native and choice.warning is None
    assert "6.00 ms in bf16 vs 10.00 ms in fp32" in choice.reason


def test_auto_picks_fp32_where_bf16_is_emulated(monkeypatch):
    # oneDNN limited to AVX2 (or a Zen 3): no native support, bf16 many times slower.
    _probe(monkeypatch, reported=False, fp32_s=0.003, bf16_s=0.080)
    choice = resolve_precision("auto", "cpu")
    assert choice.precision == "fp32" and not choice.bf16_native
    assert "no native bf16" in choice.reason


def test_auto_picks_fp32_where_bf16_is_not_clearly_faster(monkeypatch):
    _probe(monkeypatch, reported=True, fp32_s=0.010, bf16_s=0.0097)
    assert resolve_precision("auto", "cpu").precision == "fp32"


def test_explicit_bf16_without_native_support_warns_with_the_slowdown(monkeypatch):
    _probe(monkeypatch, reported=False, fp32_s=0.002, bf16_s=0.060)
    choice = resolve_precision("bf16", "cpu")
    assert choice.precision == "bf16"
    assert "30x slower" in choice.warning and "\n" not in choice.warning


def test_explicit_fp32_measures_nothing(monkeypatch):
    def fail():
        raise AssertionError("fp32 needs no measurement")

    monkeypatch.setattr(hardware, "measure_cpu_bf16", fail)
    assert resolve_precision("fp32", "cpu").precision == "fp32"


def test_cuda_precision_follows_native_bf16_of_the_chosen_gpu(fake_gpus, monkeypatch):
    """Emulated bf16 (V100, T4: ``is_bf16_supported()`` is True there by default) is not native;
    the question is asked with the chosen GPU current."""
    import contextlib

    asked = []

    @contextlib.contextmanager
    def current(device):
        asked.append(str(device))
        yield

    def supported(including_emulation=True):
        return including_emulation or native

    monkeypatch.setattr(torch.cuda, "device", current)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    native = True
    assert resolve_precision("auto", "cuda:1").precision == "bf16"
    assert asked == ["cuda:1"]
    native = False  # emulated only
    choice = resolve_precision("auto", "cuda:0")
    assert choice.precision == "fp32" and not choice.bf16_native
    assert resolve_precision("bf16", "cuda:0").warning


def test_unknown_precision_is_a_usage_error():
    with pytest.raises(UsageError):
        resolve_precision("fp16", "cpu")


def test_inference_precision(monkeypatch):
    _probe(monkeypatch, reported=False, fp32_s=0.002, bf16_s=0.060)
    assert inference_precision("bf16", "cpu") == "fp32"  # never emulated bf16
    assert inference_precision("fp32", "cpu") == "fp32"
    # native but measured slower: training's auto takes fp32, so translation does too
    _probe(monkeypatch, reported=True, fp32_s=0.010, bf16_s=0.012)
    assert resolve_precision("auto", "cpu").precision == "fp32"
    assert inference_precision("bf16", "cpu") == "fp32"
    _probe(monkeypatch, reported=True, fp32_s=0.010, bf16_s=0.005)
    assert inference_precision("bf16", "cpu") == "bf16"
    assert inference_precision("auto", "cpu") == "bf16"
    assert inference_precision("fp32", "cpu") == "fp32"


def test_real_probe_is_quick_and_consistent():
    hardware.measure_cpu_bf16.cache_clear()
    start = time.perf_counter()
    choice = resolve_precision("auto", "cpu")
    # about 0.05 s alone; the bound only catches a probe that runs emulated bf16 for minutes
    assert time.perf_counter() - start < 30
    assert choice.precision in ("fp32", "bf16")
    assert choice.fp32_ms > 0 and choice.bf16_ms > 0
    if choice.precision == "bf16":
        assert choice.bf16_native and hardware.onednn_reports_bf16()
    if not hardware.onednn_reports_bf16():
        assert choice.precision == "fp32"


def test_on_a_gpu_fp32_means_float32_and_cudnn_is_deterministic(monkeypatch):
    """PyTorch computes cuDNN convolutions in TF32 by default; the project's "fp32" on a GPU
    switches that off and asks cuDNN for deterministic algorithms. The CPU is left alone."""
    from mrtranslate.hardware import configure_cuda_math

    switches = (
        (torch.backends.cuda.matmul, "allow_tf32", True),
        (torch.backends.cudnn, "allow_tf32", True),
        (torch.backends.cudnn, "deterministic", False),
        (torch.backends.cudnn, "benchmark", True),
    )
    saved = [getattr(module, name) for module, name, _ in switches]
    try:
        for module, name, value in switches:
            setattr(module, name, value)
        untouched = configure_cuda_math(torch.device("cpu"))
        assert untouched["tf32_cudnn"] and untouched["cudnn_benchmark"]
        flags = configure_cuda_math(torch.device("cuda", 0))
        assert flags == {
            "tf32_matmul": False,
            "tf32_cudnn": False,
            "cudnn_deterministic": True,
            "cudnn_benchmark": False,
        }
    finally:
        for (module, name, _), value in zip(switches, saved, strict=True):
            setattr(module, name, value)


def test_run_records_the_gpu_math_flags(small_phantom, tmp_path):
    import json

    from mrtranslate.cli import main

    out = tmp_path / "run"
    args = ["train", "--model", "simple", "--data", str(small_phantom), "--out", str(out)]
    assert main([*args, "--profile", "tiny", "--quiet", "--set", "train.epochs=1"]) == 0
    flags = json.loads((out / "run.json").read_text())["environment"]["cuda_math"]
    assert set(flags) == {"tf32_matmul", "tf32_cudnn", "cudnn_deterministic", "cudnn_benchmark"}


def test_an_explicit_gpu_index_under_torchrun_is_refused(
    small_phantom, tmp_path, capsys, monkeypatch
):
    from helpers import usage_error

    monkeypatch.setenv("WORLD_SIZE", "2")
    out = tmp_path / "run"
    args = ["train", "--model", "simple", "--data", str(small_phantom), "--out", str(out)]
    err = usage_error(capsys, [*args, "--profile", "tiny", "--set", "train.device=cuda:1"])
    assert "LOCAL_RANK" in err and "train.device=cuda" in err


def test_gpu_check_without_a_gpu_says_so_and_succeeds(capsys, no_gpu):
    from mrtranslate import gpu_check

    assert gpu_check.main([]) == 0
    assert "no CUDA device" in capsys.readouterr().out


def test_gpu_check_runs_its_checks_and_fails_loudly(capsys, monkeypatch):
    """The same checks on the CPU (step timings stubbed): the resume checks run for real, and
    one failing check makes the whole check fail while the others still report."""
    from mrtranslate import bench, gpu_check

    def fake_bench(model, precision, size, batch, repeats, **kwargs):
        if model == "unit" and kwargs["fast_path"] == "on":
            raise RuntimeError("boom")
        return {"train_step_seconds_median": 0.25}

    monkeypatch.setattr(bench, "bench_model", fake_bench)
    code = gpu_check.main(["--device", "cpu", "--size", "32", "--repeats", "1"])
    out = capsys.readouterr()
    assert code == 1 and "1 check(s) FAILED" in out.err
    lines = {line.split("  ")[0].strip(): line for line in out.out.splitlines()}
    assert "ok" in lines["resume off -> on"] and "ok" in lines["resume on -> off"]
    assert "250.0 ms/step" in lines["cyclegan step, fast path"]
    assert "FAILED" in lines["unit step, fast path"] and "boom" in lines["unit step, fast path"]


def test_timed_calls_time_cheap_calls_over_a_minimum_duration():
    """A cheap call is timed until the timed calls add up to min_seconds (the calibration's
    guard against one slow moment); a slow one just ``repeats`` times; never above the cap."""

    from mrtranslate.hardware import timed_calls

    calls = []

    def nap(seconds):
        return lambda: (calls.append(1), time.sleep(seconds))

    times = timed_calls(nap(0.01), 3, warmup=1, min_seconds=0.1)
    assert len(times) >= 9 and sum(times) >= 0.1 and len(calls) == len(times) + 1
    assert len(timed_calls(nap(0.06), 3, warmup=0, min_seconds=0.1)) == 3
    assert len(timed_calls(nap(0.0), 3, warmup=0, min_seconds=10.0, max_repeats=5)) == 5
    assert len(timed_calls(nap(0.0), 3, warmup=0)) == 3


def test_a_cpu_with_bf16_instructions_takes_bf16_when_the_probe_says_not_slower(monkeypatch):
    """On an AVX512_BF16 CPU the small probe showed bf16 at 0.72-0.95 of fp32 while real steps
    took half the time; 0.95 used to give fp32 and half the training."""
    bf16_cpu = ("avx512_bf16",)
    _probe(monkeypatch, reported=True, fp32_s=0.00384, bf16_s=0.00366, flags=bf16_cpu)
    choice = resolve_precision("auto", "cpu")
    assert choice.precision == "bf16" and "avx512_bf16" in choice.reason
    _probe(monkeypatch, True, fp32_s=0.00384, bf16_s=0.0042, flags=bf16_cpu)  # slower: never
    assert resolve_precision("auto", "cpu").precision == "fp32"
    _probe(monkeypatch, reported=True, fp32_s=0.00384, bf16_s=0.00366)  # AVX-512 without bf16
    assert resolve_precision("auto", "cpu").precision == "fp32"
    _probe(monkeypatch, False, fp32_s=0.00384, bf16_s=0.00366, flags=bf16_cpu)  # oneDNN: no
    assert resolve_precision("auto", "cpu").precision == "fp32"


def test_cpu_bf16_flags_are_read_from_the_cpu():
    flags = hardware.cpu_bf16_flags()
    assert set(flags) <= set(hardware.BF16_CPU_FLAGS)
    try:
        listed = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        pytest.skip("no /proc/cpuinfo on this system")
    assert ("avx512_bf16" in flags) == (" avx512_bf16" in listed)
