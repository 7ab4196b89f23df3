"""`zoo train` and `zoo eval` (also `python -m training train|eval ...`, e.g. under torchrun)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

__all__ = ["eval_main", "train_main"]


# Errors that mean bad input or settings (a message for the user, not a traceback).
USER_ERRORS = (ValueError, FileNotFoundError, FloatingPointError)


def _fail(prog: str, message: str) -> int:
    """Print `prog: error: message` (for an error re-raised by a DataLoader worker, only its
    last line: the worker's traceback says nothing more to a user) and return exit code 2."""
    if "Original Traceback" in message:
        message = message.strip().splitlines()[-1]
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def _boundary_tolerance(text: str) -> int | str:
    """argparse type of --boundary-tolerance: px (int >= 0) or "cheng"."""
    from training.metrics import parse_boundary_tolerance

    try:
        return parse_boundary_tolerance(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def train_main(argv: list[str]) -> int:
    """`zoo train RECIPE --data-root DIR --out DIR [key=value ...]`."""
    from training.recipes import apply_overrides, get_recipe, list_recipes

    parser = argparse.ArgumentParser(
        prog="zoo train",
        description="Train a recipe (a registry id, or a *_synthcity_* CPU recipe). Run under "
        "`torchrun --nproc-per-node N -m training train ...` for several processes.",
        epilog="overrides: key=value pairs checked against the recipe, e.g. iterations=200 "
        "batch_size=4 crop_size=256,512 lr=0.02 amp=bf16 cpg_lambda=1.0 device=cpu workers=0 "
        "eval_interval=100. Recipes: " + ", ".join(list_recipes()),
    )
    parser.add_argument("recipe", help="recipe name, e.g. lraspp_mbv3_cityscapes_cpg")
    parser.add_argument("overrides", nargs="*", help="key=value recipe overrides")
    parser.add_argument("--data-root", required=True, help="dataset folder (its real layout)")
    parser.add_argument("--out", required=True, help="run folder for checkpoints and logs")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        help="resume from OUT/last.pt (or from the checkpoint given)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    parser.add_argument("--print-recipe", action="store_true", help="print the resolved recipe")
    args = parser.parse_intermixed_args(argv)
    try:
        recipe = apply_overrides(get_recipe(args.recipe), args.overrides)
    except ValueError as error:
        return _fail("zoo train", str(error))
    if args.print_recipe:
        import json

        print(json.dumps(recipe.to_dict(), indent=2))
        return 0
    data_root = Path(args.data_root)
    if not data_root.is_dir():
        return _fail("zoo train", f"--data-root {data_root} is not a folder")
    resume: str | bool | None = None
    if args.resume == "auto":
        resume = True
    elif args.resume:
        if not Path(args.resume).is_file():
            return _fail("zoo train", f"--resume {args.resume}: no such checkpoint")
        resume = args.resume
    from training.trainer import Trainer

    try:
        trainer = Trainer(
            recipe,
            args.out,
            data_root=data_root,
            progress=not args.no_progress,
            command=shlex.join(["zoo", "train", *argv]),
        )
        result = trainer.fit(resume)
    except USER_ERRORS as error:
        return _fail("zoo train", str(error))
    if result and os.environ.get("RANK", "0") == "0":
        print(f"final val mIoU {result['mIoU']:.4f}, mBF {result.get('mBF', float('nan')):.4f}")
    return 0


def eval_main(argv: list[str]) -> int:
    """`zoo eval CHECKPOINT --data-root DIR [--split val] [--mode whole|slide] [--flip]`."""
    parser = argparse.ArgumentParser(
        prog="zoo eval",
        description="Evaluate a training checkpoint: mIoU, per-class IoU, pixel accuracy, "
        "boundary F-score and Boundary IoU. Under torchrun the split is sharded over processes "
        "and the counts are all-reduced (exact).",
    )
    parser.add_argument("checkpoint", help="a last.pt / best.pt written by zoo train")
    parser.add_argument("--data-root", required=True, help="dataset folder (its real layout)")
    parser.add_argument("--split", default="val", choices=("train", "val"))
    parser.add_argument(
        "--mode", choices=("whole", "slide"), default=None, help="default: the recipe's"
    )
    parser.add_argument("--flip", action="store_true", help="average with the h-flipped input")
    parser.add_argument("--out", default=None, help="write results here (eval.json)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="none", choices=("none", "bf16", "fp16"))
    parser.add_argument(
        "--boundary-tolerance",
        type=_boundary_tolerance,
        default=3,
        help="boundary F / Boundary IoU tolerance in px (default 3), or 'cheng': Cheng et "
        "al.'s Boundary IoU definition (2%% of the image diagonal, image border a contour)",
    )
    parser.add_argument("--max-images", type=int, default=0, help="0 = the whole split")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if not Path(args.checkpoint).is_file():
        return _fail("zoo eval", f"checkpoint {args.checkpoint} not found")
    if not Path(args.data_root).is_dir():
        return _fail("zoo eval", f"--data-root {args.data_root} is not a folder")
    from training.distributed import cleanup, init_distributed
    from training.evaluate import evaluate_checkpoint, write_eval_json

    try:
        dist_info = init_distributed(args.device)
    except ValueError as error:
        return _fail("zoo eval", str(error))
    try:
        result = evaluate_checkpoint(
            args.checkpoint,
            args.data_root,
            split=args.split,
            mode=args.mode,
            flip=args.flip,
            device=str(dist_info.device),
            amp=args.amp,
            boundary_tolerance=args.boundary_tolerance,
            max_images=args.max_images,
            workers=args.workers,
            progress=dist_info.is_main and not args.no_progress,
            command=shlex.join(["zoo", "eval", *argv]),
        )
    except USER_ERRORS as error:
        return _fail("zoo eval", str(error))
    finally:
        cleanup()
    if dist_info.is_main:
        metrics = result["metrics"]
        print(
            f"{result['dataset']} {result['split']} ({metrics['num_images']} images): "
            f"mIoU {metrics['mIoU']:.4f}  pixel acc {metrics['pixel_acc']:.4f}  "
            f"mBF@{metrics['boundary_tolerance_px']}px {metrics['mBF']:.4f}  "
            f"mBIoU {metrics['mBIoU']:.4f}"
        )
        if args.out:
            path = write_eval_json(args.out, result)
            print(f"wrote {path}")
    return 0
