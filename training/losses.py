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

Implementation: two paths with the same value and gradient.  The *sparse* path
(`training.cpg_sparse`, the CPU default) computes ``grad_G`` exactly from the integer labels on
boundary tiles only and ``grad_P`` only there, in chunks, so no B x C x H x W intermediate is
built; its op count grows with the number of chunks and it reads sizes back to the host.  The
*dense* path (`training.cpg_dense`, chosen by ``path="auto"`` on CUDA when its memory fits)
convolves whole (B, C, H, W) tensors: a fixed number of ops and no host sync besides the label
check, for about 9.5x the logits' size in extra memory.  The kernels and window helpers both
paths share are in `training.cpg_kernels`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.cpg_dense import dense_cpg, resolve_path
from training.cpg_kernels import check_kernel_size, cpg_kernels
from training.cpg_sparse import CPGFunction, Jobs, label_jobs

__all__ = ["CPGLoss", "SegmentationObjective", "cpg_kernels"]


IGNORE_MODES = ("exclude", "reference")
PATHS = ("auto", "sparse", "dense")


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
        check_kernel_size(kernel_size)
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

    def _jobs(self, target: Tensor, num_classes: int) -> Jobs:
        lab = _prepare_target(target, num_classes, self.ignore_index)
        return label_jobs(lab, num_classes, self.kernel_size, self.ignore_mode == "exclude")

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
            if resolve_path(self.path, x.device, x.numel(), x.element_size()) == "dense":
                lab = _prepare_target(target, x.shape[1], self.ignore_index)
                return dense_cpg(x, lab, self.kernel_size, self.ignore_mode == "exclude")
            jobs = self._jobs(target, x.shape[1])
            return CPGFunction.apply(x, jobs, self.kernel_size)


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
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """(total loss, its terms as detached 0-d tensors on the logits' device: reading them
        is the caller's host sync) for the model outputs {"out", optional "aux"}."""
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
        values = torch.stack([ce, aux_ce, cpg, total]).detach().unbind()  # no host sync
        return total, dict(zip(("ce", "aux_ce", "cpg", "total"), values, strict=True))
