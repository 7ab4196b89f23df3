"""Confusion-matrix and boundary metrics, sliding-window and flip inference."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from training.evaluate import predict_logits, slide_logits
from training.metrics import (
    BoundaryMetrics,
    ConfusionMatrix,
    SegmentationMetrics,
    cheng_tolerance,
    mask_boundary,
    parse_boundary_tolerance,
)
from zoo.preprocess import window_starts


def test_confusion_matrix_hand_computed() -> None:
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 0, 1]])
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    # rows: ground truth, columns: prediction; the 255 pixel is not counted
    assert cm.mat.tolist() == [[1, 1, 0], [0, 3, 0], [1, 0, 1]]
    result = cm.compute()
    iou = [1 / (2 + 2 - 1), 3 / (3 + 4 - 3), 1 / (2 + 1 - 1)]
    assert result["per_class_iou"] == pytest.approx(iou)
    assert result["mIoU"] == pytest.approx(sum(iou) / 3)
    assert result["pixel_acc"] == pytest.approx(5 / 7)
    assert result["mean_acc"] == pytest.approx((1 / 2 + 3 / 3 + 1 / 2) / 3)
    assert result["num_pixels"] == 7


def test_absent_class_is_left_out_of_the_mean() -> None:
    cm = ConfusionMatrix(4)
    cm.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 1]))
    result = cm.compute()
    assert result["per_class_iou"] == [1.0, 1.0, None, None]
    assert result["mIoU"] == 1.0


def test_all_ignored_and_bad_labels() -> None:
    cm = ConfusionMatrix(2)
    cm.update(torch.zeros(3, 3, dtype=torch.long), torch.full((3, 3), 255))
    assert math.isnan(cm.compute()["mIoU"])
    with pytest.raises(ValueError, match="outside"):
        cm.update(torch.zeros(2, dtype=torch.long), torch.tensor([0, 7]))
    with pytest.raises(ValueError, match="shape"):
        cm.update(torch.zeros(2, dtype=torch.long), torch.zeros(3, dtype=torch.long))


def test_counts_add_up_like_an_all_reduce() -> None:
    """Metrics from counts summed over shards equal metrics over the whole set."""
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (4, 24, 24), generator=generator)
    target[:, :3] = 255
    pred = torch.randint(0, 4, (4, 24, 24), generator=generator)
    whole = SegmentationMetrics(4, boundary_tolerance=2)
    whole.update(pred, target)
    parts = [SegmentationMetrics(4, boundary_tolerance=2) for _ in range(2)]
    parts[0].update(pred[:1], target[:1])
    parts[1].update(pred[1:], target[1:])
    parts[0].confusion.mat += parts[1].confusion.mat
    parts[0].boundary.counts += parts[1].boundary.counts  # type: ignore[union-attr]
    assert parts[0].compute() == whole.compute()


def _square(shift: int = 0, size: int = 40) -> torch.Tensor:
    mask = torch.zeros(size, size, dtype=torch.long)
    mask[10:30, 10 + shift : 30 + shift] = 1
    return mask


def test_mask_boundary_is_one_pixel_and_ignores_image_border() -> None:
    boundary = mask_boundary(_square() == 1)
    assert int(boundary.sum()) == 4 * 20 - 4
    assert not mask_boundary(torch.ones(8, 8, dtype=torch.bool)).any()


def test_boundary_f_identical_and_shifted() -> None:
    same = BoundaryMetrics(2, tolerance=2)
    same.update(_square(), _square())
    result = same.compute()
    assert result["mBF"] == 1.0 and result["mBIoU"] == 1.0
    scores = []
    for shift in (1, 2, 4, 8):
        metric = BoundaryMetrics(2, tolerance=2)
        metric.update(_square(shift), _square())
        scores.append(metric.compute()["mBF"])
    assert scores[0] == 1.0 and scores[1] == 1.0  # within the 2-px tolerance
    assert scores[2] < 0.8 and scores[3] < scores[2]
    strict = BoundaryMetrics(2, tolerance=0)
    strict.update(_square(1), _square())
    assert strict.compute()["mBF"] < 1.0


def test_boundary_f_missing_class_scores_zero() -> None:
    metric = BoundaryMetrics(2, tolerance=1)
    metric.update(torch.zeros(40, 40, dtype=torch.long), _square())
    result = metric.compute()
    assert result["per_class_bf"][1] == 0.0
    assert result["per_class_bf"][0] == 0.0  # background's boundary is the square's too


def test_boundary_ignores_edges_next_to_ignored_pixels() -> None:
    target = _square()
    target[:, :20] = 255  # left half ignored: its edge with the square is no boundary
    pred = _square()
    pred[:, :20] = 0  # whatever the net predicts under the ignore region
    metric = BoundaryMetrics(2, tolerance=2)
    metric.update(pred, target)
    assert metric.compute()["mBF"] == 1.0
    counts = metric.counts
    # top and bottom edges at x >= 22 (2 x 8 px) and the right edge (18 px)
    assert int(counts[2, 1]) == 2 * 8 + 18


def _naive_boundary_counts(
    pred: torch.Tensor, target: torch.Tensor, classes: int, t: int, border: bool = False
):
    """The documented definitions, pixel by pixel (slow; small maps only). `border`: the
    image border is a contour (Cheng et al.)."""
    height, width = target.shape
    p, g = pred.tolist(), target.tolist()

    def near(y: int, x: int, r: int):
        for yy in range(max(0, y - r), min(height, y + r + 1)):
            for xx in range(max(0, x - r), min(width, x + r + 1)):
                yield yy, xx

    def band(lab: list, y: int, x: int, r: int) -> bool:
        at_border = min(y, x, height - 1 - y, width - 1 - x) < r
        return (border and at_border) or any(lab[yy][xx] != lab[y][x] for yy, xx in near(y, x, r))

    valid = [[all(g[yy][xx] != 255 for yy, xx in near(y, x, max(t, 1))) for x in range(width)]
             for y in range(height)]  # fmt: skip
    pts = [(y, x) for y in range(height) for x in range(width) if valid[y][x]]
    pb = {(y, x) for y, x in pts if band(p, y, x, 1)}
    gb = {(y, x) for y, x in pts if band(g, y, x, 1)}
    counts = torch.zeros(6, classes, dtype=torch.int64)
    for y, x in pb:
        counts[0, p[y][x]] += 1
        counts[1, p[y][x]] += any(q in gb and g[q[0]][q[1]] == p[y][x] for q in near(y, x, t))
    for y, x in gb:
        counts[2, g[y][x]] += 1
        counts[3, g[y][x]] += any(q in pb and p[q[0]][q[1]] == g[y][x] for q in near(y, x, t))
    r = max(t, 1)
    for y, x in pts:
        in_g, in_p = band(g, y, x, r), band(p, y, x, r)
        if in_g and in_p and g[y][x] == p[y][x]:
            counts[4, g[y][x]] += 1
        if in_g:
            counts[5, g[y][x]] += 1
        if in_p:
            counts[5, p[y][x]] += 1
    counts[5] -= counts[4]
    return counts


@pytest.mark.parametrize("tolerance", [0, 1, 2])
def test_boundary_counts_match_the_definition(tolerance: int) -> None:
    generator = torch.Generator().manual_seed(tolerance)
    for _ in range(3):
        blocks = torch.randint(0, 4, (5, 6), generator=generator)
        target = blocks.repeat_interleave(3, 0).repeat_interleave(3, 1)[:13, :16].contiguous()
        pred = torch.roll(target, 1, 1)
        pred[torch.rand(pred.shape, generator=generator) < 0.1] = 2
        target[torch.rand(target.shape, generator=generator) < 0.02] = 255
        metric = BoundaryMetrics(4, tolerance)
        metric.update(pred, target)
        assert torch.equal(metric.counts, _naive_boundary_counts(pred, target, 4, tolerance))


def _cheng_mask_to_boundary(mask: list[list[bool]], dilation: int) -> set[tuple[int, int]]:
    """Cheng et al.'s reference `mask_to_boundary` (boundary_iou_api), without OpenCV: pad
    1 px of 0, erode `dilation` times with a 3x3 kernel (outside the padded image does not
    erode), crop, and keep mask pixels that the erosion removed."""
    height, width = len(mask), len(mask[0])
    cur = [[False] * (width + 2)] + [[False, *row, False] for row in mask]
    cur += [[False] * (width + 2)]
    for _ in range(dilation):
        cur = [
            [
                all(
                    cur[yy][xx]
                    for yy in range(max(0, y - 1), min(height + 2, y + 2))
                    for xx in range(max(0, x - 1), min(width + 2, x + 2))
                )
                for x in range(width + 2)
            ]
            for y in range(height + 2)
        ]
    return {
        (y, x) for y in range(height) for x in range(width) if mask[y][x] and not cur[y + 1][x + 1]
    }


def _random_blocks(height: int, width: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    blocks = torch.randint(0, 3, (height // 6 + 1, width // 6 + 1), generator=generator)
    target = blocks.repeat_interleave(6, 0).repeat_interleave(6, 1)[:height, :width].contiguous()
    pred = torch.roll(target, (1, 2), (0, 1))
    pred[torch.rand(pred.shape, generator=generator) < 0.05] = 1
    return pred, target


@pytest.mark.parametrize(("height", "width", "dilation"), [(12, 16, 1), (48, 64, 2), (90, 120, 3)])
def test_cheng_boundary_iou_matches_the_reference_definition(
    height: int, width: int, dilation: int
) -> None:
    """Boundary IoU with tolerance="cheng" equals Cheng et al.'s mask_to_boundary bands
    (d = round(0.02 x diagonal): 0.4 -> 1, 1.6 -> 2, 3.0 -> 3 px; border is a contour)."""
    assert cheng_tolerance(height, width) == dilation
    pred, target = _random_blocks(height, width, seed=height)
    metric = BoundaryMetrics(3, "cheng")
    metric.update(pred, target)
    for c in range(3):
        g_d = _cheng_mask_to_boundary((target == c).tolist(), dilation)
        p_d = _cheng_mask_to_boundary((pred == c).tolist(), dilation)
        assert int(metric.counts[4, c]) == len(g_d & p_d)
        assert int(metric.counts[5, c]) == len(g_d | p_d)
    result = metric.compute()
    assert result["boundary_definition"] == "cheng"
    assert result["boundary_tolerance_px"] == dilation


def test_cheng_counts_match_the_definition_with_ignore() -> None:
    pred, target = _random_blocks(48, 64, seed=5)
    target[20:26, 30:40] = 255
    metric = BoundaryMetrics(3, "cheng")
    metric.update(pred, target)
    assert torch.equal(metric.counts, _naive_boundary_counts(pred, target, 3, 2, border=True))


def test_cheng_counts_the_image_border() -> None:
    """One class filling a 10x10 image: no contour in the inner definition; with Cheng's,
    the border ring of width 1 (d = round(0.02 x 14.1) -> 1) is its boundary."""
    full = torch.zeros(10, 10, dtype=torch.long)
    inner = BoundaryMetrics(1, 1)
    inner.update(full, full)
    assert inner.counts.sum() == 0
    cheng = BoundaryMetrics(1, "cheng")
    cheng.update(full, full)
    assert cheng.counts[:, 0].tolist() == [36, 36, 36, 36, 36, 36]


def test_parse_boundary_tolerance() -> None:
    assert parse_boundary_tolerance("5") == 5
    assert parse_boundary_tolerance("Cheng") == "cheng"
    for bad in ("-1", "3px", ""):
        with pytest.raises(ValueError, match="pixels"):
            parse_boundary_tolerance(bad)
    with pytest.raises(ValueError, match="tolerance"):
        BoundaryMetrics(2, "wide")


class _PixelNet(nn.Module):
    """A 1x1-conv net: exactly translation equivariant, returns torchvision-style dicts."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, classes, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.conv(x)}


def test_window_starts_cover_the_image() -> None:
    assert window_starts(10, 20, 5) == [0]
    assert window_starts(100, 40, 26) == [0, 26, 52, 60]
    for size, window, stride in ((97, 32, 21), (64, 32, 32), (33, 32, 21)):
        covered = set()
        for s in window_starts(size, window, stride):
            covered.update(range(s, min(s + window, size)))
        assert covered == set(range(size))


def test_slide_equals_whole_for_a_pointwise_model() -> None:
    model = _PixelNet().eval()
    images = torch.randn(2, 3, 45, 70)
    whole = predict_logits(model, images, "whole")
    slide = predict_logits(model, images, "slide", window=(16, 32), stride=(10, 21))
    assert torch.allclose(whole, slide, atol=1e-5)
    assert torch.allclose(slide_logits(model, images, (64, 64), (40, 40)), whole, atol=1e-6)
    flipped = predict_logits(model, images, "whole", flip=True)
    assert torch.allclose(flipped, whole, atol=1e-5)


def test_predict_logits_bad_mode() -> None:
    with pytest.raises(ValueError, match="mode"):
        predict_logits(_PixelNet(), torch.zeros(1, 3, 8, 8), "tiles")
    with pytest.raises(ValueError, match="window"):
        predict_logits(_PixelNet(), torch.zeros(1, 3, 8, 8), "slide")


def test_eval_cli_rejects_a_bad_boundary_tolerance(capsys: pytest.CaptureFixture[str]) -> None:
    from training.cli import eval_main

    with pytest.raises(SystemExit):
        eval_main(["run/last.pt", "--data-root", ".", "--boundary-tolerance", "wide"])
    err = capsys.readouterr().err
    assert "--boundary-tolerance" in err and "'cheng', got 'wide'" in err


def _sweep_run(arm: str, seed: int, miou: float, bf3: float) -> dict:
    boundary = {t: {"mBF": bf3 / 2, "mBIoU": 0.1} for t in ("1", "3", "5", "cheng")}
    boundary["3"]["mBF"] = bf3
    return {
        "arm": arm, "seed": seed, "metrics": {"mIoU": miou, "pixel_acc": 0.9},
        "boundary": boundary, "recipe": {"iterations": 600}, "train_seconds": 300.0,
        "source_commit": "261fac7e",
    }  # fmt: skip


def test_sweep_summary_tables() -> None:
    """scripts/experiments/summarise.py: mean ± sample sd over seeds, differences paired by seed."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts/experiments/summarise.py"
    spec = importlib.util.spec_from_file_location("summarise", path)
    assert spec is not None and spec.loader is not None
    summarise = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(summarise)
    runs = [
        _sweep_run("ce_equal_compute", 0, 0.25, 0.20),
        _sweep_run("ce_equal_compute", 1, 0.27, 0.22),
        _sweep_run("cpg_l1_k3", 0, 0.28, 0.30),
        _sweep_run("cpg_l1_k3", 2, 0.30, 0.31),  # seed 2 has no CE twin: not paired
    ]
    text = summarise.tables(runs)
    # mIoU 25 and 27 %: mean 26, sample sd sqrt(2) = 1.41; mBF@3 20 and 22 %
    assert "| CE, equal compute | 0, 1 | 26.00 ± 1.41 | 21.00 ± 1.41 |" in text
    # paired (seed 0 only): mIoU 28 - 25, mBF@1 15 - 10, mBF@3 30 - 20
    assert "| CPG λ=1 k=3 | 0 | +3.00 | +5.00 | +10.00 |" in text


def test_sweep_record_reads_back_the_runs_of_a_runs_folder(tmp_path) -> None:
    """summarise.py --record writes the runs' eval.json as JSONL; --runs RECORD reads the same."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts/experiments/summarise.py"
    runs = [_sweep_run("cpg_l1_k3", 1, 0.30, 0.31), _sweep_run("ce_equal_compute", 0, 0.25, 0.2)]
    for run in [*runs, {"arm": "not_an_arm", "seed": 0}]:
        folder = tmp_path / "runs" / f"{run['arm']}_seed{run['seed']}"
        folder.mkdir(parents=True)
        (folder / "eval.json").write_text(json.dumps(run))
    record = tmp_path / "record.jsonl"
    command = [sys.executable, str(script), "--runs", str(tmp_path / "runs")]
    recording = [*command, "--record", str(record)]
    from_folder = subprocess.run(recording, capture_output=True, text=True)
    assert from_folder.returncode == 0, from_folder.stderr
    lines = record.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [runs[1], runs[0]]  # ARMS order, known arms
    command[-1] = str(record)
    from_record = subprocess.run(command, capture_output=True, text=True)
    assert from_record.returncode == 0, from_record.stderr
    assert from_record.stdout == from_folder.stdout
    assert "| CE, equal compute | 0 |" in from_record.stdout
