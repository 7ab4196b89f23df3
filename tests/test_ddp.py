"""Two gloo processes on the CPU give exactly the metrics of one process."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers_process import run_process
from torch import nn
from torch.utils.data import Dataset

from training.evaluate import evaluate, evaluate_checkpoint
from training.metrics import SegmentationMetrics

REPO = Path(__file__).resolve().parents[1]


NUM_CLASSES = 4


class _Images(Dataset):
    """Five images of different sizes with blocky labels (an odd count: uneven shards)."""

    def __len__(self) -> int:
        return 5

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(index)
        height, width = 24 + 4 * index, 40 - 2 * index
        blocks = torch.randint(
            0, NUM_CLASSES, (height // 4 + 1, width // 4 + 1), generator=generator
        )
        mask = blocks.repeat_interleave(4, 0).repeat_interleave(4, 1)[:height, :width]
        mask[:2] = 255
        image = torch.randn(3, height, width, generator=generator) + mask.clamp(max=3)[None] * 0.5
        return image, mask


def _model() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, NUM_CLASSES, 1))
    return net.eval()


def _evaluate(metrics: SegmentationMetrics) -> dict:
    return evaluate(
        _model(), _Images(), NUM_CLASSES, "cpu", mode="slide", window=(16, 16), stride=(10, 10),
        flip=True, boundary_tolerance=2, metrics=metrics,
    )  # fmt: skip


def _worker(rank: int, world: int, store: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        metrics = SegmentationMetrics(NUM_CLASSES, boundary_tolerance=2)
        result = _evaluate(metrics)
        if rank == 0:
            torch.save(
                {
                    "result": json.dumps(result),
                    "confusion": metrics.confusion.mat,
                    "boundary": metrics.boundary.counts,  # type: ignore[union-attr]
                },
                out,
            )
    finally:
        dist.destroy_process_group()


def test_two_process_eval_equals_one_process(tmp_path: Path) -> None:
    out = tmp_path / "ddp.pt"
    mp.spawn(_worker, args=(2, str(tmp_path / "store"), str(out)), nprocs=2, join=True)
    ddp = torch.load(out, weights_only=True)
    metrics = SegmentationMetrics(NUM_CLASSES, boundary_tolerance=2)
    single = _evaluate(metrics)
    assert torch.equal(ddp["confusion"], metrics.confusion.mat)
    assert torch.equal(ddp["boundary"], metrics.boundary.counts)  # type: ignore[union-attr]
    assert json.loads(ddp["result"]) == json.loads(json.dumps(single))
    assert single["num_images"] == 5
    assert 0 < single["mIoU"] < 1 and int(metrics.confusion.mat.sum()) > 0


@pytest.mark.slow
def test_torchrun_training_eval_matches_single_process(tmp_path: Path) -> None:
    """`torchrun --nproc-per-node 2 -m training train` (gloo): its all-reduced validation
    metrics equal a one-process evaluation of the checkpoint it wrote."""
    from training.data.synthetic import write_tiny_dataset

    root = write_tiny_dataset("synthcity", tmp_path / "data", n_train=4, n_val=3, size=(32, 48))
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
        "--standalone", "-m", "training", "train", "lraspp_mbv3_synthcity_ce",
        "--data-root", str(root), "--out", str(out), "--no-progress",
        "iterations=3", "batch_size=4", "crop_size=32,32", "device=cpu", "workers=0",
        "threads=1", "eval_interval=3", "lr=0.1", "bn_momentum=1.0",
    ]  # fmt: skip
    # bn_momentum=1: each rank's BatchNorm statistics are those of its own last batch, so a
    # validation that used them (instead of rank 0's, which the checkpoint holds) would differ.
    done = run_process(cmd, env)
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    assert run["world_size"] == 2
    checkpoint = torch.load(out / "last.pt", weights_only=True)
    assert checkpoint["iteration"] == 3
    assert not any(key.startswith("module.") for key in checkpoint["model"])
    rng = checkpoint["rng"]  # each rank's own RNG streams, for an exact resume
    assert len(rng) == 2 and not torch.equal(rng[0]["torch"], rng[1]["torch"])
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    val = next(r["val"] for r in reversed(logged) if "val" in r)
    single = evaluate_checkpoint(out / "last.pt", root, device="cpu", progress=False)["metrics"]
    assert val["num_images"] == single["num_images"] == 3
    for key in ("mIoU", "pixel_acc", "mean_acc", "num_pixels"):
        assert val[key] == single[key], key
