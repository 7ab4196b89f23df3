"""Tests of the CPG loss and the segmentation objective against a direct (dense) form."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F

import training.cpg_dense as dense_module
import training.cpg_sparse as sparse_module
from training.losses import CPGLoss, SegmentationObjective, cpg_kernels

IGN = 255


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors gain nothing from threads, and OpenMP barriers crawl on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


CASES = [  # (k, C, B, H, W)
    (3, 2, 2, 11, 13),
    (3, 19, 3, 17, 9),
    (5, 5, 2, 15, 14),
    (5, 150, 1, 12, 17),
    (7, 3, 2, 19, 23),
    (7, 171, 2, 13, 11),
]


@pytest.mark.parametrize("mode", ["exclude", "reference"])
@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize(("k", "c", "b", "h", "w"), CASES)
def test_matches_direct_form(k: int, c: int, b: int, h: int, w: int, ignore: bool, mode: str):
    target = blocky(b, h, w, c, seed=k * 1000 + c, ignore=ignore)
    logits = (3 * torch.randn(b, c, h, w, dtype=torch.float64)).requires_grad_()
    want = direct_cpg(logits, target, k, mode)
    (want_grad,) = torch.autograd.grad(want, logits)
    got = CPGLoss(k, IGN, mode)(logits, target)
    (got_grad,) = torch.autograd.grad(got, logits)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=1e-10, atol=0)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-9, atol=1e-14)
    # float32 logits: the same within float32 rounding
    got32 = CPGLoss(k, IGN, mode)(logits.detach().float(), target)
    torch.testing.assert_close(got32.double(), want.detach(), rtol=1e-5, atol=0)


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


@pytest.mark.parametrize("k", [3, 5, 7])
@pytest.mark.parametrize("mode", ["exclude", "reference"])
def test_boundary_entries_match_exact_mask(k: int, mode: str):
    target = blocky(2, 14, 19, 6, seed=k, ignore=True)
    got = CPGLoss(k, IGN, mode).boundary_entries(target, 6)
    want = exact_boundary(target, 6, k, mode).nonzero()
    assert torch.equal(got, want)


@pytest.mark.parametrize("k", [3, 5, 7])
def test_float32_reference_boundary_counts_rounding_noise(k: int):
    target = blocky(2, 37, 53, 19, seed=7, ignore=False)
    g32 = dense_grad(onehot(target, 19).float(), k, cpg_kernels(k, torch.float32))
    reference = int((g32 != 0).sum())
    exact = int(exact_boundary(target, 19, k, "reference").sum())
    assert CPGLoss(k).boundary_entries(target, 19).shape[0] == exact
    if k == 3:
        assert reference == exact
    else:
        assert reference > exact


def test_kernels():
    k3 = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 2
    torch.testing.assert_close(cpg_kernels(3), torch.stack([k3, k3.t()]))
    for k in (5, 7):
        kern = cpg_kernels(k, torch.float64)
        r = k // 2
        assert kern[0, r + 1, r + 2] == pytest.approx(2 / 5)  # i = 1, j = 2
        torch.testing.assert_close(kern[1], kern[0].t())


@pytest.mark.parametrize("k", [3, 5])
def test_gradcheck(k: int):
    target = torch.tensor([[[0, 0, 1, 1, 2], [0, 2, 1, 1, 2], [IGN, 2, 2, 0, 0], [0, 1, 1, 0, 2]]])
    logits = torch.randn(1, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    for mode in ("exclude", "reference"):
        loss = CPGLoss(k, IGN, mode)
        assert torch.autograd.gradcheck(lambda x, f=loss: f(x, target), (logits,), fast_mode=True)


def test_exclude_mode_has_no_entries_at_ignored_edges():
    target = torch.zeros(1, 16, 16, dtype=torch.long)
    target[:, :, 8:] = 1  # a real vertical edge at x = 7.5
    target[:, 3:6, 2:5] = IGN  # an ignored box inside class 0
    for k in (3, 5, 7):
        r = k // 2
        excl = CPGLoss(k, IGN, "exclude").boundary_entries(target, 2)
        ref = CPGLoss(k, IGN, "reference").boundary_entries(target, 2)
        for entries, has_box_edges in ((excl, False), (ref, True)):  # reference: false edges
            y, x = entries[:, 3], entries[:, 4]
            near_box = (y >= 3 - r) & (y <= 5 + r) & (x >= 2 - r) & (x <= 4 + r)
            assert bool(near_box.any()) == has_box_edges
        assert ((excl[:, 4] >= 8 - r - 1) & (excl[:, 4] <= 7 + r + 1)).all()
        assert excl.shape[0] > 0


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


def test_autocast_bf16_and_uint8_labels():
    target = blocky(2, 24, 20, 7, seed=3, ignore=True)
    logits = torch.randn(2, 7, 24, 20)
    loss = CPGLoss(5)
    want = loss(logits, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss(logits.bfloat16(), target)
    assert got.dtype == torch.float32
    assert abs(got.item() - want.item()) <= 1e-3 * want.item() + 1e-3
    assert torch.equal(loss(logits, target.to(torch.uint8)), want)


def test_low_resolution_logits_are_upsampled():
    target = blocky(2, 16, 20, 4, seed=5, ignore=True)
    small = torch.randn(2, 4, 8, 10, dtype=torch.float64, requires_grad=True)
    up = F.interpolate(small, size=(16, 20), mode="bilinear", align_corners=False)
    want = direct_cpg(up, target, 3, "exclude")
    got = CPGLoss(3)(small, target)
    torch.testing.assert_close(got, want)
    (g1,) = torch.autograd.grad(got, small)
    (g2,) = torch.autograd.grad(want, small)
    torch.testing.assert_close(g1, g2)


@pytest.mark.parametrize(
    ("logits", "target", "match"),
    [
        (torch.randn(2, 3, 8), torch.zeros(2, 8, 8, dtype=torch.long), "4-D"),
        (torch.randn(2, 3, 8, 8), torch.zeros(3, 8, 8, dtype=torch.long), "batch size"),
        (torch.randn(2, 3, 8, 8), torch.full((2, 8, 8), 3), r"label values \[3\]"),
        (torch.randn(2, 3, 8, 8), torch.full((2, 8, 8), -1), r"label values \[-1\]"),
        (torch.randn(2, 3, 8, 8), torch.zeros(2, 8, 8), "integer"),
        (torch.randn(2, 3, 8, 8), torch.zeros(2, 4, 4, dtype=torch.long), "larger"),
        (
            torch.randn(2, 3, 8, 8),
            torch.zeros(2, 8, 8, dtype=torch.long, device="meta"),
            "logits are on cpu but the target is on meta",
        ),
    ],
)
def test_bad_inputs_raise(logits: torch.Tensor, target: torch.Tensor, match: str):
    with pytest.raises(ValueError, match=match):
        CPGLoss()(logits, target)
    with pytest.raises(ValueError, match=match):
        SegmentationObjective(cpg_lambda=0.5)({"out": logits}, target)


def test_second_order_gradients_are_refused():
    """The hand-written backward is first-order only: create_graph must fail loudly."""
    logits = torch.randn(1, 3, 12, 12, requires_grad=True)
    target = blocky(1, 12, 12, 3, seed=1, ignore=False)
    (grad,) = torch.autograd.grad(CPGLoss()(logits, target), logits, create_graph=True)
    with pytest.raises(RuntimeError, match=r"does not require grad|once_differentiable"):
        grad.sum().backward()


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="kernel_size"):
        CPGLoss(4)
    with pytest.raises(ValueError, match="ignore_mode"):
        CPGLoss(3, ignore_mode="zero")
    with pytest.raises(ValueError, match=r"CPG path must be one of .* got 'gpu'"):
        CPGLoss(3, path="gpu")
    with pytest.raises(ValueError, match="'out'"):
        SegmentationObjective()({"aux": torch.randn(1, 2, 4, 4)}, torch.zeros(1, 4, 4).long())


def test_segmentation_objective():
    target = blocky(2, 16, 24, 5, seed=11, ignore=True)
    out = torch.randn(2, 5, 16, 24, requires_grad=True)
    aux = torch.randn(2, 5, 8, 12, requires_grad=True)  # lower resolution: upsampled
    aux_up = F.interpolate(aux, size=(16, 24), mode="bilinear", align_corners=False)
    ce = F.cross_entropy(out, target, ignore_index=IGN)
    aux_ce = F.cross_entropy(aux_up, target, ignore_index=IGN)

    total, terms = SegmentationObjective()({"out": out, "aux": aux}, target)
    torch.testing.assert_close(total, ce + 0.4 * aux_ce)
    assert float(terms["cpg"]) == 0.0 and set(terms) == {"ce", "aux_ce", "cpg", "total"}
    assert all(v.dim() == 0 and not v.requires_grad for v in terms.values())

    total, terms = SegmentationObjective()({"out": out}, target.to(torch.uint8))
    torch.testing.assert_close(total, ce)

    cpg = CPGLoss(5)(out, target)
    total, terms = SegmentationObjective(0.7, kernel_size=5)({"out": out, "aux": aux}, target)
    torch.testing.assert_close(total, ce + 0.4 * aux_ce + 0.7 * cpg)
    assert float(terms["cpg"]) == pytest.approx(cpg.item())
    assert float(terms["total"]) == pytest.approx(total.item())
    total.backward()
    assert out.grad is not None and aux.grad is not None


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


@pytest.mark.parametrize("path", ["sparse", "dense"])
@pytest.mark.parametrize("k", [3, 5, 7])
@pytest.mark.parametrize(("c", "b", "h", "w"), [(2, 2, 13, 15), (6, 2, 14, 19)])
def test_reference_mode_matches_published_formula_with_ignored_pixels(
    k: int, c: int, b: int, h: int, w: int, path: str
):
    """ignore_mode="reference" drops entries centred on ignored pixels, as the authors' code."""
    target = blocky(b, h, w, c, seed=31 * k + c, ignore=True)
    assert (target == IGN).sum() >= 15  # ignored regions are present
    logits = (3 * torch.randn(b, c, h, w, dtype=torch.float64)).requires_grad_()
    want = published_reference_cpg(logits, target, k)
    (want_grad,) = torch.autograd.grad(want, logits)
    got = CPGLoss(k, IGN, "reference", path)(logits, target)
    (got_grad,) = torch.autograd.grad(got, logits)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=0)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-9, atol=1e-14)


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
