"""Evaluate one sweep run at several boundary tolerances in one pass over the val split.

Usage: python scripts/experiments/eval_run.py RUN/last.pt --data-root DIR --out RUN/eval.json
           [--arm NAME] [--seed N] [--train-seconds S]

Whole 256x512 val images, no flip (as `zoo eval`); mIoU and pixel accuracy, and boundary F /
Boundary IoU at 1, 3 and 5 px and with Cheng et al.'s definition (`tolerance="cheng"`), all
from one forward pass per image. The JSON holds `metrics` (the 3 px result, the layout of
`zoo eval`'s eval.json) and `boundary` (one entry per tolerance), plus the run's settings.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from training.evaluate import (
    evaluate,
    git_commit,
    load_checkpoint,
    model_from_checkpoint,
    write_eval_json,
)
from training.metrics import CHENG, SegmentationMetrics

TOLERANCES: tuple[int | str, ...] = (1, 3, 5, CHENG)
RECIPE_KEYS = (
    "name", "loss", "cpg_lambda", "cpg_kernel_size", "cpg_ignore_mode", "iterations", "seed",
)  # fmt: skip


class MultiToleranceMetrics:
    """Several `SegmentationMetrics` (one per boundary tolerance) fed the same predictions."""

    def __init__(self, num_classes: int, ignore_index: int) -> None:
        self.by_tolerance = {
            str(t): SegmentationMetrics(num_classes, ignore_index, t) for t in TOLERANCES
        }

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        self.by_tolerance["1"].confusion.update(pred, target)
        for metrics in self.by_tolerance.values():
            assert metrics.boundary is not None
            metrics.boundary.update(pred, target)

    def reduce(self) -> None:
        for metrics in self.by_tolerance.values():
            metrics.reduce()

    def compute(self) -> dict[str, Any]:
        result = self.by_tolerance["1"].confusion.compute()
        result["boundary"] = {
            key: metrics.boundary.compute()  # type: ignore[union-attr]
            for key, metrics in self.by_tolerance.items()
        }
        return result


def evaluate_run(checkpoint_path: Path, data_root: Path) -> dict[str, Any]:
    """Metrics of a checkpoint on the SynthCity val split, at every tolerance."""
    from training.data import build_dataset
    from training.transforms import eval_transforms

    checkpoint = load_checkpoint(checkpoint_path)
    config = checkpoint["config"]
    model = model_from_checkpoint(checkpoint)
    dataset = build_dataset(
        config["dataset"], data_root, "val", eval_transforms(config["mean"], config["std"])
    )
    multi = MultiToleranceMetrics(config["num_classes"], config.get("ignore_index", 255))
    result = evaluate(model, dataset, config["num_classes"], metrics=multi)  # type: ignore[arg-type]
    boundary = result.pop("boundary")
    metrics = {**result, **boundary["3"], "classes": list(config["classes"])}
    recipe = config.get("recipe", {})
    return {
        "metrics": metrics,
        "boundary": boundary,
        "recipe": {key: recipe.get(key) for key in RECIPE_KEYS},
        "checkpoint": str(checkpoint_path),
        "checkpoint_iteration": int(checkpoint.get("iteration", -1)),
        "training_commit": config.get("source_commit", ""),
        "git_commit": git_commit(),
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--arm", default="")
    parser.add_argument("--seed", type=int, default=-1)
    parser.add_argument("--train-seconds", type=float, default=float("nan"))
    parser.add_argument("--source-commit", default="", help="commit of the code that trained")
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:
        result = evaluate_run(args.checkpoint, args.data_root)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"eval_run: error: {error}")
    result.update(
        arm=args.arm,
        seed=args.seed,
        train_seconds=args.train_seconds,
        source_commit=args.source_commit or result["training_commit"],
    )
    write_eval_json(args.out, result)  # atomic; NaN written as null
    m = result["metrics"]
    print(f"{args.arm} seed {args.seed}: mIoU {m['mIoU']:.4f} mBF@3 {m['mBF']:.4f} -> {args.out}")


if __name__ == "__main__":
    main()
