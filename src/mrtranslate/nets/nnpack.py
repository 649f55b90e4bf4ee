"""Stride-1 convolution through NNPACK (Dukhan 2016), the AVX2 library that ships inside PyTorch's
CPU build: fast Winograd F(6x6, 3x3) and FFT kernels, forward only.

PyTorch exposes only NNPACK's forward convolution, so the backward pass is assembled from it:

- input gradient of a stride-1 convolution = a stride-1 convolution of the output gradient with
  the kernel flipped in space and its in/out channels swapped, padded by ``r - 1 - p``
  (the transposed convolution), which NNPACK computes too;
- weight and bias gradients: PyTorch's own ``convolution_backward`` (oneDNN), asked for those
  two only.

The result equals ``F.conv2d`` up to float32 rounding (relative error about 1e-5, tested).
Float32, CPU, stride 1, no dilation, no groups, zero padding ``p <= r - 1``.
"""

from __future__ import annotations

import functools

import torch


@functools.cache
def available() -> bool:
    """True when this PyTorch build carries NNPACK and the CPU supports it. The first call also
    initialises NNPACK, which its convolution needs (it fails without)."""
    try:
        return bool(torch._nnpack_available())
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without NNPACK
        return False


def _forward(x: torch.Tensor, weight: torch.Tensor, bias, padding: int) -> torch.Tensor:
    if not available():
        raise RuntimeError("NNPACK is not available in this PyTorch build or on this CPU")
    return torch._nnpack_spatial_convolution(
        x.contiguous(), weight.contiguous(), bias, [padding, padding], [1, 1]
    )


class _NnpackConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, padding: int):
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        ctx.has_bias = bias is not None
        return _forward(x, weight, bias, padding)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        padding = ctx.padding
        grad_out = grad_out.contiguous()
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            flipped = weight.transpose(0, 1).flip(2, 3)
            grad_x = _forward(grad_out, flipped, None, weight.shape[-1] - 1 - padding)
        if ctx.needs_input_grad[1] or (ctx.has_bias and ctx.needs_input_grad[2]):
            _, grad_w, grad_b = torch.ops.aten.convolution_backward(
                grad_out,
                x,
                weight,
                [weight.shape[0]] if ctx.has_bias else None,
                [1, 1],
                [padding, padding],
                [1, 1],
                False,
                [0, 0],
                1,
                [False, ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]],
            )
        return grad_x, grad_w, grad_b, None


def nnpack_conv2d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int
) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride=1, padding=padding)`` computed by NNPACK.

    Args:
        x: (N, C, H, W) float32 on the CPU.
        weight: (K, C, r, r) float32, with ``padding <= r - 1``.
        bias: (K,) or None.

    Returns:
        (N, K, H + 2p - r + 1, W + 2p - r + 1) float32 (contiguous NCHW).
    """
    return _NnpackConv2d.apply(x, weight, bias, padding)
