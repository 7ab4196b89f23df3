"""The CPG loss against independent references: the direct dense form in float64, the
published formula with ignored pixels, exact boundary masks, kernels and gradcheck."""

from __future__ import annotations

import pytest
import torch

from tests.helpers_cpg import (
    IGN,
    blocky,
    dense_grad,
    direct_cpg,
    exact_boundary,
    onehot,
    published_reference_cpg,
)
from tests.helpers_torch import one_torch_thread  # noqa: F401 (autouse fixture)
from training.losses import CPGLoss, cpg_kernels

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
