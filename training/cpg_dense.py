"""The dense CPG path (for GPUs): whole-tensor convolutions, a fixed number of ops, no host
sync besides the label check; about 9.5x the logits' size in extra memory."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from training.cpg_kernels import integer_kernels, invalid_pixels


@functools.lru_cache(maxsize=32)
def dense_weight(k: int, c: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, int]:
    """Depthwise (2C, 1, k, k) integer kernels and their scale, cached per device: a copy to
    the GPU on every call would wait for the stream."""
    kint, scale = integer_kernels(k)
    weight = kint.t().reshape(2, 1, k, k).to(device=device, dtype=dtype).repeat(c, 1, 1, 1)
    return weight, scale


def dense_cpg(x: Tensor, lab: Tensor, k: int, exclude: bool) -> Tensor:
    """The CPG loss over dense (B, C, 2, H, W) tensors: a fixed number of ops, no host sync.

    ``grad_G`` is a depthwise conv of the one-hot labels with the integer kernels (integer
    sums: exact in float32, so the boundary equals the sparse path's), ``grad_P`` one of the
    softmax with the kernels; autograd gives the gradient.  Used on GPUs (see ``path``)."""
    b, c, h, w = x.shape
    r = k // 2
    weight, scale = dense_weight(k, c, x.dtype, x.device)
    with torch.no_grad():
        onehot = x.new_zeros(b, c + 1, h, w).scatter_(1, lab[:, None].long(), 1)[:, :c]
        gint = F.conv2d(F.pad(onehot, (r, r, r, r), mode="replicate"), weight, groups=c)
        del onehot
        gint = gint.view(b, c, 2, h, w)
        invalid = invalid_pixels(lab, c, k, exclude)
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
DENSE_BYTES_FACTOR = 13


DENSE_MEMORY_SHARE = 0.5  # "auto": dense if it needs at most this share of free GPU memory


def cuda_available_bytes(device: torch.device) -> int:
    """Free device memory plus what PyTorch's caching allocator holds unused."""
    free, _total = torch.cuda.mem_get_info(device)
    return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)


def resolve_path(path: str, device: torch.device, numel: int, itemsize: int) -> str:
    """The path to run, "sparse" or "dense", for ``path`` ("auto": dense on CUDA if it fits)."""
    if path != "auto":
        return path
    if device.type != "cuda":
        return "sparse"
    need = DENSE_BYTES_FACTOR * numel * itemsize
    fits = need <= DENSE_MEMORY_SHARE * cuda_available_bytes(device)
    return "dense" if fits else "sparse"
