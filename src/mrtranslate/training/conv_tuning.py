"""Choose, per convolution layer and by measurement on this machine, the fastest algorithm that
computes it (:class:`mrtranslate.nets.conv.Conv2d`): direct, channels-last or Winograd.

Which is fastest depends on the CPU's instruction set and on the layer's shape (on an AVX2 kernel
set, Winograd F(3x3, 4x4) made the PatchGAN's stride-1 256 -> 512 layer 1.5-1.8x faster and an
NHWC 32 -> 1 channel 7x7 convolution was 2.5x faster than NCHW; on AVX-512 the ranking differs),
so nothing is assumed: each distinct (layer configuration, input shape) is timed forward and
backward in the training precision, and an algorithm other than ``direct`` is kept only if it
saves at least ``min_gain`` of the layer's time. Before it is timed, each algorithm's forward
output and both gradients on that real shape are compared with the direct convolution's; one
that differs by more than :data:`TOLERANCE` (relative to direct's largest magnitude) is
rejected and recorded as such. Identical layers (the 18 residual convolutions of
a generator) are measured once.

The shapes are found by running one generator and one discriminator step on a deep copy of the
method (the real method, its image pool and the random number generator are left untouched).

Layers timed one at a time do not show everything: NNPACK runs on its own threads, and when its
convolutions alternate with OpenMP work the two can compete for the cores (see
:mod:`mrtranslate.openmp`). So the per-layer choice is checked on whole steps of the copy: it is
kept only if a whole step is faster than with every layer direct, and the same choice without
NNPACK is tried too; the fastest whole step wins.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from mrtranslate.hardware import timed_calls
from mrtranslate.nets.conv import FP32_ONLY, Conv2d, conv_layers, set_algorithms


@dataclass
class ConvChoice:
    """The algorithm chosen for each selectable convolution and how it was decided."""

    algorithms: dict[str, str] = field(default_factory=dict)
    reason: str = ""
    seconds: float = 0.0  # time spent measuring
    # per measured configuration: {"layer": ..., "shape": [...], "ms": {algorithm: ms}}
    measurements: list[dict] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for algorithm in self.algorithms.values():
            out[algorithm] = out.get(algorithm, 0) + 1
        return out

    def to_dict(self) -> dict:
        return {
            "algorithms": dict(self.algorithms),
            "counts": self.counts(),
            "reason": self.reason,
            "seconds": round(self.seconds, 3),
            "measurements": self.measurements,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ConvChoice:
        return cls(
            algorithms=dict(data.get("algorithms", {})),
            reason=str(data.get("reason", "")),
            seconds=float(data.get("seconds", 0.0)),
            measurements=list(data.get("measurements", [])),
        )

    def apply(self, module: torch.nn.Module) -> None:
        set_algorithms(module, self.algorithms)


def fixed_choice(module: torch.nn.Module, algorithms: dict[str, str], reason: str) -> ConvChoice:
    """``algorithms`` for the layers it names, ``direct`` for the other convolutions of
    ``module``, set on ``module``. Raises ValueError for a name ``module`` does not have."""
    layers = conv_layers(module)
    unknown = sorted(set(algorithms) - set(layers))
    if unknown:
        raise ValueError(f"no convolution layer named {', '.join(unknown)}")
    choice = ConvChoice({name: algorithms.get(name, "direct") for name in layers}, reason=reason)
    choice.apply(module)
    return choice


def record_input_shapes(
    probe, batch: dict[str, torch.Tensor], autocast: Callable
) -> dict[str, list[tuple[int, ...]]]:
    """Input shapes of every :class:`Conv2d` of ``probe`` (a copy of the method) in one generator
    and one discriminator step on ``batch``, with the RNG state restored."""
    shapes: dict[str, list[tuple[int, ...]]] = {}
    hooks = []
    for name, layer in conv_layers(probe).items():

        def hook(_module, inputs, name=name):
            shape = tuple(inputs[0].shape)
            if shape not in shapes.setdefault(name, []):
                shapes[name].append(shape)

        hooks.append(layer.register_forward_pre_hook(hook))
    rng = torch.get_rng_state()
    try:
        with torch.no_grad(), autocast():
            _loss, _logs, fakes = probe.generator_step(batch)
            if probe.discriminator_parameters():
                probe.discriminator_step(batch, fakes)
    finally:
        torch.set_rng_state(rng)
        for h in hooks:
            h.remove()
    return shapes


def _signature(layer: Conv2d, shape: tuple[int, ...]) -> tuple:
    return (
        layer.in_channels,
        layer.out_channels,
        layer.kernel_size,
        layer.stride,
        layer.padding,
        layer.dilation,
        layer.groups,
        layer.bias is not None,
        layer.padding_mode,
        shape,
    )


def time_layer(
    layer: Conv2d,
    shape: tuple[int, ...],
    algorithm: str,
    autocast: Callable,
    repeats: int = 3,
) -> float:
    """Median seconds of forward + backward (input and weight gradients) of ``layer`` (a layer of
    the probe copy: its algorithm is changed) computed by ``algorithm`` on random input of
    ``shape``, after one warm-up call."""
    layer.set_algorithm(algorithm)
    device = layer.weight.device
    x = torch.randn(shape, device=device, requires_grad=True)
    params = [p for p in layer.parameters() if p.requires_grad]

    def run() -> None:
        with autocast():
            out = layer(x)
        torch.autograd.grad(out.float().sum(), [x, *params])

    return statistics.median(timed_calls(run, repeats, warmup=1, device=device))


# Largest error an algorithm may show against the direct convolution, relative to the largest
# magnitude of direct's result (forward output, input and weight gradients): float32 Winograd
# and NNPACK round differently (about 1e-6 to 1e-5 here); bf16 autocast rounds to 8 bits.
TOLERANCE = {"fp32": 1e-3, "bf16": 3e-2}


def _results(layer: Conv2d, x: torch.Tensor, grad_out: torch.Tensor | None, autocast):
    """Forward output and the input, weight (and bias) gradients of ``layer`` on ``x``."""
    x = x.detach().requires_grad_(True)
    params = [p for p in layer.parameters() if p.requires_grad]
    with autocast():
        out = layer(x).float()
    if grad_out is None:
        grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out)
    grads = torch.autograd.grad(out, [x, *params], grad_out)
    return [out.detach(), *grads], grad_out


def errors_against_direct(
    layer: Conv2d, shape: tuple[int, ...], algorithms: list[str], autocast: Callable
) -> dict[str, float]:
    """Largest relative error of each algorithm against the direct convolution on ``layer``'s
    real input shape: forward output and both gradients (input and weights), each relative to
    the largest magnitude of direct's (computed once). Leaves ``layer``'s algorithm changed."""
    device = layer.weight.device
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)
    layer.set_algorithm("direct")
    want, grad_out = _results(layer, x, None, autocast)
    scales = [float(b.abs().max()) or 1.0 for b in want]
    errors = {}
    for algorithm in algorithms:
        layer.set_algorithm(algorithm)
        got, _ = _results(layer, x, grad_out, autocast)
        error = 0.0
        for a, b, scale in zip(got, want, scales, strict=True):
            difference = float((a.float() - b.float()).abs().max())
            error = max(error, difference / scale if difference == difference else float("inf"))
        errors[algorithm] = error
    return errors


def time_whole_steps(
    probe, batch: dict[str, torch.Tensor], autocast: Callable, repeats: int = 2
) -> float:
    """Median seconds of a generator and a discriminator step of ``probe`` (a copy of the
    method: losses, backward passes, no optimiser) after one warm-up; RNG state restored."""
    rng = torch.get_rng_state()

    def run() -> None:
        probe.zero_grad(set_to_none=True)
        with autocast():
            loss_g, _logs, fakes = probe.generator_step(batch)
        loss_g.backward()
        if probe.discriminator_parameters():
            with autocast():
                loss_d, _logs = probe.discriminator_step(batch, fakes)
            loss_d.backward()

    try:
        device = next(probe.parameters()).device
        return statistics.median(timed_calls(run, repeats, warmup=1, device=device))
    finally:
        torch.set_rng_state(rng)


def _fastest(seconds: dict[str, float], baseline: str, min_gain: float) -> str:
    """The fastest entry of ``seconds``, or ``baseline`` unless that saves ``min_gain`` of it."""
    best = min(seconds, key=seconds.get)
    return best if seconds[best] <= (1 - min_gain) * seconds[baseline] else baseline


def _time_each_layer(
    probe, batch: dict[str, torch.Tensor], autocast: Callable, repeats: int, fp32: bool
) -> tuple[dict[str, dict[str, float]], list[dict]]:
    """Per layer: summed seconds of each candidate algorithm over the layer's input shapes
    (infinite where it disagrees with direct), and the measurements as recorded."""
    shapes = record_input_shapes(probe, batch, autocast)
    cache: dict[tuple, dict[str, float]] = {}
    measurements = []
    totals: dict[str, dict[str, float]] = {}  # per layer: summed seconds per algorithm
    tolerance = TOLERANCE["fp32" if fp32 else "bf16"]
    for name, layer in conv_layers(probe).items():
        candidates = [a for a in layer.candidates() if fp32 or a not in FP32_ONLY]
        totals[name] = dict.fromkeys(candidates, 0.0)
        for shape in shapes.get(name, []):
            key = _signature(layer, shape)
            if key not in cache:
                others = [a for a in candidates if a != "direct"]
                errors = errors_against_direct(layer, shape, others, autocast)
                # an algorithm that disagrees with direct is never chosen, however fast
                cache[key] = {
                    algorithm: time_layer(layer, shape, algorithm, autocast, repeats)
                    if errors.get(algorithm, 0.0) <= tolerance
                    else float("inf")
                    for algorithm in candidates
                }
                measurements.append(_measurement(name, shape, cache[key], errors, tolerance))
            for algorithm, seconds in cache[key].items():
                totals[name][algorithm] += seconds
    return totals, measurements


def _measurement(name, shape, seconds: dict, errors: dict, tolerance: float) -> dict:
    return {
        "layer": name,
        "shape": list(shape),
        "ms": {a: round(1e3 * s, 3) if s < float("inf") else None for a, s in seconds.items()},
        "max_error": {a: float(f"{e:.2e}") for a, e in errors.items()},
        "rejected": sorted(a for a, e in errors.items() if e > tolerance),
    }


def _check_on_whole_steps(
    probe, batch, autocast, choice: dict, totals: dict, min_gain: float, measurements: list
) -> dict[str, str]:
    """The per-layer ``choice`` if whole training steps confirm it (against all direct, and
    without NNPACK when it is used), else the faster of those; recorded in ``measurements``."""
    sets = {"per-layer choice": choice, "all direct": dict.fromkeys(choice, "direct")}
    if "nnpack" in choice.values():
        sets["without NNPACK"] = {
            name: _fastest({a: s for a, s in t.items() if a != "nnpack"}, "direct", min_gain)
            for name, t in totals.items()
        }
    whole = {}
    for label, algorithms in sets.items():
        set_algorithms(probe, algorithms)
        whole[label] = time_whole_steps(probe, batch, autocast)
    chosen = _fastest(whole, "all direct", min_gain / 2)
    rounded = {k: round(v, 4) for k, v in whole.items()}
    measurements.append({"whole_step_seconds": {"chosen": chosen, **rounded}})
    return sets[chosen]


def tune_convolutions(
    method,
    batch: dict[str, torch.Tensor],
    autocast: Callable,
    min_gain: float = 0.1,
    repeats: int = 3,
    check_steps: bool = True,
    fp32: bool = True,
) -> ConvChoice:
    """Measure and set the fastest algorithm of every :class:`Conv2d` in ``method``.

    Args:
        method: the method to tune (its layers' ``algorithm`` attributes are set).
        batch: a training batch of the real shapes ({"t1w", "t2w"}: (B, 1, H, W)).
        autocast: a context-manager factory giving the training precision.
        min_gain: fraction of a layer's direct time an algorithm must save to be chosen (on
            whole steps: half of it).
        repeats: timed calls per (configuration, algorithm).
        check_steps: confirm the choice on whole steps (see the module doc).
        fp32: training runs in float32; otherwise the float32-only algorithms (Winograd,
            NNPACK), which would compute directly, are not considered.
    """
    start = time.perf_counter()
    probe = copy.deepcopy(method)  # all measuring happens on this copy
    totals, measurements = _time_each_layer(probe, batch, autocast, repeats, fp32)
    choice = {name: _fastest(t, "direct", min_gain) for name, t in totals.items()}
    if check_steps and any(a != "direct" for a in choice.values()):
        choice = _check_on_whole_steps(
            probe, batch, autocast, choice, totals, min_gain, measurements
        )
    result = ConvChoice(
        choice,
        reason=f"measured forward+backward per layer shape; kept an algorithm other than direct "
        f"where it saved >= {min_gain:.0%}" + (", checked on whole steps" if check_steps else ""),
        seconds=time.perf_counter() - start,
        measurements=measurements,
    )
    result.apply(method)
    return result
