"""The CPG kernels (exact integer forms) and the window helpers shared by both CPG paths.

The x-kernel is ``K(i, j) = j / (i^2 + j^2)`` (``i``/``j``: row/column offset from the centre,
0 at the centre), the y-kernel its transpose; ``scale * K`` is integer (``scale`` = 2, 20 and
780 for ``k`` = 3, 5, 7), which is how both paths decide the boundary exactly.
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch
from torch import Tensor

KERNEL_SIZES = (3, 5, 7)


def _kernel_fractions(k: int) -> list[list[Fraction]]:
    r = k // 2
    return [
        [Fraction(j, i * i + j * j) if (i or j) else Fraction(0) for j in range(-r, r + 1)]
        for i in range(-r, r + 1)
    ]


def integer_kernels(k: int) -> tuple[Tensor, int]:
    """``(scale * Kx, scale * Ky)`` as an int64 (k*k, 2) tensor (row-major window), and scale."""
    frac = _kernel_fractions(k)
    scale = math.lcm(*(f.denominator for row in frac for f in row))
    kx = torch.tensor([[int(f * scale) for f in row] for row in frac], dtype=torch.int64)
    return torch.stack([kx.flatten(), kx.t().flatten()], 1), scale


def cpg_kernels(kernel_size: int = 3, dtype: torch.dtype = torch.float32) -> Tensor:
    """The (2, k, k) x- and y-kernels of the CPG loss."""
    check_kernel_size(kernel_size)
    kint, scale = integer_kernels(kernel_size)
    k = kernel_size
    return (kint.t().reshape(2, k, k).to(torch.float64) / scale).to(dtype)


def check_kernel_size(k: int) -> None:
    if k not in KERNEL_SIZES:
        raise ValueError(f"CPG kernel_size must be one of {KERNEL_SIZES}, got {k!r}")


def _slide(x: Tensor, k: int, dim: int, op) -> Tensor:
    """Sliding ``op``-reduction (max/min/or) of width k along ``dim`` (output k - 1 shorter)."""
    m, w = x, 1
    while 2 * w <= k:  # m[j] reduces x[j : j + w]
        n = m.size(dim) - w
        m, w = op(m.narrow(dim, 0, n), m.narrow(dim, w, n)), 2 * w
    if w < k:
        n = m.size(dim) - (k - w)
        m = op(m.narrow(dim, 0, n), m.narrow(dim, k - w, n))
    return m


def _pad_replicate(x: Tensor, r: int) -> Tensor:
    """Replicate-pad the last two dims of an integer or float tensor by r."""
    h, w = x.shape[-2:]
    rows = torch.arange(-r, h + r, device=x.device).clamp_(0, h - 1)
    cols = torch.arange(-r, w + r, device=x.device).clamp_(0, w - 1)
    return x.index_select(-2, rows).index_select(-1, cols)


def window_reduce(x: Tensor, k: int, op) -> Tensor:
    """``op`` over each pixel's replicate-clamped k x k window of a (B, H, W) tensor."""
    xp = _pad_replicate(x, k // 2)
    return _slide(_slide(xp, k, 2, op), k, 1, op)


def dilate(mask: Tensor, r: int) -> Tensor:
    """Pixels within Chebyshev distance r of a True pixel of a (B, H, W) bool mask."""
    return window_reduce(mask, 2 * r + 1, torch.logical_or)


def columns(k: int, scale: int | None = None) -> list[list[float]]:
    """Columns ``j = 1..r`` of the x-kernel, ``c[j-1][r+i] = K(i, j)`` (times ``scale`` if given).

    The x-kernel is odd in j and even in i, so ``K = sum_j c_j (e_j - e_-j)^T``: r separable
    terms; the y-kernel is the transpose and uses the same columns along the other axis.
    """
    frac = _kernel_fractions(k)
    r = k // 2
    mult = 1 if scale is None else scale
    return [[float(frac[i][r + j] * mult) for i in range(k)] for j in range(1, r + 1)]


def invalid_pixels(lab: Tensor, num_classes: int, k: int, exclude: bool) -> Tensor:
    """(B, H, W) bool: pixels that hold no boundary entry.

    Ignored pixels themselves (the reference's ``gt_grad * valid``), and with ``exclude`` every
    pixel whose replicate-clamped k x k window contains an ignored pixel."""
    invalid = lab == num_classes
    return window_reduce(invalid, k, torch.logical_or) if exclude else invalid
