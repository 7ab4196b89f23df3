"""The sparse CPG path (the CPU default): boundary tiles only, in chunks, custom autograd.

``grad_G`` is non-zero only on a thin band around label edges and only for the classes present
there.  The image is cut into small tiles; a *job* is a (tile, class) pair whose class occurs
in the tile's (k // 2)-halo patch.  For each job ``grad_G`` is computed exactly from the integer
labels, jobs without a boundary entry are dropped, and ``grad_P`` is computed for the remaining
jobs only, from the gathered halo patch of ``P`` (log-sum-exp evaluated only at pixels within
k // 2 of a boundary entry).  Both use the kernels' separable form (``r = k // 2`` rank-one
terms).  The autograd function works in chunks (recomputing them in backward unless they are
small), so no B x C x H x W intermediate is ever built.  Its op count grows with the number of
chunks and it reads sizes back to the host (``nonzero``, ``tolist``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from training.cpg_kernels import columns, dilate, integer_kernels, invalid_pixels

CHUNK = 1 << 17  # elements per chunk of gathered patches / columns (more for large logits)


KEEP = 1 / 16  # keep forward chunks for backward if they total at most this x logits' size


def _chunk_size(x: Tensor) -> int:
    """Elements per chunk: at least CHUNK, and under 1/128 of the logits' size."""
    return max(CHUNK, x.numel() // 128)


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


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


class Jobs:
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


def label_jobs(lab: Tensor, num_classes: int, k: int, exclude: bool) -> Jobs:
    """Exact grad_G from integer labels ``lab`` (B, H, W) (ignored = ``num_classes``)."""
    b, h, w = lab.shape
    r = k // 2
    tl = _Tiling(b, h, w, _tile_size(k), r, lab.device)
    _, scale = integer_kernels(k)
    cols = columns(k, scale)
    invalid = invalid_pixels(lab, num_classes, k, exclude)
    invalid = tl.tiles(invalid, fill=True)
    patches = tl.patches(lab)
    tiles = (patches.amax((3, 4)) != patches.amin((3, 4))).flatten().nonzero().squeeze(1)
    out_tile, out_cls, out_g = [], [], []
    per = max(1, CHUNK // (tl.s * tl.s))
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
        return Jobs(tl, empty, empty, g, scale)
    return Jobs(tl, torch.cat(out_tile), torch.cat(out_cls), torch.cat(out_g), scale)


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


class CPGFunction(torch.autograd.Function):
    """CPG loss value from logits and label jobs; works in chunks, recomputes in backward.

    First-order only: its backward is not itself differentiable (`once_differentiable`)."""

    @staticmethod
    def forward(ctx, x: Tensor, jobs: Jobs, k: int) -> Tensor:
        count = int((jobs.gint != 0).sum())
        ctx.jobs, ctx.k, ctx.count = jobs, k, count
        if count == 0:
            ctx.save_for_backward(x, None, None)
            return x.new_zeros(())
        dpix = dilate(jobs.pixel_mask(), k // 2).flatten().nonzero().squeeze(1)
        dpix = dpix.to(_index_dtype(x.numel()))
        lse = _lse_map(x, dpix)
        # keep the chunks for backward when they are small next to the logits, else recompute
        s2 = jobs.tiling.s**2
        keep = jobs.tile.numel() * (3 * s2 + 2 * jobs.tiling.t**2) <= x.numel() * KEEP
        ctx.kept = []
        total = x.new_zeros(())
        for chunk in CPGFunction._chunks(x, jobs, lse, k):
            total += chunk[3].square().sum()
            if keep:
                ctx.kept.append(chunk)
            del chunk
        ctx.save_for_backward(x, lse, dpix)
        return total / count

    @staticmethod
    def _chunks(x: Tensor, jobs: Jobs, lse: Tensor, k: int):
        """Yield (P patches, logit index, pixel index, masked grad_G - grad_P) per job chunk."""
        c, h, w = x.shape[1:]
        tl = jobs.tiling
        cols = columns(k)
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
        cols = columns(ctx.k)
        coef = -2 * grad_out / ctx.count
        chunks = ctx.kept or CPGFunction._chunks(x, ctx.jobs, lse, ctx.k)
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
