"""The CPG loss's computation paths: sparse chunks (kept or recomputed), the dense path
against the sparse one, op and sync counts, the automatic choice, cached kernels."""

from __future__ import annotations

import pytest
import torch

import training.cpg_dense as dense_module
import training.cpg_sparse as sparse_module
from tests.helpers_cpg import IGN, blocky, direct_cpg
from tests.helpers_torch import one_torch_thread  # noqa: F401 (autouse fixture)
from training.losses import CPGLoss


@pytest.mark.parametrize("keep", [0.0, 1e9], ids=["recompute", "keep"])
@pytest.mark.parametrize("k", [3, 7])
def test_many_small_chunks(monkeypatch: pytest.MonkeyPatch, k: int, keep: float):
    """Chunking (jobs, pixel columns) and keeping/recomputing chunks do not change results."""
    monkeypatch.setattr(sparse_module, "CHUNK", 300)
    monkeypatch.setattr(sparse_module, "KEEP", keep)
    target = blocky(3, 21, 26, 6, seed=k, ignore=True)
    logits = (3 * torch.randn(3, 6, 21, 26, dtype=torch.float64)).requires_grad_()
    want = direct_cpg(logits, target, k, "exclude")
    (want_grad,) = torch.autograd.grad(want, logits)
    got = CPGLoss(k)(logits, target)
    got.backward(retain_graph=True)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=0)
    torch.testing.assert_close(logits.grad, want_grad, rtol=1e-9, atol=1e-14)
    first = logits.grad.clone()
    got.backward()  # a second backward through the kept chunks gives the same gradient
    torch.testing.assert_close(logits.grad, 2 * first)


@pytest.mark.parametrize(
    "target",
    [torch.full((2, 9, 10), 3), torch.full((2, 9, 10), IGN)],
    ids=["single-class", "all-ignored"],
)
@pytest.mark.parametrize("path", ["sparse", "dense"])
@pytest.mark.parametrize("mode", ["exclude", "reference"])
def test_empty_boundary_gives_zero_with_graph(target: torch.Tensor, mode: str, path: str):
    logits = torch.randn(2, 5, 9, 10, requires_grad=True)
    loss = CPGLoss(5, IGN, mode, path)(logits, target)
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and not logits.grad.any()


@pytest.mark.parametrize("mode", ["exclude", "reference"])
@pytest.mark.parametrize("k", [3, 5, 7])
@pytest.mark.parametrize("c", [2, 19])
def test_dense_path_matches_sparse_path(c: int, k: int, mode: str):
    """The GPU-style dense path gives the CPU sparse path's value and gradient (float32)."""
    target = blocky(2, 23, 29, c, seed=100 * k + c, ignore=True)
    logits = (3 * torch.randn(2, c, 23, 29)).requires_grad_()
    results = []
    for path in ("sparse", "dense"):
        value = CPGLoss(k, IGN, mode, path)(logits, target)
        results.append((value, *torch.autograd.grad(value, logits)))
    (v_sparse, g_sparse), (v_dense, g_dense) = results
    assert v_sparse > 0
    torch.testing.assert_close(v_dense, v_sparse, rtol=1e-5, atol=0)
    torch.testing.assert_close(g_dense, g_sparse, rtol=1e-5, atol=1e-5 * g_sparse.abs().max())


def _profiled_counts(fn) -> tuple[int, int]:
    """(dispatched aten ops, host syncs) of ``fn()`` on the CPU.

    Dispatched ops: aten ops not nested in another aten op (on a GPU each is a kernel launch
    at least; nested ones are a CPU kernel's internals).  Syncs: nonzero and scalar reads."""
    from torch.profiler import ProfilerActivity, profile

    def outermost(event) -> bool:
        parent = event.cpu_parent
        while parent is not None:
            if parent.name.startswith("aten::"):
                return False
            parent = parent.cpu_parent
        return True

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = prof.events()
    ops = sum(e.name.startswith("aten::") and outermost(e) for e in events)
    syncs = sum(e.name in ("aten::nonzero", "aten::_local_scalar_dense") for e in events)
    return ops, syncs


@pytest.mark.parametrize("k", [3, 7])
def test_dense_path_op_count_does_not_grow_with_size_or_classes(k: int):
    def fwd_bwd(c: int, h: int, w: int, path: str):
        target = blocky(2, h, w, c, seed=c, ignore=True)
        logits = torch.randn(2, c, h, w, requires_grad=True)
        return lambda: CPGLoss(k, IGN, path=path)(logits, target).backward()

    small, large = (3, 12, 12), (19, 128, 128)
    for case in (small, large):
        fwd_bwd(*case, "dense")()  # warm-up (cached kernels)
    dense = {_profiled_counts(fwd_bwd(*case, "dense")) for case in (small, large)}
    assert len(dense) == 1, dense  # the same counts for both sizes and class counts
    ((_, syncs),) = dense
    assert syncs == 1  # the label check only
    sparse = [_profiled_counts(fwd_bwd(*case, "sparse")) for case in (small, large)]
    assert sparse[1][0] > sparse[0][0]  # the sparse path grows (so this measure can fail)


@pytest.mark.parametrize(
    ("device", "available", "want"),
    [("cpu", 2**40, "sparse"), ("cuda", 2**30, "dense"), ("cuda", 2**23, "sparse")],
)
def test_auto_path_by_device_and_free_memory(
    monkeypatch: pytest.MonkeyPatch, device: str, available: int, want: str
):
    """auto: sparse on the CPU; on CUDA dense when its memory fits (4 MB of logits here)."""
    monkeypatch.setattr(dense_module, "cuda_available_bytes", lambda dev: available)
    got = dense_module.resolve_path("auto", torch.device(device), 10**6, 4)
    assert got == want
    for path in ("sparse", "dense"):
        assert dense_module.resolve_path(path, torch.device(device), 10**6, 4) == path


def test_dense_path_trains_after_a_first_call_in_inference_mode():
    """The dense path caches its kernels: one first made under inference_mode must not break
    a later training step (inference tensors cannot be saved for backward)."""
    dense_module.dense_weight.cache_clear()
    target = blocky(1, 12, 16, 3, seed=4, ignore=False)
    logits = torch.randn(1, 3, 12, 16, dtype=torch.float64, requires_grad=True)
    with torch.inference_mode():
        first = CPGLoss(3, IGN, path="dense")(logits.detach(), target)
    got = CPGLoss(3, IGN, path="dense")(logits, target)
    (grad,) = torch.autograd.grad(got, logits)
    want = direct_cpg(logits, target, 3, "exclude")
    torch.testing.assert_close(got.detach(), first)
    torch.testing.assert_close(grad, torch.autograd.grad(want, logits)[0])
