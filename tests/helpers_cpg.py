"""Independent forms of the CPG loss for its tests (float64, dense, plain conv2d), the
published reference implementation's formula, and blocky label maps to test them on."""

from __future__ import annotations

import math
from fractions import Fraction

import torch
import torch.nn.functional as F

from training.losses import cpg_kernels

IGN = 255


def kernel_fractions(k: int) -> list[list[Fraction]]:
    r = k // 2
    return [
        [Fraction(j, i * i + j * j) if (i or j) else Fraction(0) for j in range(-r, r + 1)]
        for i in range(-r, r + 1)
    ]


def dense_grad(t: torch.Tensor, k: int, kern: torch.Tensor) -> torch.Tensor:
    """Depthwise conv of (B, C, H, W) with the (2, k, k) kernels, replicate padding."""
    b, c, h, w = t.shape
    r = k // 2
    wgt = kern.to(t.dtype)[:, None].repeat(c, 1, 1, 1)
    return F.conv2d(F.pad(t, (r, r, r, r), mode="replicate"), wgt, groups=c).view(b, c, 2, h, w)


def onehot(target: torch.Tensor, c: int) -> torch.Tensor:
    lab = target.long()
    lab = lab.masked_fill(lab == IGN, c)
    return F.one_hot(lab, c + 1)[..., :c].permute(0, 3, 1, 2).double()


def exact_boundary(target: torch.Tensor, c: int, k: int, mode: str) -> torch.Tensor:
    """Boundary mask (B, C, 2, H, W): integer-scaled kernels make the conv exact in float64."""
    scale = math.lcm(*(f.denominator for row in kernel_fractions(k) for f in row))
    kint = torch.tensor([[float(f * scale) for f in row] for row in kernel_fractions(k)])
    bnd = dense_grad(onehot(target, c), k, torch.stack([kint, kint.t()])) != 0
    bnd &= (target != IGN)[:, None, None]  # no entry centred on an ignored pixel
    if mode == "exclude":
        r = k // 2
        ign = F.pad((target == IGN)[:, None].double(), (r, r, r, r), mode="replicate")
        bnd &= ~(F.max_pool2d(ign, k, 1)[:, 0, None, None] > 0)
    return bnd


def direct_cpg(logits: torch.Tensor, target: torch.Tensor, k: int, mode: str) -> torch.Tensor:
    """Direct form in float64: softmax, one-hot, conv over all classes, exact boundary."""
    c = logits.shape[1]
    kern = cpg_kernels(k, torch.float64)
    diff = dense_grad(onehot(target, c), k, kern) - dense_grad(
        torch.softmax(logits.double(), 1), k, kern
    )
    bnd = exact_boundary(target, c, k, mode)
    return diff[bnd].square().mean() if bnd.any() else diff.sum() * 0


def blocky(b: int, h: int, w: int, c: int, seed: int, ignore: bool) -> torch.Tensor:
    """Blocky labels: random 3x3..5x5 blocks of classes, a thin line, optional ignored box."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, c, (b, h // 3 + 1, w // 4 + 1), generator=g)
    t = coarse.repeat_interleave(3, 1).repeat_interleave(4, 2)[:, :h, :w].clone()
    t[:, :, w // 2] = torch.randint(0, c, (b, 1), generator=g)
    if ignore:
        t[0, 1:4, 2:7] = IGN
        t[-1, h - 3 :, w - 5 :] = IGN
    return t


# The published kernels, written out as integers over a common scale (K(i, j) = j / (i^2 + j^2)),
# so that the reference's boundary test ``!= 0`` is exact here (see the module docstring).
PUBLISHED_X_KERNELS = {
    3: ([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], 2),
    5: (
        [
            [-5, -4, 0, 4, 5],
            [-8, -10, 0, 10, 8],
            [-10, -20, 0, 20, 10],
            [-8, -10, 0, 10, 8],
            [-5, -4, 0, 4, 5],
        ],
        20,
    ),
    7: (  # 780 * [j / (i^2 + j^2)]
        [
            [-130, -120, -78, 0, 78, 120, 130],
            [-180, -195, -156, 0, 156, 195, 180],
            [-234, -312, -390, 0, 390, 312, 234],
            [-260, -390, -780, 0, 780, 390, 260],
            [-234, -312, -390, 0, 390, 312, 234],
            [-180, -195, -156, 0, 156, 195, 180],
            [-130, -120, -78, 0, 78, 120, 130],
        ],
        780,
    ),
}


def published_reference_cpg(logits: torch.Tensor, label: torch.Tensor, k: int) -> torch.Tensor:
    """The authors' CPG loss with ignore regions, densely in float64 with plain conv2d.

    valid = label != ignore; gt = one_hot(label * valid) * valid; both gradients by a
    replicate-padded conv with the (x, y) kernels; entries where ``gt_grad * valid != 0``;
    mean squared difference.  Only the boundary test uses the integer kernel (exact zero).
    """
    b, c, h, w = logits.shape
    kx_int, scale = PUBLISHED_X_KERNELS[k]
    kx_int = torch.tensor(kx_int, dtype=torch.float64)
    weight_int = torch.stack([kx_int, kx_int.t()])[:, None]  # (2, 1, k, k)

    def sobel(t: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        flat = F.pad(t.reshape(b * c, 1, h, w), (k // 2,) * 4, mode="replicate")
        return F.conv2d(flat, weight).view(b, c, 2, h, w)

    valid = label != IGN
    gt = F.one_hot(label.long() * valid, c).double().permute(0, 3, 1, 2) * valid[:, None]
    gt_grad_int = sobel(gt, weight_int)
    pred_grad = sobel(torch.softmax(logits.double(), 1), weight_int / scale)
    edge_gt_valid = (gt_grad_int * valid[:, None, None]) != 0
    return (gt_grad_int / scale - pred_grad)[edge_gt_valid].square().mean()
