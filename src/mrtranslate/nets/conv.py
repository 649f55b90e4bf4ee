"""A 2-D convolution layer that can compute the same function by one of several algorithms.

:class:`Conv2d` is ``torch.nn.Conv2d`` (same parameters, same state dict) with an
``algorithm`` attribute, chosen per layer by measurement
(:mod:`mrtranslate.training.conv_tuning`):

- ``direct``: PyTorch's own convolution in the input's memory format (the default);
- ``channels_last``: the input is converted to NHWC for this layer only and the result back to
  NCHW. On some CPUs oneDNN has much faster NHWC kernels for some shapes (a 32 -> 1 channel 7x7
  convolution was 2.5x faster in NHWC on an AVX2 kernel set), on others it is slower;
- ``winograd``: Winograd minimal filtering (:mod:`mrtranslate.nets.winograd`), for stride-1,
  zero-padded, ungrouped convolutions with square 2..5 kernels;
- ``nnpack``: NNPACK's AVX2 kernels (:mod:`mrtranslate.nets.nnpack`) for stride-1 convolutions
  on the CPU, where this PyTorch build has NNPACK.

Winograd and NNPACK compute in float32 only: under bf16 autocast the layer computes directly.

All three agree up to floating-point rounding (tested).
"""

from __future__ import annotations

import torch
from torch import nn

from mrtranslate.nets import nnpack
from mrtranslate.nets.winograd import TILE, winograd_conv2d

ALGORITHMS = ("direct", "channels_last", "winograd", "nnpack")
FP32_ONLY = ("winograd", "nnpack")  # under autocast to a lower precision: computed directly


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` with a selectable algorithm (attribute ``algorithm``, default ``direct``).

    Input (N, C, H, W) float; output as ``nn.Conv2d``. The algorithm is not part of the state
    dict: it is a property of the machine, recorded by the trainer in ``run.json``.
    """

    algorithm: str = "direct"

    def candidates(self) -> tuple[str, ...]:
        """The algorithms that can compute this layer."""
        square_stride_1 = (
            self.stride == (1, 1)
            and self.dilation == (1, 1)
            and self.groups == 1
            and self.padding_mode == "zeros"
            and isinstance(self.padding, tuple)
            and self.padding[0] == self.padding[1]
            and self.kernel_size[0] == self.kernel_size[1]
            and self.padding[0] <= self.kernel_size[0] - 1
        )
        out = ["direct", "channels_last"]
        if square_stride_1 and 2 <= self.kernel_size[0] <= TILE - 1:
            out.append("winograd")
        if square_stride_1 and self.weight.device.type == "cpu" and nnpack.available():
            out.append("nnpack")
        return tuple(out)

    def set_algorithm(self, algorithm: str) -> None:
        if algorithm not in self.candidates():
            choices = ", ".join(self.candidates())
            raise ValueError(f"{algorithm!r} cannot compute {self}; choose from {choices}")
        self.algorithm = algorithm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.algorithm == "winograd" and _plain_fp32(x):
            return winograd_conv2d(x, self.weight, self.bias, self.padding[0])
        if self.algorithm == "nnpack" and _plain_fp32(x) and x.device.type == "cpu":
            return nnpack.nnpack_conv2d(x, self.weight, self.bias, self.padding[0])
        if self.algorithm == "channels_last" and x.dim() == 4:
            out = super().forward(x.contiguous(memory_format=torch.channels_last))
            return out.contiguous(memory_format=torch.contiguous_format)
        return super().forward(x)


def _plain_fp32(x: torch.Tensor) -> bool:
    """True when the convolution would run in float32 (no autocast to a lower precision)."""
    return x.dtype == torch.float32 and not torch.is_autocast_enabled(x.device.type)


def set_algorithms(module: nn.Module, choices: dict[str, str]) -> None:
    """Set the algorithm of each :class:`Conv2d` in ``module`` named in ``choices``
    (names as in ``module.named_modules()``); others are left as they are."""
    for name, layer in module.named_modules():
        if isinstance(layer, Conv2d) and name in choices:
            layer.set_algorithm(choices[name])


def conv_layers(module: nn.Module) -> dict[str, Conv2d]:
    """The selectable convolutions of ``module`` by name."""
    return {name: m for name, m in module.named_modules() if isinstance(m, Conv2d)}


__all__ = [
    "ALGORITHMS",
    "FP32_ONLY",
    "UPSAMPLINGS",
    "Conv2d",
    "conv_layers",
    "set_algorithms",
    "upsample2x",
]


UPSAMPLINGS = ("transpose", "resize")  # the choices of upsample2x


def upsample2x(in_channels: int, out_channels: int, upsample: str) -> nn.Module:
    """x2 up-sampling with 3x3 filters: the paper's transposed convolution, or "resize"
    (nearest-neighbour x2, then a 3x3 convolution; the same number of parameters). A 3x3
    stride-2 transposed convolution overlaps its outputs unevenly (1 or 2 contributions per
    pixel, Odena et al. 2016), so two of them in a row print a regular grid of period 4 pixels;
    resizing first spreads each input evenly. Input (B, in_channels, H, W); output
    (B, out_channels, 2H, 2W)."""
    if upsample == "transpose":
        return nn.ConvTranspose2d(
            in_channels, out_channels, 3, stride=2, padding=1, output_padding=1
        )
    if upsample == "resize":
        return nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            Conv2d(in_channels, out_channels, 3, padding=1),
        )
    raise ValueError(f"upsample must be 'transpose' or 'resize', got {upsample!r}")
