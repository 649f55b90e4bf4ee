"""Winograd minimal filtering for stride-1 convolutions (Lavin & Gray 2016, "Fast Algorithms for
Convolutional Neural Networks"): the same function as ``F.conv2d`` with fewer multiplications.

For F(m x m, r x r) an image is cut into overlapping tiles of a = m + r - 1 pixels (stride m);
each tile d and each r x r kernel g are transformed, multiplied element by element and summed over
input channels, and transformed back into an m x m output tile::

    Y = A^T [ sum_c (G g_c G^T) * (B^T d_c B) ] A        (Lavin & Gray 2016, eq. 8)

The sum over channels of the a*a element-wise products is a = batch of a*a matrix products
(K x C) @ (C x tiles), which carry nearly all the work: a*a multiplications per m*m outputs
instead of r*r*m*m, i.e. 4x fewer for F(4x4, 3x3) and F(3x3, 4x4). Gradients follow by autograd
through the same linear maps, so the backward pass gains the same factor.

The transforms come from the Cook-Toom construction on the points 0, 1, -1, 2, -2 and infinity
(``a = 6``): A^T and G are Vandermonde rows (G normalised by the Lagrange denominators) and B^T
is solved exactly from the defining identity, which :func:`winograd_matrices` checks.
Floating-point results differ from direct convolution by rounding only (relative error about
1e-6 in float32, tested). Only float32 is supported: the transforms amplify bf16 rounding.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5)  # the first a - 1 are used, plus infinity
TILE = 6  # a = m + r - 1, default tile
MAX_TILE = len(POINTS) + 1


@functools.cache
def winograd_matrices(
    kernel: int, tile: int = TILE
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A^T, G, B^T) in float64 for F(m, r) with r = ``kernel``, a = ``tile``, m = a - r + 1.

    Shapes: A^T (m, a), G (a, r), B^T (a, a). Raises ValueError if the identity
    ``A^T [(G g) * (B^T d)] = correlate(d, g)`` does not hold to 1e-9.
    """
    r = kernel
    m = tile - r + 1
    if not (3 <= tile <= MAX_TILE and 2 <= r <= tile - 1):
        raise ValueError(f"Winograd tiles of 3..{MAX_TILE} need kernels of 2..tile-1")
    pts = torch.tensor(POINTS[: tile - 1], dtype=torch.float64)
    a_t = torch.zeros(m, tile, dtype=torch.float64)
    g = torch.zeros(tile, r, dtype=torch.float64)
    for j, p in enumerate(pts):
        others = torch.cat([pts[:j], pts[j + 1 :]])
        a_t[:, j] = p ** torch.arange(m, dtype=torch.float64)
        g[j] = p ** torch.arange(r, dtype=torch.float64) / torch.prod(p - others)
    a_t[m - 1, tile - 1] = 1.0
    g[tile - 1, r - 1] = 1.0
    # Solve sum_j A^T[i,j] G[j,k] B^T[j,l] = [l == i + k] for B^T, column by column.
    system = torch.einsum("ij,jk->ikj", a_t, g).reshape(m * r, tile)
    target = torch.zeros(m, r, tile, dtype=torch.float64)
    for i in range(m):
        for k in range(r):
            target[i, k, i + k] = 1.0
    b_t = torch.linalg.lstsq(system, target.reshape(m * r, tile)).solution
    if (system @ b_t - target.reshape(m * r, tile)).abs().max() > 1e-9:
        raise ValueError(f"no exact Winograd transform for kernel {r}")
    return a_t, g, b_t


@functools.cache
def _kron_matrices(kernel: int, tile: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """2-D transforms as matrices on row-major flattened tiles: (m*m, a*a), (a*a, r*r),
    (a*a, a*a)."""
    a_t, g, b_t = winograd_matrices(kernel, tile)
    return tuple(
        torch.kron(t, t).to(device=device, dtype=torch.float32).contiguous() for t in (a_t, g, b_t)
    )


def winograd_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    padding: int,
    tile: int = TILE,
) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride=1, padding=padding)`` by Winograd F(m x m, r x r).

    Args:
        x: (N, C, H, W) float32.
        weight: (K, C, r, r) float32 with 2 <= r <= 5.
        bias: (K,) or None.
        padding: zero padding on every side.
        tile: a = m + r - 1, the input tile side (6: F(4x4, 3x3), F(3x3, 4x4)).

    Returns:
        (N, K, H + 2p - r + 1, W + 2p - r + 1) float32.
    """
    n, c, h, w = x.shape
    k, _, r, _ = weight.shape
    m = tile - r + 1
    out_h, out_w = h + 2 * padding - r + 1, w + 2 * padding - r + 1
    tiles_h, tiles_w = -(-out_h // m), -(-out_w // m)
    a_t, g, b_t = _kron_matrices(r, tile, x.device)
    # zero padding, plus enough on the bottom/right for whole tiles
    padded = F.pad(
        x,
        (padding, m * tiles_w + r - 1 - w - padding, padding, m * tiles_h + r - 1 - h - padding),
    )
    tiles = padded.unfold(2, tile, m).unfold(3, tile, m)  # (N, C, th, tw, 6, 6), a view
    tiles = tiles.permute(4, 5, 1, 0, 2, 3).reshape(tile * tile, -1)  # (36, C*N*th*tw)
    v = (b_t @ tiles).view(tile * tile, c, n * tiles_h * tiles_w)
    u = (g @ weight.reshape(k * c, r * r).T).view(tile * tile, k, c)
    products = torch.bmm(u, v)  # (36, K, N*th*tw)
    out = (a_t @ products.view(tile * tile, -1)).view(m, m, k, n, tiles_h, tiles_w)
    out = out.permute(3, 2, 4, 0, 5, 1).reshape(n, k, m * tiles_h, m * tiles_w)
    out = out[:, :, :out_h, :out_w]
    return out if bias is None else out + bias.view(1, k, 1, 1)
