"""Evaluation: whole-image or sliding-window inference (optional multi-scale and flip test-time
augmentation) and `eval.json`.

Under torchrun every process evaluates its own shard of the split (no padding, no duplicates)
and the metric counts are all-reduced, so the numbers are exact.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from training.checkpoints import load_checkpoint
from training.metrics import SegmentationMetrics
from zoo.fileio import file_sha256
from zoo.preprocess import slide_stride, sliding_windows
from zoo.selection import AGREEMENT_KEY
from zoo.tta import TTA, scaled_shape

__all__ = [
    "evaluate",
    "evaluate_checkpoint",
    "git_commit",
    "load_checkpoint",
    "metrics_record",
    "model_from_checkpoint",
    "predict_logits",
    "slide_logits",
    "write_eval_json",
]


def _out(model: nn.Module, images: Tensor) -> Tensor:
    outputs = model(images)
    logits = outputs["out"] if isinstance(outputs, dict) else outputs
    if logits.shape[-2:] != images.shape[-2:]:
        logits = F.interpolate(logits, images.shape[-2:], mode="bilinear", align_corners=False)
    return logits.float()


def slide_logits(
    model: nn.Module, images: Tensor, window: tuple[int, int], stride: tuple[int, int] | None = None
) -> Tensor:
    """Logits of `images` (N, 3, H, W) from `window`-sized crops every `stride` px (default
    `zoo.preprocess.slide_stride`), averaged where crops overlap (MMSegmentation's slide mode).
    The tiles are `zoo.preprocess.sliding_windows`, the ones `Segmenter` runs."""
    height, width = images.shape[-2:]
    total: Tensor | None = None
    count = images.new_zeros(1, 1, height, width)
    for rows, cols in sliding_windows(height, width, window, stride):
        logits = _out(model, images[..., rows, cols])
        if total is None:
            total = logits.new_zeros(images.shape[0], logits.shape[1], height, width)
        total[..., rows, cols] += logits
        count[..., rows, cols] += 1
    assert total is not None
    return total / count


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: Tensor,
    mode: str = "whole",
    window: tuple[int, int] | None = None,
    stride: tuple[int, int] | None = None,
    flip: bool = False,
    scales: Sequence[float] = (1.0,),
) -> Tensor:
    """Logits (N, C, H, W) at the input's size, `whole` or `slide`, averaged over the input
    resized by each of `scales` (bilinear, antialiased when shrinking; logits resized back) and,
    when `flip`, its horizontal mirror: the test-time augmentation of `zoo.tta`."""
    if mode == "whole":

        def run(x: Tensor) -> Tensor:
            return _out(model, x)
    elif mode == "slide":
        if window is None:
            raise ValueError("slide mode needs a window (the training crop size)")

        def run(x: Tensor) -> Tensor:
            return slide_logits(model, x, window, stride)
    else:
        raise ValueError(f"mode must be 'whole' or 'slide', got {mode!r}")
    scales = TTA(tuple(scales), flip).scales  # validated
    height, width = images.shape[-2:]
    total: Tensor | None = None
    for scale in scales:
        size = scaled_shape(height, width, scale)
        x = images
        if size != (height, width):
            x = F.interpolate(x, size, mode="bilinear", align_corners=False, antialias=scale < 1)
        logits = run(x)
        if flip:
            logits = (logits + run(x.flip(-1)).flip(-1)) / 2
        if logits.shape[-2:] != (height, width):
            logits = F.interpolate(logits, (height, width), mode="bilinear", align_corners=False)
        total = logits if total is None else total + logits
    assert total is not None
    return total if len(scales) == 1 else total / len(scales)


def _autocast(device: torch.device, amp: str) -> Any:
    if amp == "none":
        return nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def _shard(dataset: Dataset, max_images: int = 0) -> Dataset:
    """This process's images: every world_size-th one, after the first `max_images`."""
    n = len(dataset)  # type: ignore[arg-type]
    if max_images:
        n = min(n, max_images)
    rank, world = 0, 1
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    indices = list(range(rank, n, world))
    if len(indices) == len(dataset):  # type: ignore[arg-type]
        return dataset
    return Subset(dataset, indices)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset,
    num_classes: int,
    device: torch.device | str = "cpu",
    ignore_index: int = 255,
    mode: str = "whole",
    window: tuple[int, int] | None = None,
    stride: tuple[int, int] | None = None,
    flip: bool = False,
    amp: str = "none",
    boundary_tolerance: int | None = 3,
    max_images: int = 0,
    workers: int = 0,
    progress: bool = False,
    metrics: SegmentationMetrics | None = None,
    scales: Sequence[float] = (1.0,),
) -> dict[str, Any]:
    """Metrics of `model` on `dataset` (items: normalised image (3, H, W), mask (H, W)).

    Images are evaluated one at a time at their own size. Under torch.distributed each
    process takes its shard and the counts are summed, so every process returns the same,
    exact result. Pass `metrics` to accumulate into (and later inspect) your own counters.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    if metrics is None:
        metrics = SegmentationMetrics(num_classes, ignore_index, boundary_tolerance, device)
    loader = DataLoader(_shard(dataset, max_images), batch_size=1, num_workers=workers)
    items: Iterable[Any] = loader
    if progress:
        from tqdm import tqdm

        items = tqdm(loader, desc="eval", dynamic_ncols=True)
    count = 0
    for image, mask in items:
        image = image.to(device, non_blocking=True)
        mask = mask.to(device, non_blocking=True)
        with _autocast(device, amp):
            logits = predict_logits(model, image, mode, window, stride, flip, scales)
        metrics.update(logits.argmax(1), mask)
        count += 1
    counted = torch.tensor([count], device=device)
    metrics.reduce()
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(counted)
    model.train(was_training)
    result = metrics.compute()
    result["num_images"] = int(counted.item())
    return result


def git_commit(cwd: str | Path | None = None) -> str:
    """`git rev-parse HEAD` of the source tree, or "" outside a git checkout."""
    folder = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def model_from_checkpoint(checkpoint: dict[str, Any]) -> nn.Module:
    """Rebuild the network of a checkpoint and load its weights (strict)."""
    from zoo.models import build_model

    config = checkpoint["config"]
    recipe = config.get("recipe", {})
    model = build_model(
        config["arch"],
        config["num_classes"],
        aux_loss=bool(recipe.get("aux_loss", False)),
        pretrained_backbone=False,
    )
    model.load_state_dict(checkpoint["model"])
    return model


def evaluate_checkpoint(
    checkpoint_path: str | Path,
    data_root: str | Path,
    split: str = "val",
    mode: str | None = None,
    flip: bool = False,
    device: str = "auto",
    amp: str = "none",
    boundary_tolerance: int | str = 3,
    max_images: int = 0,
    workers: int = 0,
    progress: bool = True,
    command: str | None = None,
    scales: Sequence[float] = (1.0,),
) -> dict[str, Any]:
    """Evaluate a checkpoint on `split` of its dataset; returns the `eval.json` content, with
    the confusion matrix and the test-time augmentation (`scales`, `flip`) it ran with.

    `command` is recorded in the result (default: this process's command line)."""
    from training.data import open_dataset
    from training.distributed import resolve_device
    from training.transforms import eval_transforms

    checkpoint = load_checkpoint(checkpoint_path)
    config = checkpoint["config"]
    recipe = config.get("recipe", {})
    torch_device = resolve_device(device, int(os.environ.get("LOCAL_RANK", "0")))
    model = model_from_checkpoint(checkpoint).to(torch_device)
    dataset = open_dataset(
        recipe.get("dataset", config["dataset"]),
        data_root,
        split,
        eval_transforms(config["mean"], config["std"]),
        image_column=recipe.get("image_column", "image"),
        mask_column=recipe.get("mask_column", "annotation"),
    )
    window = tuple(recipe.get("crop_size") or config["input_size"])
    stride = tuple(recipe.get("eval_stride") or (0, 0))
    stride_arg = None if stride == (0, 0) else stride
    used_stride = stride_arg or slide_stride(window)  # type: ignore[arg-type]
    mode = mode or recipe.get("eval_mode", "whole")
    tta = TTA(tuple(scales), flip)
    counts = SegmentationMetrics(
        config["num_classes"], config.get("ignore_index", 255), boundary_tolerance, torch_device
    )
    metrics = evaluate(
        model,
        dataset,
        config["num_classes"],
        torch_device,
        ignore_index=config.get("ignore_index", 255),
        mode=mode,
        window=window,  # type: ignore[arg-type]
        stride=stride_arg,  # type: ignore[arg-type]
        flip=flip,
        amp=amp,
        boundary_tolerance=boundary_tolerance,
        max_images=max_images,
        workers=workers,
        progress=progress,
        metrics=counts,
        scales=tta.scales,
    )
    metrics = metrics_record(metrics, counts, config["classes"])
    return {
        "model_id": config.get("model_id", ""),
        "arch": config["arch"],
        "dataset": config["dataset"],
        "split": split,
        "metrics": metrics,
        "inference": {
            "mode": mode,
            "window": list(window) if mode == "slide" else None,
            "stride": list(used_stride) if mode == "slide" else None,
            "flip": flip,
            "amp": amp,
            "scales": list(tta.scales),
        },
        "checkpoint": str(checkpoint_path),
        "checkpoint_sha256": file_sha256(checkpoint_path),
        "checkpoint_iteration": int(checkpoint.get("iteration", -1)),
        "training_commit": config.get("source_commit", ""),
        "command": command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "git_commit": git_commit(),
    }


def metrics_record(
    metrics: dict[str, Any], counts: SegmentationMetrics, classes: Sequence[str]
) -> dict[str, Any]:
    """`metrics` with the class names and the confusion matrix of `counts` (rows: ground
    truth, columns: prediction; pixels, ignored ones left out) as eval.json records them."""
    if len(classes) != counts.confusion.num_classes:
        raise ValueError(
            f"{len(classes)} class names for a {counts.confusion.num_classes}-class model"
        )
    return {
        **metrics,
        "classes": list(classes),
        "confusion_matrix": counts.confusion.mat.cpu().tolist(),
    }


# Keys of eval.json that other steps write (zoo export's report, `export.api.REPORT_KEY`; the
# precision gates' figures): an evaluation written over an eval.json keeps them.
KEPT_KEYS = ("export", AGREEMENT_KEY)


def write_eval_json(path: str | Path, result: dict[str, Any]) -> Path:
    """Write `result` as strict JSON atomically (NaN and inf written as null), keeping the
    `KEPT_KEYS` of an eval.json already at `path` (e.g. a model directory's, with its export
    report)."""
    from zoo.fileio import json_safe, read_json_object, write_text_atomic

    path = Path(path)
    previous = read_json_object(path) if path.is_file() else {}
    kept = {key: previous[key] for key in KEPT_KEYS if key in previous and key not in result}
    text = json.dumps({**json_safe(result), **kept}, indent=2, allow_nan=False)
    write_text_atomic(path, text + "\n")
    return path
