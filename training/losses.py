"""Losses: the CPG loss (arXiv 2404.06704) and the combined segmentation objective.

CPG (Convolution-based Probability Gradient) compares spatial gradients of the softmax
probabilities ``P`` with those of the one-hot ground truth ``G``.  Both are convolved per
class with an x-kernel ``K(i, j) = j / (i^2 + j^2)`` (``i``/``j``: row/column offset from the
centre, 0 at the centre; ``k = 3`` gives the Sobel kernel / 2) and its transpose, with
replicate padding.  The loss is the mean of ``(grad_G - grad_P)^2`` over the *boundary*
entries ``(b, c, direction, y, x)``, those where ``grad_G`` is non-zero.

Differences from the authors' reference code (all deliberate):

* **Exact boundary.**  The reference tests ``grad_G != 0`` in float32.  The 5x5 and 7x7
  kernels are not exact in binary floating point, so rounding noise (``|g| ~ 1e-7``) where the
  exact gradient is zero also counts as boundary (on the 2x19x37x53 blocky label map of
  ``tests/test_losses.py::test_float32_reference_boundary_counts_rounding_noise``: 30,445
  entries at ``k = 5`` where 28,047 are real; 45,545 vs 43,318 at ``k = 7``).  Here the boundary
  is decided in integer arithmetic on the labels (``scale * K`` is integer, ``scale`` = 2, 20
  and 780 for ``k`` = 3, 5, 7).  For ``k = 3`` both definitions agree.
* **Ignored pixels.**  The reference gives an ignored pixel an all-zero one-hot, which
  creates false edges around every ignored region.  The default ``ignore_mode="exclude"``
  leaves out every entry whose k x k window (under replicate padding) contains an ignored
  pixel; ``ignore_mode="reference"`` reproduces the reference for comparisons: zero one-hot
  in ``G``, ``P`` unchanged, and no entry centred on an ignored pixel (the reference's
  ``(grad_G * valid) != 0``), so only the false edges around ignored regions remain.
* **No boundary entry** in the batch gives 0 (with a valid graph), not NaN.

Implementation: ``grad_G`` is non-zero only on a thin band around label edges and only for
the classes present there.  The image is cut into small tiles; a *job* is a (tile, class)
pair whose class occurs in the tile's (k // 2)-halo patch.  For each job ``grad_G`` is
computed exactly from the integer labels, jobs without a boundary entry are dropped, and
``grad_P`` is computed for the remaining jobs only, from the gathered halo patch of ``P``
(log-sum-exp evaluated only at pixels within k // 2 of a boundary entry).  Both use the
kernels' separable form (``r = k // 2`` rank-one terms).  A custom autograd function does
this in chunks (recomputing them in backward unless they are small), so no B x C x H x W
intermediate (softmax, one-hot, convolution output, mask) is ever built.  This *sparse* path
suits the CPU; its op count grows with the number of chunks and it reads sizes back to the
host (``nonzero``, ``tolist``), which on a GPU means many kernel launches and stream syncs.
The *dense* path (``path="dense"``, chosen by ``path="auto"`` on CUDA when its memory fits)
convolves whole (B, C, H, W) tensors instead: a fixed number of ops and no host sync besides
the label check, for about 9.5x the logits' size in extra memory.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

__all__ = ["CPGLoss", "SegmentationObjective", "cpg_kernels"]

KERNEL_SIZES = (3, 5, 7)
IGNORE_MODES = ("exclude", "reference")
PATHS = ("auto", "sparse", "dense")
_CHUNK = 1 << 17  # elements per chunk of gathered patches / columns (more for large logits)
_KEEP = 1 / 16  # keep forward chunks for backward if they total at most this x logits' size


def _chunk_size(x: Tensor) -> int:
    """Elements per chunk: at least _CHUNK, and under 1/128 of the logits' size."""
    return max(_CHUNK, x.numel() // 128)


def _kernel_fractions(k: int) -> list[list[Fraction]]:
    r = k // 2
    return [
        [Fraction(j, i * i + j * j) if (i or j) else Fraction(0) for j in range(-r, r + 1)]
        for i in range(-r, r + 1)
    ]


def _integer_kernels(k: int) -> tuple[Tensor, int]:
    """``(scale * Kx, scale * Ky)`` as an int64 (k*k, 2) tensor (row-major window), and scale."""
    frac = _kernel_fractions(k)
    scale = math.lcm(*(f.denominator for row in frac for f in row))
    kx = torch.tensor([[int(f * scale) for f in row] for row in frac], dtype=torch.int64)
    return torch.stack([kx.flatten(), kx.t().flatten()], 1), scale


def cpg_kernels(kernel_size: int = 3, dtype: torch.dtype = torch.float32) -> Tensor:
    """The (2, k, k) x- and y-kernels of the CPG loss."""
    _check_kernel_size(kernel_size)
    kint, scale = _integer_kernels(kernel_size)
    k = kernel_size
    return (kint.t().reshape(2, k, k).to(torch.float64) / scale).to(dtype)


def _check_kernel_size(k: int) -> None:
    if k not in KERNEL_SIZES:
        raise ValueError(f"CPG kernel_size must be one of {KERNEL_SIZES}, got {k!r}")


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


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


def _window_reduce(x: Tensor, k: int, op) -> Tensor:
    """``op`` over each pixel's replicate-clamped k x k window of a (B, H, W) tensor."""
    xp = _pad_replicate(x, k // 2)
    return _slide(_slide(xp, k, 2, op), k, 1, op)


def _dilate(mask: Tensor, r: int) -> Tensor:
    """Pixels within Chebyshev distance r of a True pixel of a (B, H, W) bool mask."""
    return _window_reduce(mask, 2 * r + 1, torch.logical_or)


def _columns(k: int, scale: int | None = None) -> list[list[float]]:
    """Columns ``j = 1..r`` of the x-kernel, ``c[j-1][r+i] = K(i, j)`` (times ``scale`` if given).

    The x-kernel is odd in j and even in i, so ``K = sum_j c_j (e_j - e_-j)^T``: r separable
    terms; the y-kernel is the transpose and uses the same columns along the other axis.
    """
    frac = _kernel_fractions(k)
    r = k // 2
    mult = 1 if scale is None else scale
    return [[float(frac[i][r + j] * mult) for i in range(k)] for j in range(1, r + 1)]


def _sep_corr(p: Tensor, cols: list[list[float]], t: int) -> Tensor:
    """Valid cross-correlation of patches (J, S, S) with the x/y kernels -> (J, 2, T, T)."""
    r = len(cols)
    out = p.new_zeros(p.shape[0], 2, t, t)
    for d in range(2):
        acc = out[:, d]
        for j, c in enumerate(cols, 1):
            if d == 0:  # differences at horizontal distance j, then a vertical filter
                diff = p[:, :, r + j : r + j + t] - p[:, :, r - j : r - j + t]
                sl = lambda a, b, diff=diff: diff[:, a:b]  # noqa: E731
            else:
                diff = p[:, r + j : r + j + t, :] - p[:, r - j : r - j + t, :]
                sl = lambda a, b, diff=diff: diff[:, :, a:b]  # noqa: E731
            acc.add_(sl(r, r + t), alpha=c[r])
            for i in range(1, r + 1):
                acc.add_(sl(r + i, r + i + t), alpha=c[r + i])
                acc.add_(sl(r - i, r - i + t), alpha=c[r + i])
    return out


def _sep_corr_adjoint(g: Tensor, cols: list[list[float]], t: int) -> Tensor:
    """Adjoint of :func:`_sep_corr`: (J, 2, T, T) -> (J, S, S)."""
    r = len(cols)
    s = t + 2 * r
    out = g.new_zeros(g.shape[0], s, s)
    for d in range(2):
        gd = g[:, d]
        for j, c in enumerate(cols, 1):
            if d == 0:
                tmp = g.new_zeros(g.shape[0], s, t)
                tmp[:, r : r + t].add_(gd, alpha=c[r])
                for i in range(1, r + 1):
                    tmp[:, r + i : r + i + t].add_(gd, alpha=c[r + i])
                    tmp[:, r - i : r - i + t].add_(gd, alpha=c[r + i])
                out[:, :, r + j : r + j + t] += tmp
                out[:, :, r - j : r - j + t] -= tmp
            else:
                tmp = g.new_zeros(g.shape[0], t, s)
                tmp[:, :, r : r + t].add_(gd, alpha=c[r])
                for i in range(1, r + 1):
                    tmp[:, :, r + i : r + i + t].add_(gd, alpha=c[r + i])
                    tmp[:, :, r - i : r - i + t].add_(gd, alpha=c[r + i])
                out[:, r + j : r + j + t, :] += tmp
                out[:, r - j : r - j + t, :] -= tmp
    return out


class _Tiling:
    """Square tiles of size T over a (B, H, W) image; a tile's patch adds a clamped r-halo."""

    def __init__(self, b: int, h: int, w: int, t: int, r: int, device: torch.device) -> None:
        self.b, self.h, self.w, self.t, self.r = b, h, w, t, r
        self.s = t + 2 * r
        self.ny, self.nx = -(-h // t), -(-w // t)
        halo = torch.arange(self.s, device=device) - r
        self.rows = (torch.arange(self.ny, device=device)[:, None] * t + halo).clamp_(0, h - 1)
        self.cols = (torch.arange(self.nx, device=device)[:, None] * t + halo).clamp_(0, w - 1)

    @property
    def count(self) -> int:
        return self.b * self.ny * self.nx

    def patches(self, img: Tensor) -> Tensor:
        """(B, H, W) -> (B, ny, nx, S, S) halo patches (replicate-clamped), a strided view."""
        rows = img.index_select(
            1, torch.arange(-self.r, self.ny * self.t + self.r).clamp_(0, self.h - 1).to(img.device)
        )
        right = self.nx * self.t + self.r - self.w
        p = torch.cat(
            [rows[:, :, :1].expand(-1, -1, self.r), rows, rows[:, :, -1:].expand(-1, -1, right)], 2
        )
        return p.unfold(1, self.s, self.t).unfold(2, self.s, self.t)

    def split(self, tile: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Flat tile ids -> (image, tile row, tile column)."""
        per = self.ny * self.nx
        return tile // per, tile % per // self.nx, tile % self.nx

    def tiles(self, img: Tensor, fill: bool) -> Tensor:
        """(B, H, W) bool -> (tiles, T, T), positions outside the image set to ``fill``."""
        t = self.t
        pad = (0, self.nx * t - self.w, 0, self.ny * t - self.h)
        p = F.pad(img.to(torch.uint8), pad, value=int(fill)).bool()
        return p.view(self.b, self.ny, t, self.nx, t).transpose(2, 3).reshape(-1, t, t)

    def untile(self, tiles: Tensor) -> Tensor:
        """(tiles, T, T) -> (B, H, W)."""
        t = self.t
        img = tiles.view(self.b, self.ny, self.nx, t, t).transpose(2, 3)
        return img.reshape(self.b, self.ny * t, self.nx * t)[:, : self.h, : self.w]

    def pixel_index(self, tile: Tensor, dtype: torch.dtype) -> Tensor:
        """Flat pixel index ``b*H*W + y*W + x`` (n, S, S) of the patches of tiles ``tile``."""
        per = self.ny * self.nx
        b = torch.div(tile, per, rounding_mode="floor")
        rem = tile - b * per
        ty = torch.div(rem, self.nx, rounding_mode="floor")
        rows = ((self.rows[ty] + (b * self.h)[:, None]) * self.w).to(dtype)
        return rows[:, :, None] + self.cols[rem - ty * self.nx].to(dtype)[:, None, :]


class _Jobs:
    """Boundary work as (tile, class) jobs with the exact scaled grad_G of each job's tile."""

    def __init__(
        self, tiling: _Tiling, tile: Tensor, cls: Tensor, gint: Tensor, scale: int
    ) -> None:
        self.tiling, self.tile, self.cls, self.gint, self.scale = tiling, tile, cls, gint, scale

    def pixel_mask(self) -> Tensor:
        """(B, H, W) bool: pixels holding at least one boundary entry."""
        tl = self.tiling
        m = torch.zeros(tl.count, tl.t, tl.t, dtype=torch.uint8, device=self.gint.device)
        m.index_add_(0, self.tile, (self.gint != 0).any(1).to(torch.uint8))
        return tl.untile(m) > 0


def _tile_size(k: int) -> int:
    return 16 if k == 7 else 8


def _index_dtype(n: int) -> torch.dtype:
    """int32 indices (faster gathers) where they can address all ``n`` elements."""
    return torch.int32 if n < 2**31 else torch.int64


def _zeros_like(x: Tensor) -> Tensor:
    """Zeros like ``x``; on the CPU from calloc-backed numpy memory: no memset pass, and pages
    the sparse gradient never touches stay unmapped."""
    if x.device.type != "cpu":
        return torch.zeros_like(x)
    return torch.from_numpy(
        np.zeros(x.shape, dtype=np.float64 if x.dtype == torch.float64 else np.float32)
    )


def _invalid_pixels(lab: Tensor, num_classes: int, k: int, exclude: bool) -> Tensor:
    """(B, H, W) bool: pixels that hold no boundary entry.

    Ignored pixels themselves (the reference's ``gt_grad * valid``), and with ``exclude`` every
    pixel whose replicate-clamped k x k window contains an ignored pixel."""
    invalid = lab == num_classes
    return _window_reduce(invalid, k, torch.logical_or) if exclude else invalid


def _label_jobs(lab: Tensor, num_classes: int, k: int, exclude: bool) -> _Jobs:
    """Exact grad_G from integer labels ``lab`` (B, H, W) (ignored = ``num_classes``)."""
    b, h, w = lab.shape
    r = k // 2
    tl = _Tiling(b, h, w, _tile_size(k), r, lab.device)
    _, scale = _integer_kernels(k)
    cols = _columns(k, scale)
    invalid = _invalid_pixels(lab, num_classes, k, exclude)
    invalid = tl.tiles(invalid, fill=True)
    patches = tl.patches(lab)
    tiles = (patches.amax((3, 4)) != patches.amin((3, 4))).flatten().nonzero().squeeze(1)
    out_tile, out_cls, out_g = [], [], []
    per = max(1, _CHUNK // (tl.s * tl.s))
    for sl in _chunks(tiles.numel(), per):
        tile = tiles[sl]
        pt = patches[tl.split(tile)]
        seen = torch.zeros(tile.numel(), num_classes + 1, dtype=torch.uint8, device=lab.device)
        seen.scatter_(1, pt.flatten(1).long(), 1)
        jt, jc = seen[:, :num_classes].nonzero().unbind(1)  # sorted by tile, then class
        # Without ignored pixels the one-hots of a patch sum to 1, whose gradient is 0: the
        # last class of such a tile gets minus the sum of the others (half the work at edges).
        derived = torch.ones_like(jt, dtype=torch.bool)
        derived[:-1] = jt[1:] != jt[:-1]
        derived &= seen[jt, num_classes] == 0
        comp = (~derived).nonzero().squeeze(1)
        g_comp = [
            _sep_corr((pt[jt[i]] == jc[i, None, None]).to(torch.float32), cols, tl.t)
            for i in (comp[c] for c in _chunks(comp.numel(), per))
        ]  # integer sums: exact in float32
        g = torch.empty(jt.numel(), 2, tl.t, tl.t, device=lab.device)
        if g_comp:
            g[comp] = g_comp = torch.cat(g_comp)
            sums = torch.zeros(tile.numel(), 2, tl.t, tl.t, device=lab.device)
            g[derived] = sums.index_add_(0, jt[comp], g_comp).neg_()[jt[derived]]
        else:
            g.zero_()
        g.masked_fill_(invalid[tile[jt]][:, None], 0)
        keep = g.flatten(1).any(1)
        out_tile.append(tile[jt[keep]])
        out_cls.append(jc[keep])
        out_g.append(g[keep].to(torch.int16))
    if not out_tile:
        empty = torch.zeros(0, dtype=torch.int64, device=lab.device)
        g = torch.zeros(0, 2, tl.t, tl.t, dtype=torch.int16, device=lab.device)
        return _Jobs(tl, empty, empty, g, scale)
    return _Jobs(tl, torch.cat(out_tile), torch.cat(out_cls), torch.cat(out_g), scale)


def _image_chunks(pix: Tensor, b: int, hw: int, size: int):
    """Yield (image, in-image pixel indices) chunks of sorted flat pixel indices ``pix``."""
    bounds = torch.searchsorted(pix, torch.arange(b + 1, device=pix.device) * hw).tolist()
    for i in range(b):
        idx = pix[bounds[i] : bounds[i + 1]] - i * hw
        for sl in _chunks(idx.numel(), size):
            yield i, idx[sl]


def _lse_map(x: Tensor, pix: Tensor) -> Tensor:
    """Dense (B*H*W,) map: logsumexp over classes at ``pix`` (sorted), +inf elsewhere."""
    b, c, h, w = x.shape
    lse = x.new_full((b, h * w), math.inf)
    xv = x.view(b, c, h * w)
    for i, j in _image_chunks(pix, b, h * w, max(1, _chunk_size(x) // c)):
        lse[i, j] = torch.logsumexp(xv[i].index_select(1, j), 0)
    return lse.view(-1)


class _CPGFunction(torch.autograd.Function):
    """CPG loss value from logits and label jobs; works in chunks, recomputes in backward.

    First-order only: its backward is not itself differentiable (`once_differentiable`)."""

    @staticmethod
    def forward(ctx, x: Tensor, jobs: _Jobs, k: int) -> Tensor:
        count = int((jobs.gint != 0).sum())
        ctx.jobs, ctx.k, ctx.count = jobs, k, count
        if count == 0:
            ctx.save_for_backward(x, None, None)
            return x.new_zeros(())
        dpix = _dilate(jobs.pixel_mask(), k // 2).flatten().nonzero().squeeze(1)
        dpix = dpix.to(_index_dtype(x.numel()))
        lse = _lse_map(x, dpix)
        # keep the chunks for backward when they are small next to the logits, else recompute
        s2 = jobs.tiling.s**2
        keep = jobs.tile.numel() * (3 * s2 + 2 * jobs.tiling.t**2) <= x.numel() * _KEEP
        ctx.kept = []
        total = x.new_zeros(())
        for chunk in _CPGFunction._chunks(x, jobs, lse, k):
            total += chunk[3].square().sum()
            if keep:
                ctx.kept.append(chunk)
            del chunk
        ctx.save_for_backward(x, lse, dpix)
        return total / count

    @staticmethod
    def _chunks(x: Tensor, jobs: _Jobs, lse: Tensor, k: int):
        """Yield (P patches, logit index, pixel index, masked grad_G - grad_P) per job chunk."""
        c, h, w = x.shape[1:]
        tl = jobs.tiling
        cols = _columns(k)
        xf = x.view(-1)
        itype = _index_dtype(x.numel())
        per_img = tl.ny * tl.nx
        for sl in _chunks(jobs.tile.numel(), max(1, _chunk_size(x) // (tl.s * tl.s))):
            tile, gint = jobs.tile[sl], jobs.gint[sl]
            pidx = tl.pixel_index(tile, itype).flatten(1)
            img = torch.div(tile, per_img, rounding_mode="floor")
            xidx = pidx + ((img * (c - 1) + jobs.cls[sl]) * (h * w)).to(itype)[:, None]
            p = xf.index_select(0, xidx.view(-1)).sub_(lse.index_select(0, pidx.view(-1)))
            p = p.exp_().view(-1, tl.s, tl.s)
            diff = gint.to(x.dtype).div_(jobs.scale).sub_(_sep_corr(p, cols, tl.t))
            yield p, xidx, pidx, diff.masked_fill_(gint == 0, 0)
            del p, xidx, pidx, diff  # release this chunk before building the next

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor, None, None]:
        x, lse, dpix = ctx.saved_tensors
        grad = _zeros_like(x)
        if ctx.count == 0:
            return grad, None, None
        b, c, h, w = x.shape
        gf = grad.view(-1)
        s = x.new_zeros(b * h * w)  # sum over classes of dL/dP * P, per pixel
        cols = _columns(ctx.k)
        coef = -2 * grad_out / ctx.count
        chunks = ctx.kept or _CPGFunction._chunks(x, ctx.jobs, lse, ctx.k)
        for p, xidx, pidx, diff in chunks:
            ap = _sep_corr_adjoint(diff * coef, cols, ctx.jobs.tiling.t).mul_(p).view(-1)
            gf.index_add_(0, xidx.view(-1), ap)
            s.index_add_(0, pidx.view(-1), ap)
            del p, xidx, pidx, diff, ap
        # softmax Jacobian: dL/dz_c = P_c * (dL/dP_c - s); the dL/dP_c * P_c part is done above
        # (flat index_add_: much faster than index_add_ along dim 1 of (C, H*W))
        xv = x.view(b, c, h * w)
        lse, s = lse.view(b, -1), s.view(b, -1)
        rows = torch.arange(c, device=x.device, dtype=dpix.dtype)[:, None] * (h * w)
        for i, j in _image_chunks(dpix, b, h * w, max(1, _chunk_size(x) // c)):
            p = xv[i].index_select(1, j).sub_(lse[i, j]).exp_().mul_(s[i, j].neg_())
            gf.index_add_(0, (rows + j).view(-1).add_(i * c * h * w), p.view(-1))
            del p
        return grad, None, None


@functools.lru_cache(maxsize=32)
def _dense_weight(k: int, c: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, int]:
    """Depthwise (2C, 1, k, k) integer kernels and their scale, cached per device: a copy to
    the GPU on every call would wait for the stream."""
    kint, scale = _integer_kernels(k)
    weight = kint.t().reshape(2, 1, k, k).to(device=device, dtype=dtype).repeat(c, 1, 1, 1)
    return weight, scale


def _dense_cpg(x: Tensor, lab: Tensor, k: int, exclude: bool) -> Tensor:
    """The CPG loss over dense (B, C, 2, H, W) tensors: a fixed number of ops, no host sync.

    ``grad_G`` is a depthwise conv of the one-hot labels with the integer kernels (integer
    sums: exact in float32, so the boundary equals the sparse path's), ``grad_P`` one of the
    softmax with the kernels; autograd gives the gradient.  Used on GPUs (see ``path``)."""
    b, c, h, w = x.shape
    r = k // 2
    weight, scale = _dense_weight(k, c, x.dtype, x.device)
    with torch.no_grad():
        onehot = x.new_zeros(b, c + 1, h, w).scatter_(1, lab[:, None].long(), 1)[:, :c]
        gint = F.conv2d(F.pad(onehot, (r, r, r, r), mode="replicate"), weight, groups=c)
        del onehot
        gint = gint.view(b, c, 2, h, w)
        invalid = _invalid_pixels(lab, c, k, exclude)
        mask = (gint != 0).logical_and_(~invalid[:, None, None])
        count = mask.sum()
        g = gint.div_(scale)
    grad_p = F.conv2d(
        F.pad(torch.softmax(x, 1), (r, r, r, r), mode="replicate"), weight / scale, groups=c
    )
    diff = torch.where(mask, g - grad_p.view(b, c, 2, h, w), 0)
    return diff.square().sum() / count.clamp(min=1)  # no boundary entry: 0 (a valid graph)


# Extra memory of the dense path in units of the logits' size: one forward + backward peaked
# at 9.5x beside the logits' gradient (bench/loss.py --memory-case dense, C = 19 and 150, CPU);
# 13 adds the gradient itself and room for the GPU allocator's rounding.
_DENSE_BYTES_FACTOR = 13
_DENSE_MEMORY_SHARE = 0.5  # "auto": dense if it needs at most this share of free GPU memory


def _cuda_available_bytes(device: torch.device) -> int:
    """Free device memory plus what PyTorch's caching allocator holds unused."""
    free, _total = torch.cuda.mem_get_info(device)
    return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)


def _resolve_path(path: str, device: torch.device, numel: int, itemsize: int) -> str:
    """The path to run, "sparse" or "dense", for ``path`` ("auto": dense on CUDA if it fits)."""
    if path != "auto":
        return path
    if device.type != "cuda":
        return "sparse"
    need = _DENSE_BYTES_FACTOR * numel * itemsize
    fits = need <= _DENSE_MEMORY_SHARE * _cuda_available_bytes(device)
    return "dense" if fits else "sparse"


def _prepare_target(target: Tensor, num_classes: int, ignore_index: int) -> Tensor:
    """Validate labels; return int16 (or int32) labels, ignored pixels mapped to ``num_classes``."""
    if target.dtype.is_floating_point or target.dtype.is_complex or target.dtype == torch.bool:
        raise ValueError(f"target must hold integer class labels, got dtype {target.dtype}")
    ign = target == ignore_index
    bad = ~ign & ((target < 0) | (target >= num_classes))
    if bad.any():
        vals = torch.unique(target[bad])[:5].tolist()
        raise ValueError(
            f"target has label values {vals} outside [0, {num_classes - 1}] that are not "
            f"the ignore index {ignore_index}"
        )
    dtype = torch.int16 if num_classes < 2**15 - 1 else torch.int32
    return target.to(dtype).masked_fill(ign, num_classes)


def _check_inputs(logits: Tensor, target: Tensor) -> None:
    if logits.dim() != 4:
        raise ValueError(f"logits must be 4-D (B, C, H, W), got shape {tuple(logits.shape)}")
    if target.dim() != 3:
        raise ValueError(f"target must be 3-D (B, H, W), got shape {tuple(target.shape)}")
    if logits.shape[0] != target.shape[0]:
        raise ValueError(
            f"batch size mismatch: logits {tuple(logits.shape)} vs target {tuple(target.shape)}"
        )
    if logits.device != target.device:
        raise ValueError(f"logits are on {logits.device} but the target is on {target.device}")


def _resize_to(logits: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinearly upsample logits to the label size (align_corners=False)."""
    h, w = logits.shape[-2:]
    if (h, w) == tuple(size):
        return logits
    if h > size[0] or w > size[1]:
        raise ValueError(
            f"logits spatial size {(h, w)} is larger than the target's {tuple(size)}; "
            "only upsampling to the label resolution is supported"
        )
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class CPGLoss(nn.Module):
    """Convolution-based Probability Gradient loss: ``CPGLoss(k)(logits, target) -> scalar``."""

    def __init__(
        self,
        kernel_size: int = 3,
        ignore_index: int = 255,
        ignore_mode: str = "exclude",
        path: str = "auto",
    ) -> None:
        """``path``: "sparse" (boundary tiles only, least memory; tuned for the CPU), "dense"
        (whole-tensor convs: a fixed number of kernels and no host sync; for GPUs) or "auto"
        (dense on CUDA when its estimated memory fits, else sparse).  Both give the same
        value and gradient."""
        super().__init__()
        _check_kernel_size(kernel_size)
        if ignore_mode not in IGNORE_MODES:
            raise ValueError(f"ignore_mode must be one of {IGNORE_MODES}, got {ignore_mode!r}")
        if path not in PATHS:
            raise ValueError(f"CPG path must be one of {PATHS}, got {path!r}")
        self.kernel_size = kernel_size
        self.ignore_index = ignore_index
        self.ignore_mode = ignore_mode
        self.path = path

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, ignore_index={self.ignore_index}, "
            f"ignore_mode={self.ignore_mode!r}, path={self.path!r}"
        )

    def _jobs(self, target: Tensor, num_classes: int) -> _Jobs:
        lab = _prepare_target(target, num_classes, self.ignore_index)
        return _label_jobs(lab, num_classes, self.kernel_size, self.ignore_mode == "exclude")

    @torch.no_grad()
    def boundary_entries(self, target: Tensor, num_classes: int) -> Tensor:
        """Boundary entries as a sorted (N, 5) int64 tensor of ``(b, c, direction, y, x)`` rows.

        ``direction`` is 0 for the x-kernel and 1 for the y-kernel.
        """
        if target.dim() != 3:
            raise ValueError(f"target must be 3-D (B, H, W), got shape {tuple(target.shape)}")
        jobs = self._jobs(target, num_classes)
        tl = jobs.tiling
        j, d, ly, lx = (jobs.gint != 0).nonzero().unbind(1)
        tile = jobs.tile[j]
        per = tl.ny * tl.nx
        b, ty, tx = tile // per, tile % per // tl.nx, tile % tl.nx
        out = torch.stack([b, jobs.cls[j], d, ty * tl.t + ly, tx * tl.t + lx], 1)
        h, w = target.shape[-2:]
        key = out[:, 4] + w * (out[:, 3] + h * (out[:, 2] + 2 * (out[:, 1] + num_classes * b)))
        return out[key.argsort()]

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """The CPG loss (scalar, float32 or float64) of `logits` (B, C, h, w) against
        `target` (B, H, W) class ids; logits are upsampled to (H, W) if smaller."""
        _check_inputs(logits, target)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            x = logits if logits.dtype == torch.float64 else logits.float()
            x = _resize_to(x, target.shape[-2:]).contiguous()
            if _resolve_path(self.path, x.device, x.numel(), x.element_size()) == "dense":
                lab = _prepare_target(target, x.shape[1], self.ignore_index)
                return _dense_cpg(x, lab, self.kernel_size, self.ignore_mode == "exclude")
            jobs = self._jobs(target, x.shape[1])
            return _CPGFunction.apply(x, jobs, self.kernel_size)


class SegmentationObjective(nn.Module):
    """CE (+ ``aux_weight`` * aux CE) + ``cpg_lambda`` * CPG; ``cpg_lambda == 0`` is pure CE."""

    def __init__(
        self,
        cpg_lambda: float = 0.0,
        kernel_size: int = 3,
        ignore_index: int = 255,
        aux_weight: float = 0.4,
        ignore_mode: str = "exclude",
        cpg_path: str = "auto",
    ) -> None:
        super().__init__()
        if cpg_lambda < 0:
            raise ValueError(f"cpg_lambda must be >= 0, got {cpg_lambda}")
        self.cpg_lambda = float(cpg_lambda)
        self.ignore_index = ignore_index
        self.aux_weight = float(aux_weight)
        self.cpg = CPGLoss(kernel_size, ignore_index, ignore_mode, cpg_path)

    def _ce(self, logits: Tensor, target: Tensor, name: str) -> Tensor:
        if logits.dim() != 4:
            raise ValueError(
                f"outputs[{name!r}] must be 4-D (B, C, H, W), got {tuple(logits.shape)}"
            )
        _check_inputs(logits, target)
        logits = _resize_to(logits, target.shape[-2:])
        return F.cross_entropy(logits, target.long(), ignore_index=self.ignore_index)

    def forward(
        self, outputs: dict[str, Tensor], target: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        """(total loss, its terms as floats) for the model outputs {"out", optional "aux"}."""
        if not isinstance(outputs, dict) or "out" not in outputs:
            raise ValueError("outputs must be a dict with an 'out' entry of logits")
        out = outputs["out"]
        _check_inputs(out, target)
        _prepare_target(target, out.shape[1], self.ignore_index)  # value check, clear error
        ce = self._ce(out, target, "out")
        total = ce
        aux_ce = ce.new_zeros(())
        if outputs.get("aux") is not None:
            aux_ce = self._ce(outputs["aux"], target, "aux")
            total = total + self.aux_weight * aux_ce
        cpg = ce.new_zeros(())
        if self.cpg_lambda > 0:
            cpg = self.cpg(out, target)
            total = total + self.cpg_lambda * cpg
        values = torch.stack([ce, aux_ce, cpg, total]).detach().tolist()  # one host sync
        return total, dict(zip(("ce", "aux_ce", "cpg", "total"), values, strict=True))
