"""The CPG loss on CUDA: the dense path against the CPU sparse path, syncs and memory.

Skipped without a CUDA device (``pytest -m cuda`` selects these tests)."""

from __future__ import annotations

import warnings

import pytest
import torch

import training.cpg_dense as dense_module
from tests.helpers_cpg import IGN, blocky
from training.losses import CPGLoss

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def fwd_bwd(logits: torch.Tensor, target: torch.Tensor, loss: CPGLoss):
    logits = logits.detach().requires_grad_()
    value = loss(logits, target)
    (grad,) = torch.autograd.grad(value, logits)
    return value.detach().cpu(), grad.cpu()


@pytest.mark.parametrize("mode", ["exclude", "reference"])
@pytest.mark.parametrize("k", [3, 5, 7])
@pytest.mark.parametrize("c", [2, 19])
def test_cuda_matches_cpu_sparse_path(c: int, k: int, mode: str):
    target = blocky(2, 48, 72, c, seed=10 * k + c, ignore=True)
    logits = 3 * torch.randn(2, c, 48, 72)
    want_value, want_grad = fwd_bwd(logits, target, CPGLoss(k, IGN, mode, "sparse"))
    atol = 1e-5 * want_grad.abs().max()
    for path in ("auto", "dense", "sparse"):  # auto: dense here (tiny input)
        value, grad = fwd_bwd(logits.cuda(), target.cuda(), CPGLoss(k, IGN, mode, path))
        torch.testing.assert_close(value, want_value, rtol=1e-5, atol=0)
        torch.testing.assert_close(grad, want_grad, rtol=1e-5, atol=atol)


def test_auto_picks_dense_on_cuda_when_it_fits():
    dev = torch.device("cuda")
    assert dense_module.resolve_path("auto", dev, 2 * 19 * 512 * 1024, 4) == "dense"
    free, _ = torch.cuda.mem_get_info(dev)
    assert dense_module.resolve_path("auto", dev, free, 4) == "sparse"  # 13x free: too big


def test_dense_path_syncs_only_for_the_label_check():
    target = blocky(2, 64, 96, 19, seed=1, ignore=True).cuda()
    logits = torch.randn(2, 19, 64, 96, device="cuda", requires_grad=True)
    loss = CPGLoss(5, IGN, path="dense")
    loss(logits, target).backward()  # warm-up: kernels copied to the device once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loss(logits, target).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) == 1, [str(w.message) for w in syncs]  # `bad.any()` of the label check


def test_dense_path_memory_within_its_estimate():
    target = blocky(2, 256, 256, 19, seed=2, ignore=True).cuda()
    logits = torch.randn(2, 19, 256, 256, device="cuda", requires_grad=True)
    loss = CPGLoss(3, IGN, path="dense")
    loss(logits, target).backward()  # warm-up
    logits.grad = None
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    loss(logits, target).backward()
    extra = torch.cuda.max_memory_allocated() - before
    logits_bytes = logits.numel() * logits.element_size()
    assert extra <= dense_module.DENSE_BYTES_FACTOR * logits_bytes, extra / logits_bytes
