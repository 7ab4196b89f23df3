"""What the CPG loss and the segmentation objective take: dtypes and autocast, low-resolution
logits, bad inputs and settings (clear errors), second-order gradients; the objective's sum."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.helpers_cpg import IGN, blocky, direct_cpg
from tests.helpers_torch import one_torch_thread  # noqa: F401 (autouse fixture)
from training.losses import CPGLoss, SegmentationObjective


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
