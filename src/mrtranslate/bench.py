"""``mrtranslate bench``: training and inference throughput, FLOPs and utilisation.

For each model and precision, on random data (no data set needed):

- training: one full training step (generator and discriminator updates) per batch, timed after
  two warm-up steps; the median of ``repeats`` steps and its spread (min, max);
- inference: translation at batch 1 and batch 16 under ``inference_mode``;
- FLOPs per training step and per translated image, counted with
  ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts as 2 FLOPs);
- achieved GFLOP/s, and as a fraction of this machine's measured ceilings: 3x3 convolution
  (channels-last, 128 -> 128 channels) and 2048 x 2048 matrix multiplication, in fp32 and bf16.

bf16 is measured only where it is native (:func:`mrtranslate.hardware.resolve_precision`): on a
CPU that emulates bf16 a single step would take minutes, so bf16 is skipped there with a note in
the report (``skipped``).
"""

from __future__ import annotations

import dataclasses
import platform
import statistics
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from mrtranslate.directions import Direction
from mrtranslate.hardware import (
    CPU,
    cpu_capability,
    resolve_device,
    resolve_precision,
    timed_calls,
)
from mrtranslate.inference.batches import translate_stack
from mrtranslate.methods import display_name, make_config
from mrtranslate.nets.conv import conv_layers
from mrtranslate.study.calibration import metrics_seconds, random_data_trainer


def count_flops(fn: Callable[[], object], module: torch.nn.Module | None = None) -> int:
    """FLOPs of one call of ``fn`` (forward and backward operations it runs).

    With ``module``, its convolutions are counted as direct convolutions (the model's FLOPs,
    whatever algorithm computes them: Winograd does fewer multiplications and NNPACK's kernels
    are invisible to the counter), so that GFLOP/s compare across algorithms."""
    layers = conv_layers(module) if module is not None else {}
    saved = {name: layer.algorithm for name, layer in layers.items()}
    try:
        for layer in layers.values():
            layer.algorithm = "direct"
        with FlopCounterMode(display=False) as counter:
            fn()
    finally:
        for name, layer in layers.items():
            layer.algorithm = saved[name]
    return int(counter.get_total_flops())


def measure_ceilings(
    repeats: int = 5,
    device: torch.device = CPU,
    precisions: tuple[str, ...] = ("fp32", "bf16"),
) -> dict[str, float | None]:
    """GFLOP/s of a channels-last 3x3 conv and a 2048^2 matmul in each of ``precisions``
    (``None`` for a precision not measured)."""
    out: dict[str, float | None] = {
        f"{kind}_{name}_gflops": None for kind in ("matmul", "conv3x3") for name in ("fp32", "bf16")
    }
    a = torch.randn(2048, 2048, device=device)
    x = torch.randn(8, 128, 64, 64, device=device).contiguous(memory_format=torch.channels_last)
    w = torch.randn(128, 128, 3, 3, device=device).contiguous(memory_format=torch.channels_last)
    conv_flops = 2 * 8 * 64 * 64 * 128 * 128 * 9
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        if name not in precisions:
            continue
        ad, xd, wd = a.to(dtype), x.to(dtype), w.to(dtype)
        mm = statistics.median(timed_calls(lambda ad=ad: ad @ ad, repeats, device=device))
        conv = statistics.median(
            timed_calls(lambda xd=xd, wd=wd: F.conv2d(xd, wd, padding=1), repeats, device=device)
        )
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
    device: torch.device = CPU,
    conv_algorithm: str = "auto",
    fast_path: str = "auto",
) -> dict:
    """Throughput, FLOPs and achieved GFLOP/s of one model at the paper's configuration, with
    each convolution's algorithm measured (``auto``) or PyTorch's own (``direct``: the plain
    path, equivalent to the reference implementation's)."""
    cfg = make_config(model, "paper")
    cfg.train = dataclasses.replace(
        cfg.train,
        precision=precision,
        batch_size=batch,
        channels_last=channels_last,
        compile=compile_nets,
        conv_algorithm=conv_algorithm,
        fast_path=fast_path,
        steps_per_epoch=1000,
    )
    cfg.validate()
    with random_data_trainer(model, cfg, size, batch, device, precision) as trainer:
        choice = trainer.prepare_convolutions()
        step = iter(range(10**6))
        train_times = timed_calls(lambda: trainer.train_step(next(step)), repeats, device=device)
        train_flops = count_flops(lambda: trainer.train_step(next(step)), trainer.method)
    method = trainer.method
    method.eval()
    result = {
        "model": model,
        "display_name": display_name(model),
        "precision": precision,
        "device": str(device),
        "image_size": list(size),
        "batch": batch,
        "channels_last": channels_last,
        "compile": compile_nets,
        "conv_algorithm": conv_algorithm,
        "conv_algorithms": choice.counts(),
        "conv_tuning_seconds": choice.seconds,
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
    return result | _inference_speed(method, precision, size, repeats, device)


def _inference_speed(method, precision: str, size, repeats: int, device: torch.device) -> dict:
    """Seconds, images/s and GFLOP/s of translation at batch 1 and 16 (in eval mode)."""
    result = {}
    for infer_batch in (1, 16):
        images = torch.rand(infer_batch, method.context, *size) * 2 - 1

        def infer(images=images, n=infer_batch):
            translate_stack(
                method, images, Direction.T1_TO_T2, n, device=device, precision=precision
            )

        times = timed_calls(
            infer, max(2, repeats if infer_batch == 1 else repeats // 2), device=device
        )
        per_image = statistics.median(times) / infer_batch
        result[f"infer_b{infer_batch}_seconds_per_image"] = per_image
        result[f"infer_b{infer_batch}_images_per_second"] = 1 / per_image
        if infer_batch == 1:
            result["infer_gflop_per_image"] = count_flops(infer, method) / 1e9
        result[f"infer_b{infer_batch}_gflops_per_second"] = (
            result["infer_gflop_per_image"] / per_image
        )
    return result


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
    device: str = "auto",
    conv_algorithms: tuple[str, ...] = ("direct", "auto"),
) -> dict:
    """The whole benchmark: machine ceilings, one result per (model, precision), and the time
    of the evaluation measures for ``metrics_images`` image pairs (213 test images x 5 models x
    2 directions by default) at the quick profile's 76x64 and, extrapolated from a tenth of the
    images, at the paper's 304x256.

    bf16 is skipped, with a note in ``skipped``, where it is not native (see the module doc).
    ``conv_algorithms``: ``direct`` measures the plain path (PyTorch's own convolutions, the
    reference implementation's), ``auto`` the per-layer algorithms measured fastest here; with
    both, each ``auto`` result carries ``speedup_vs_direct`` (same model, same precision).
    """
    say = progress or (lambda message: None)
    torch_device = resolve_device(device)
    probe = resolve_precision("auto", torch_device)
    skipped = []
    if "bf16" in precisions and not probe.bf16_native:
        note = f"bf16 skipped: not native on {torch_device} ({probe.reason})"
        skipped.append({"precision": "bf16", "reason": note})
        say(note)
        precisions = [p for p in precisions if p != "bf16"]
    say(
        f"measuring the {'/'.join(precisions) or 'fp32'} conv and matmul ceilings on {torch_device}"
    )
    ceilings = measure_ceilings(device=torch_device, precisions=tuple(precisions or ["fp32"]))
    settings = (size, batch, repeats, channels_last, compile_nets, torch_device)
    results = [
        res
        for model in models
        for precision in precisions
        for res in _bench_algorithms(model, precision, settings, conv_algorithms, ceilings, say)
    ]
    say(f"evaluation measures for {metrics_images} image pairs")
    return {
        "metrics": _metrics_timing(metrics_images),
        "machine": _machine(torch_device, probe),
        "ceilings": ceilings,
        "skipped": skipped,
        "results": results,
    }


def _bench_algorithms(
    model: str, precision: str, settings: tuple, conv_algorithms, ceilings: dict, say
) -> list[dict]:
    """One result per convolution algorithm setting of ``model`` in ``precision``; ``auto``
    after ``direct`` carries its speed-up over it."""
    size, batch, repeats, channels_last, compile_nets, torch_device = settings
    results, plain = [], None
    for algorithm in conv_algorithms:
        say(
            f"{display_name(model)} {precision} at {size[0]}x{size[1]}, batch {batch}, "
            f"convolutions {algorithm}"
        )
        res = bench_model(
            model,
            precision,
            size,
            batch,
            repeats,
            channels_last,
            compile_nets,
            torch_device,
            algorithm,
        )
        res |= _fractions_of_peak(res, ceilings, precision)
        if algorithm == "direct":
            plain = res
        elif plain is not None:
            res["speedup_vs_direct"] = _speedups(plain, res)
        results.append(res)
    return results


def _fractions_of_peak(res: dict, ceilings: dict, precision: str) -> dict:
    """A result's achieved GFLOP/s as fractions of this machine's measured ceilings."""
    peak = ceilings[f"conv3x3_{precision}_gflops"]
    matmul_bf16 = ceilings["matmul_bf16_gflops"]
    return {
        "train_fraction_of_conv_peak": res["train_gflops_per_second"] / peak,
        "infer_b16_fraction_of_conv_peak": res["infer_b16_gflops_per_second"] / peak,
        "train_fraction_of_matmul_bf16_peak": (
            res["train_gflops_per_second"] / matmul_bf16 if matmul_bf16 else None
        ),
    }


def _speedups(plain: dict, fast: dict) -> dict:
    """How many times faster ``fast`` is than ``plain`` (training step, inference at b1/b16)."""
    keys = {
        "train": "train_step_seconds_median",
        "infer_b1": "infer_b1_seconds_per_image",
        "infer_b16": "infer_b16_seconds_per_image",
    }
    return {name: plain[key] / fast[key] for name, key in keys.items()}


def _metrics_timing(images: int) -> dict:
    """Seconds of the evaluation measures for ``images`` pairs at 76x64 and (extrapolated from
    a tenth of them) at 304x256."""
    tenth = max(1, images // 10)
    return {
        "images": images,
        "seconds_76x64": metrics_seconds((76, 64), images),
        "seconds_304x256_extrapolated": metrics_seconds((304, 256), tenth) * images / tenth,
        "measures": "MAE, PSNR, MI, SSIM, whole image and inside the mask",
    }


def _machine(device: torch.device, probe) -> dict:
    processor = platform.processor() or platform.machine()
    return {
        "processor": processor,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else processor,
        "cpu_capability": cpu_capability(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "bf16_native": probe.bf16_native,
        "precision_probe": probe.to_dict(),
    }


def format_table(report: dict) -> str:
    """Human-readable summary of :func:`run_bench` output."""
    c = report["ceilings"]

    def gflops(key: str) -> str:
        return "not measured" if c.get(key) is None else f"{c[key]:.0f}"

    machine = report["machine"]
    lines = [
        f"device {machine['device']} ({machine['device_name']}, CPU capability "
        f"{machine['cpu_capability']}, bf16 native: {'yes' if machine['bf16_native'] else 'no'})",
        f"ceilings (GFLOP/s): conv3x3 fp32 {gflops('conv3x3_fp32_gflops')}, bf16 "
        f"{gflops('conv3x3_bf16_gflops')}; matmul fp32 {gflops('matmul_fp32_gflops')}, bf16 "
        f"{gflops('matmul_bf16_gflops')}  ({machine['threads']} threads)",
        f"{'model':<13}{'prec':<6}{'conv':<7}{'train s/step':>20}{'x plain':>8}{'img/s':>8}"
        f"{'GFLOP/step':>11}{'GFLOP/s':>9}{'%peak':>7}{'infer b1 s/img':>16}{'b16 s/img':>11}"
        f"{'%peak':>7}",
    ]
    for r in report["results"]:
        spread = (
            f"{r['train_step_seconds_median']:.3f} ({r['train_step_seconds_min']:.2f}-"
            f"{r['train_step_seconds_max']:.2f})"
        )
        speedup = r.get("speedup_vs_direct", {}).get("train")
        lines.append(
            f"{r['display_name']:<13}{r['precision']:<6}{r['conv_algorithm']:<7}{spread:>20}"
            f"{'' if speedup is None else f'{speedup:.2f}x':>8}"
            f"{r['train_images_per_second']:>8.2f}{r['train_step_gflop']:>11.1f}"
            f"{r['train_gflops_per_second']:>9.0f}{100 * r['train_fraction_of_conv_peak']:>6.0f}%"
            f"{r['infer_b1_seconds_per_image']:>16.4f}{r['infer_b16_seconds_per_image']:>11.4f}"
            f"{100 * r['infer_b16_fraction_of_conv_peak']:>6.0f}%"
        )
    lines += [note["reason"] for note in report.get("skipped", [])]
    m = report["metrics"]
    lines.append(
        f"evaluation measures for {m['images']} image pairs (no translation): "
        f"{m['seconds_76x64']:.2f} s at 76x64, about {m['seconds_304x256_extrapolated']:.1f} s "
        "at 304x256"
    )
    return "\n".join(lines)


# The whole-volume benchmark's defaults: a BraTS-sized volume (240x240x155 at 1 mm) and a
# brain-shaped ellipsoid in it (semi-axes in voxels, about a glioma case's brain extent)
VOLUME_SHAPE = (240, 240, 155)
VOLUME_BRAIN_SEMI_AXES = (68, 85, 62)


def bench_volume(
    model: str = "generators_s",
    shape: tuple[int, int, int] | None = None,
    crop: int = 96,
    planes: int = 1,
    repeats: int = 2,
    device: str = "auto",
    precision: str = "auto",
) -> dict:
    """Seconds to translate one whole volume of ``shape`` (RAS+, axial slices of its first two
    axes) with ``model``'s quick networks trained on ``crop`` x ``crop`` crops at native
    resolution, as ``translate`` and the study's volume stage do (tiles of the crop, tiles
    without brain skipped, ``planes`` planes averaged, the inference precision of a run trained
    in ``precision``). The brain is an ellipsoid (:data:`VOLUME_BRAIN_SEMI_AXES`) of textured
    intensities; the networks are untrained (the time does not depend on the weights).
    ``shape``: default :data:`VOLUME_SHAPE`. Returns the median of ``repeats`` translations
    (after a warm-up on a slab) and the tiles."""
    import time

    import numpy as np

    from mrtranslate.inference.batches import tiles_to_translate
    from mrtranslate.inference.volumes import translate_volume

    shape = tuple(shape or VOLUME_SHAPE)
    torch_device = resolve_device(device)
    run = _untrained_native_run(model, crop, planes, (shape[1], shape[0]), torch_device, precision)
    brain, volume = _ellipsoid_brain(shape)
    middle = slice(shape[2] // 2 - 2, shape[2] // 2 + 2)
    translate_volume(run, volume[..., middle], "t1-to-t2", brain[..., middle])  # warm-up
    seconds = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        translate_volume(run, volume, "t1-to-t2", brain)
        seconds.append(time.perf_counter() - start)
    axial = np.stack([np.flipud(brain[:, :, k].T) for k in range(shape[2]) if brain[..., k].any()])
    keep = tiles_to_translate(torch.from_numpy(axial), len(axial), axial.shape[1:], (crop, crop))
    return {
        "model": model,
        "volume_shape": list(shape),
        "brain_voxels": int(brain.sum()),
        "crop": crop,
        "planes": planes,
        "precision": run.precision,
        "axial_tiles": int(keep.numel()),
        "axial_tiles_translated": int(keep.sum()),
        "seconds": statistics.median(seconds),
        "seconds_all": seconds,
        "machine": _machine(torch_device, resolve_precision("auto", torch_device)),
    }


def _untrained_native_run(model, crop, planes, data_shape, device, precision):
    """A run of ``model``'s quick networks (untrained) as if trained on ``crop`` crops of
    ``data_shape`` images at native resolution, volume-scaled, translating in the inference
    precision of a run trained in ``precision``."""
    from pathlib import Path

    from mrtranslate.hardware import inference_precision
    from mrtranslate.methods import build_method
    from mrtranslate.runs import LoadedRun, RunRecord

    trained = resolve_precision(precision, device).precision
    cfg = make_config(model, "quick")
    cfg.train.crop, cfg.loss.brain_only, cfg.net.planes = crop, True, planes
    torch.manual_seed(0)
    method = build_method(model, cfg.net, cfg.loss, (crop, crop)).to(device).eval()
    record = RunRecord(model, display_name(model), "quick", data={"intensity_scale": "volume"})
    return LoadedRun(
        Path("."), cfg, method, record, data_shape, data_shape, device,
        inference_precision(trained, device),
    )  # fmt: skip


def _ellipsoid_brain(shape: tuple[int, int, int]):
    """(brain mask, volume): an ellipsoid of :data:`VOLUME_BRAIN_SEMI_AXES` centred in
    ``shape``, filled with textured intensities in [0.5, 0.8], zero outside; in Fortran order,
    as nibabel gives NIfTI data (slicing along the last axis is then the cheap one)."""
    import numpy as np

    grid = np.indices(shape, dtype=np.float32)
    centre = [(n - 1) / 2 for n in shape]
    radius = sum(((g - c) / a) ** 2 for g, c, a in zip(grid, centre, VOLUME_BRAIN_SEMI_AXES))
    brain = radius <= 1
    rng = np.random.default_rng(0)
    volume = np.where(brain, 0.5 + 0.3 * rng.random(shape, dtype=np.float32), 0.0)
    return np.asfortranarray(brain), np.asfortranarray(volume)
