"""Which device and which precision fit this machine.

- :func:`resolve_device` turns ``auto``, ``cpu``, ``cuda`` and ``cuda:N`` into an indexed
  :class:`torch.device` (``auto`` and ``cuda`` become ``cuda:<index>``, never a bare ``cuda``).
- :func:`resolve_precision` turns ``auto``, ``fp32`` and ``bf16`` into ``fp32`` or ``bf16``.
  ``auto`` picks bf16 only where it is native: on CUDA when the chosen GPU computes bf16 in
  hardware (``torch.cuda.is_bf16_supported(including_emulation=False)``; not measured); on a
  CPU when oneDNN reports native bf16 support *and* a short measurement (a 32-channel 3x3
  convolution, forward and backward, well under a second) shows bf16 autocast at least 10%
  faster than fp32. On CPUs without native bf16 (AVX2-only, or oneDNN limited to AVX2) bf16 is
  emulated and 10-1000x slower, so ``auto`` gives fp32 and an explicit ``bf16`` runs with a
  warning that states the measured slowdown. Translation (:func:`inference_precision`)
  follows the same rule.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from mrtranslate.errors import UsageError

DEVICES_HELP = "auto, cpu, cuda or cuda:N"
# bf16 is chosen automatically only when it takes at most this fraction of the fp32 time ...
BF16_CLEARLY_FASTER = 0.9
# ... or, on a CPU whose flags name bf16 instructions (AVX512_BF16, AMX_BF16), when it is not
# slower: there the probe's small convolution understates bf16 (measured on an AMD EPYC with
# avx512_bf16: probe ratios 0.72-0.95 in one session, two of six above 0.9 and those studies
# trained in fp32, while a CycleGAN step took 0.154 s in bf16 and 0.320 s in fp32;
# docs/experiments/2026-12-07-the-budget-kept-on-every-data-set.md)
BF16_NOT_SLOWER = 1.0
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def resolve_device(name: str = "auto", local_rank: int | None = None) -> torch.device:
    """``name`` (auto, cpu, cuda, cuda:N) -> an indexed device.

    ``auto`` is CUDA when a GPU is available, else the CPU. ``auto`` and ``cuda`` give
    ``cuda:<local_rank>`` in a distributed run and ``cuda:<current device>`` otherwise.

    Raises:
        UsageError: an unknown name, CUDA without a GPU, or an index beyond the GPUs present.
    """
    name = name.strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name != "cuda" and not name.startswith("cuda:"):
        raise UsageError(f"device must be {DEVICES_HELP}, got {name!r}")
    if not torch.cuda.is_available():
        raise UsageError(f"device {name} was asked for but no CUDA device is available")
    if name == "cuda":
        index = local_rank if local_rank is not None else torch.cuda.current_device()
    else:
        try:
            index = int(name.partition(":")[2])
        except ValueError:
            raise UsageError(f"device must be {DEVICES_HELP}, got {name!r}") from None
    count = torch.cuda.device_count()
    if not 0 <= index < count:
        raise UsageError(f"device cuda:{index} does not exist ({count} CUDA device(s) found)")
    return torch.device("cuda", index)


def cuda_math_flags() -> dict[str, bool]:
    """The PyTorch switches that decide what "fp32" means on a GPU (recorded in ``run.json``)."""
    return {
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
    }


def configure_cuda_math(device: torch.device) -> dict[str, bool]:
    """On a GPU: fp32 is IEEE float32 (PyTorch computes cuDNN convolutions in TF32 by default,
    10-bit mantissa), and cuDNN uses deterministic algorithms without benchmarking, so a run
    repeats with the same seed on the same GPU and software (up to the few CUDA kernels that
    add atomically). Nothing changes on the CPU. Returns the flags in effect."""
    if torch.device(device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return cuda_math_flags()


@dataclass(frozen=True)
class PrecisionChoice:
    """The outcome of :func:`resolve_precision`, recorded in ``run.json``.

    Attributes:
        requested: ``auto``, ``fp32`` or ``bf16``.
        precision: the precision used, ``fp32`` or ``bf16``.
        device: the device it was resolved for (``cpu``, ``cuda:0``, ...).
        bf16_native: whether bf16 runs natively there.
        reason: one sentence saying why.
        fp32_ms, bf16_ms: the probe's times (CPU only; ``None`` when not measured).
        warning: a one-line warning for the user, or ``None``.
    """

    requested: str
    precision: str
    device: str
    bf16_native: bool
    reason: str
    fp32_ms: float | None = None
    bf16_ms: float | None = None
    warning: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


CPU = torch.device("cpu")


def synchronize(device: torch.device) -> None:
    """Wait for queued work on ``device`` (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_calls(
    fn: Callable[[], object],
    repeats: int,
    warmup: int = 2,
    device: torch.device = CPU,
    min_seconds: float = 0.0,
    max_repeats: int = 100,
) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` calls, each timed
    call ending when ``device`` has finished its work; more calls (up to ``max_repeats``) until
    the timed calls add up to ``min_seconds``, so that a cheap call is timed over a sample long
    enough not to fall in one slow moment of the machine."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times: list[float] = []
    while len(times) < repeats or (sum(times) < min_seconds and len(times) < max_repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def cpu_capability() -> str:
    """PyTorch's CPU vector capability (``AVX512``, ``AVX2``, ``DEFAULT``, ...)."""
    return str(torch.backends.cpu.get_cpu_capability())


@functools.cache
def cpu_bf16_flags() -> tuple[str, ...]:
    """The bf16 instruction flags this CPU lists (Linux ``/proc/cpuinfo``; none elsewhere or
    when it cannot be read): hardware bf16 arithmetic, not emulation."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return tuple(f for f in BF16_CPU_FLAGS if f in flags)
    except OSError:
        pass
    return ()


def onednn_reports_bf16() -> bool:
    """Whether oneDNN reports bf16 support on this CPU (not under ONEDNN_MAX_CPU_ISA=AVX2)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _conv_step(bf16: bool, x: torch.Tensor, w: torch.Tensor) -> float:
    """Seconds of one 3x3 convolution forward and backward on the CPU."""
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        y = F.conv2d(x, w, padding=1)
    y.float().sum().backward()
    return time.perf_counter() - start


def _best_times(channels: int, size: int, batch: int, repeats: int) -> tuple[float, float]:
    """Best (fp32, bf16) seconds of ``repeats`` interleaved calls each, after a warm-up."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, size, size, generator=gen, requires_grad=True)
    w = torch.randn(channels, channels, 3, 3, generator=gen, requires_grad=True)
    for _ in range(3):  # warm-up: thread pool, oneDNN primitive creation, caches
        _conv_step(False, x, w), _conv_step(True, x, w)
    fp32 = bf16 = float("inf")
    for _ in range(repeats):
        fp32 = min(fp32, _conv_step(False, x, w))
        bf16 = min(bf16, _conv_step(True, x, w))
    return fp32, bf16


@functools.cache
def measure_cpu_bf16() -> tuple[float, float]:
    """(fp32, bf16) seconds of a small convolution forward and backward on this CPU.

    First a tiny problem (16 channels, 32x32): where bf16 is emulated it is already many times
    slower there, and the probe stops (about 50 ms in all). Otherwise a problem like the quick
    profile's layers (32 channels, 64x64, batch 2; about 60 ms in all). Cached per process.
    """
    fp32, bf16 = _best_times(16, 32, 1, repeats=3)
    if bf16 > 3 * fp32:
        return fp32, bf16
    return _best_times(32, 64, 2, repeats=8)


def _cpu_choice(requested: str) -> PrecisionChoice:
    if requested == "fp32":
        return PrecisionChoice(
            "fp32", "fp32", "cpu", onednn_reports_bf16(), "train.precision is fp32"
        )
    fp32_s, bf16_s = measure_cpu_bf16()
    fp32_ms, bf16_ms = 1000 * fp32_s, 1000 * bf16_s
    reported = onednn_reports_bf16()
    flags = cpu_bf16_flags() if reported else ()
    # The one rule, for training and translation alike: bf16 where oneDNN reports it and the
    # probe measures it at least 10% faster than fp32, or not slower on a CPU with bf16
    # instructions.
    limit = BF16_NOT_SLOWER if flags else BF16_CLEARLY_FASTER
    native = reported and bf16_s <= limit * fp32_s
    timing = f"a 3x3 conv step took {bf16_ms:.2f} ms in bf16 vs {fp32_ms:.2f} ms in fp32"
    capability = f"CPU capability {cpu_capability()}, oneDNN bf16 {'yes' if reported else 'no'}"
    capability += f", {'/'.join(flags)}" if flags else ""
    if requested == "bf16":
        warning = None
        if not native:
            slower = f"{bf16_s / fp32_s:.0f}x slower" if bf16_s > fp32_s else "not 10% faster"
            what = "not faster than fp32" if reported else "not native"
            warning = (
                f"bf16 is {what} on this CPU ({capability}): {timing} ({slower}); "
                "use --precision auto or fp32"
            )
        return PrecisionChoice(
            "bf16", "bf16", "cpu", native, "train.precision is bf16", fp32_ms, bf16_ms, warning
        )
    if native:
        reason = f"native bf16 ({capability}); {timing}"
        return PrecisionChoice("auto", "bf16", "cpu", True, reason, fp32_ms, bf16_ms)
    if reported:
        reason = f"bf16 is not clearly faster here ({capability}); {timing}"
    else:
        reason = f"no native bf16 ({capability}); {timing}"
    return PrecisionChoice("auto", "fp32", "cpu", native, reason, fp32_ms, bf16_ms)


def cuda_bf16_native(device: torch.device) -> bool:
    """Whether ``device`` (a CUDA GPU) computes bf16 in hardware. PyTorch's plain
    ``is_bf16_supported()`` also counts emulation (V100, T4), where bf16 is slower than fp32,
    and asks about the current device rather than this one."""
    with torch.cuda.device(device):
        return torch.cuda.is_bf16_supported(including_emulation=False)


def resolve_precision(requested: str, device: torch.device | str) -> PrecisionChoice:
    """``auto``/``fp32``/``bf16`` on ``device`` -> the precision to use, and why.

    Raises:
        UsageError: an unknown precision name.
    """
    if requested not in ("auto", "fp32", "bf16"):
        raise UsageError(f"precision must be auto, fp32 or bf16, got {requested!r}")
    device = torch.device(device)
    if device.type == "cpu":
        return _cpu_choice(requested)
    native = device.type == "cuda" and cuda_bf16_native(device)
    name = str(device)
    if requested == "fp32":
        return PrecisionChoice("fp32", "fp32", name, native, "train.precision is fp32")
    if requested == "bf16":
        warning = None if native else f"bf16 is not supported natively on {name}"
        return PrecisionChoice(
            "bf16", "bf16", name, native, "train.precision is bf16", warning=warning
        )
    reason = f"{name} {'supports' if native else 'does not support'} bf16"
    return PrecisionChoice("auto", "bf16" if native else "fp32", name, native, reason)


def autocast(device: torch.device | str, precision: str):
    """bf16 autocast on ``device`` when ``precision`` is ``bf16``, else a disabled context."""
    return torch.autocast(
        torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16"
    )


def inference_precision(trained: str, device: torch.device | str) -> str:
    """The precision for translating with a run trained in ``trained`` precision on ``device``.

    A run trained in bf16 (or an older run whose record says ``auto``) translates in bf16 where
    ``auto`` would train in bf16 (the same rule: native and measured at least 10% faster on a
    CPU; native on a GPU); elsewhere, and for fp32 runs, in fp32.
    """
    if trained == "fp32":
        return "fp32"
    return resolve_precision("auto", device).precision
