"""``mrtranslate bench``: training and inference throughput, FLOPs and utilisation.

For each model and precision, on random data (no data set needed):

- training: one full training step (generator and discriminator updates) per batch, timed after
  two warm-up steps; the median of ``repeats`` steps and its spread (min, max);
- inference: translation at batch 1 and batch 16 under ``inference_mode``;
- FLOPs per training step and per translated image, counted with
  ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts as 2 FLOPs);
- achieved GFLOP/s, and as a fraction of this machine's measured ceilings: 3x3 convolution
  (channels-last, 128 -> 128 channels) and 2048 x 2048 matrix multiplication, in fp32 and bf16.
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from mrtranslate.config import apply_overrides, make_config
from mrtranslate.evaluation.translate import translate_stack
from mrtranslate.methods import DISPLAY_NAMES, build_method
from mrtranslate.training.trainer import Trainer, TrainingData


def _timed(fn: Callable[[], object], repeats: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` (forward and backward operations it runs)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def measure_ceilings(repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of a channels-last 3x3 conv and a 2048^2 matmul in fp32 and bf16."""
    out = {}
    a = torch.randn(2048, 2048)
    x = torch.randn(8, 128, 64, 64).contiguous(memory_format=torch.channels_last)
    w = torch.randn(128, 128, 3, 3).contiguous(memory_format=torch.channels_last)
    conv_flops = 2 * 8 * 64 * 64 * 128 * 128 * 9
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        ad, xd, wd = a.to(dtype), x.to(dtype), w.to(dtype)
        mm = statistics.median(_timed(lambda ad=ad: ad @ ad, repeats))
        conv = statistics.median(_timed(lambda xd=xd, wd=wd: F.conv2d(xd, wd, padding=1), repeats))
        out[f"matmul_{name}_gflops"] = 2 * 2048**3 / mm / 1e9
        out[f"conv3x3_{name}_gflops"] = conv_flops / conv / 1e9
    return out


def bench_model(
    model: str,
    precision: str,
    size: tuple[int, int],
    batch: int,
    repeats: int,
    channels_last: bool = False,
    compile_nets: bool = False,
) -> dict:
    """Throughput, FLOPs and achieved GFLOP/s of one model at the paper's configuration."""
    cfg = make_config(model, "paper")
    apply_overrides(
        cfg,
        [
            f"train.precision={precision}",
            f"train.batch_size={batch}",
            f"train.channels_last={channels_last}",
            f"train.compile={compile_nets}",
            "train.steps_per_epoch=1000",
            "net.unit_dropout=0",
        ],
    )
    torch.manual_seed(0)
    method = build_method(model, cfg.net, cfg.loss, size)
    data = TrainingData(
        t1w=torch.rand(max(batch, 4), 1, *size) * 2 - 1,
        t2w=torch.rand(max(batch, 4), 1, *size) * 2 - 1,
    )
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(method, cfg.train, data, Path(tmp), torch.device("cpu"), progress=False)
        step = iter(range(10**6))
        train_times = _timed(lambda: trainer.train_step(next(step)), repeats)
        train_flops = count_flops(lambda: trainer.train_step(next(step)))
    method.eval()
    result = {
        "model": model,
        "display_name": DISPLAY_NAMES[model],
        "precision": precision,
        "image_size": list(size),
        "batch": batch,
        "channels_last": channels_last,
        "compile": compile_nets,
        "repeats": repeats,
    }
    median = statistics.median(train_times)
    result |= {
        "train_step_seconds_median": median,
        "train_step_seconds_min": min(train_times),
        "train_step_seconds_max": max(train_times),
        "train_images_per_second": batch / median,
        "train_step_gflop": train_flops / 1e9,
        "train_gflops_per_second": train_flops / median / 1e9,
    }
    for infer_batch in (1, 16):
        images = torch.rand(infer_batch, 1, *size) * 2 - 1

        def infer(images=images, n=infer_batch):
            translate_stack(method, images, "t1-to-t2", n, precision=precision)

        times = _timed(infer, max(2, repeats if infer_batch == 1 else repeats // 2))
        per_image = statistics.median(times) / infer_batch
        result[f"infer_b{infer_batch}_seconds_per_image"] = per_image
        result[f"infer_b{infer_batch}_images_per_second"] = 1 / per_image
        if infer_batch == 1:
            result["infer_gflop_per_image"] = count_flops(infer) / 1e9
        result[f"infer_b{infer_batch}_gflops_per_second"] = (
            result["infer_gflop_per_image"] / per_image
        )
    return result


def metrics_seconds(shape: tuple[int, int], count: int, seed: int = 0) -> float:
    """Seconds to compute all measures (whole image and inside the mask) for ``count`` pairs."""
    from mrtranslate.evaluation.evaluate import measure_stack

    rng = np.random.default_rng(seed)
    real = rng.random((count, *shape), dtype=np.float32)
    synthetic = np.clip(real + 0.1 * rng.standard_normal(real.shape, dtype=np.float32), 0, 1)
    masks = np.zeros(real.shape, dtype=bool)
    masks[:, shape[0] // 8 : -shape[0] // 8, shape[1] // 8 : -shape[1] // 8] = True
    start = time.perf_counter()
    measure_stack(real, synthetic, masks, progress=False)
    return time.perf_counter() - start


def run_bench(
    models: list[str],
    precisions: list[str],
    size: tuple[int, int],
    batch: int,
    repeats: int,
    channels_last: bool = False,
    compile_nets: bool = False,
    progress: Callable[[str], None] | None = None,
    metrics_images: int = 2130,
) -> dict:
    """The whole benchmark: machine ceilings, one result per (model, precision), and the time
    of the evaluation measures for ``metrics_images`` image pairs (213 test images x 5 models x
    2 directions by default) at the quick profile's 76x64 and, extrapolated from a tenth of the
    images, at the paper's 304x256."""
    say = progress or (lambda message: None)
    say("measuring this machine's fp32/bf16 conv and matmul ceilings")
    ceilings = measure_ceilings()
    results = []
    for model in models:
        for precision in precisions:
            say(f"{DISPLAY_NAMES[model]} {precision} at {size[0]}x{size[1]}, batch {batch}")
            res = bench_model(model, precision, size, batch, repeats, channels_last, compile_nets)
            peak = ceilings[f"conv3x3_{precision}_gflops"]
            res["train_fraction_of_conv_peak"] = res["train_gflops_per_second"] / peak
            res["infer_b16_fraction_of_conv_peak"] = res["infer_b16_gflops_per_second"] / peak
            results.append(res)
    say(f"evaluation measures for {metrics_images} image pairs")
    small = metrics_seconds((76, 64), metrics_images)
    tenth = max(1, metrics_images // 10)
    full = metrics_seconds((304, 256), tenth) * metrics_images / tenth
    return {
        "metrics": {
            "images": metrics_images,
            "seconds_76x64": small,
            "seconds_304x256_extrapolated": full,
            "measures": "MAE, PSNR, MI, SSIM, whole image and inside the mask",
        },
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "bf16_supported_by_cpu": torch.backends.mkldnn.is_available(),
        },
        "ceilings": ceilings,
        "results": results,
    }


def format_table(report: dict) -> str:
    """Human-readable summary of :func:`run_bench` output."""
    c = report["ceilings"]
    lines = [
        f"ceilings (GFLOP/s): conv3x3 fp32 {c['conv3x3_fp32_gflops']:.0f}, bf16 "
        f"{c['conv3x3_bf16_gflops']:.0f}; matmul fp32 {c['matmul_fp32_gflops']:.0f}, bf16 "
        f"{c['matmul_bf16_gflops']:.0f}  ({report['machine']['threads']} threads)",
        f"{'model':<13}{'prec':<6}{'train s/step':>20}{'img/s':>8}{'GFLOP/step':>11}"
        f"{'GFLOP/s':>9}{'%peak':>7}{'infer b1 s/img':>16}{'b16 s/img':>11}{'%peak':>7}",
    ]
    for r in report["results"]:
        spread = (
            f"{r['train_step_seconds_median']:.3f} ({r['train_step_seconds_min']:.2f}-"
            f"{r['train_step_seconds_max']:.2f})"
        )
        lines.append(
            f"{r['display_name']:<13}{r['precision']:<6}{spread:>20}"
            f"{r['train_images_per_second']:>8.2f}{r['train_step_gflop']:>11.1f}"
            f"{r['train_gflops_per_second']:>9.0f}{100 * r['train_fraction_of_conv_peak']:>6.0f}%"
            f"{r['infer_b1_seconds_per_image']:>16.4f}{r['infer_b16_seconds_per_image']:>11.4f}"
            f"{100 * r['infer_b16_fraction_of_conv_peak']:>6.0f}%"
        )
    m = report["metrics"]
    lines.append(
        f"evaluation measures for {m['images']} image pairs (no translation): "
        f"{m['seconds_76x64']:.2f} s at 76x64, about {m['seconds_304x256_extrapolated']:.1f} s "
        "at 304x256"
    )
    return "\n".join(lines)
