"""`zoo eval MODEL --data-root DIR`: evaluate a training checkpoint or a shipped model (model
directory, registry id, `hf-hub:org/repo`) on any backend, with optional multi-scale + flip
test-time augmentation; prints the metrics and a per-class table, writes eval.json and a plot.
"""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path
from typing import Any

from zoo.backends import BACKEND_CHOICES, PRECISION_CHOICES
from zoo.cli_errors import USER_ERRORS, fail
from zoo.tta import STANDARD_SCALES

__all__ = ["main"]

PROG = "zoo eval"
CHECKPOINT_SUFFIXES = (".pt", ".pth")
MODEL_ONLY = ("backend", "precision", "revision", "min_agreement")


def _boundary_tolerance(text: str) -> int | str:
    """argparse type of --boundary-tolerance: px (int >= 0) or "cheng"."""
    from training.metrics import parse_boundary_tolerance

    try:
        return parse_boundary_tolerance(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Evaluate a training checkpoint, or a model as it ships (model directory, "
        "registry id or hf-hub:org/repo, through ONNX Runtime fp32/int8, OpenVINO or torch): "
        "mIoU, per-class IoU and boundary F (printed as a table), pixel accuracy, Boundary "
        "IoU; eval.json gets the confusion matrix. Checkpoints under torchrun: the split is "
        "sharded over processes and the counts are all-reduced (exact).",
        epilog="The Cityscapes / ADE20K multi-scale protocol: --scales "
        + " ".join(f"{s:g}" for s in STANDARD_SCALES)
        + " --flip",
    )
    parser.add_argument(
        "model",
        help="a checkpoint (last.pt / best.pt of zoo train), a model directory (zoo export), "
        "a registry id (zoo list) or hf-hub:org/repo[@revision]",
    )
    parser.add_argument("--data-root", required=True, help="dataset folder (its real layout)")
    parser.add_argument("--split", default="val", choices=("train", "val"))
    parser.add_argument(
        "--mode", choices=("whole", "slide"), default=None, help="default: the recipe's"
    )
    parser.add_argument(
        "--scales",
        type=float,
        nargs="+",
        default=[1.0],
        metavar="S",
        help="test-time scales, ratios of the image size (default 1.0); logits averaged",
    )
    parser.add_argument("--flip", action="store_true", help="average with the h-flipped input")
    parser.add_argument(
        "--backend", choices=BACKEND_CHOICES, help="a model's backend (default auto, as zoo.load)"
    )
    parser.add_argument(
        "--precision", choices=PRECISION_CHOICES, help="a model's file: fp32, int8, ... (auto)"
    )
    parser.add_argument(
        "--min-agreement",
        type=float,
        help="evaluate a reduced precision whose recorded agreement with fp32 (eval.json) is "
        "below its gate but at least this fraction, e.g. 0.97 (as zoo predict --min-agreement)",
    )
    parser.add_argument("--revision", help="Hub branch, tag or commit of a hub model")
    parser.add_argument("--out", default=None, help="write results here (eval.json)")
    parser.add_argument(
        "--plot", metavar="PNG", help="draw the confusion matrix and per-class bars (matplotlib)"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--amp", default="none", choices=("none", "bf16", "fp16"), help="checkpoints only"
    )
    parser.add_argument(
        "--boundary-tolerance",
        type=_boundary_tolerance,
        default=3,
        help="boundary F / Boundary IoU tolerance in px (default 3), or 'cheng': Cheng et "
        "al.'s Boundary IoU definition (2%% of the image diagonal, image border a contour)",
    )
    parser.add_argument("--max-images", type=int, default=0, help="0 = the whole split")
    parser.add_argument("--workers", type=int, default=2, help="data workers (checkpoints)")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def _is_checkpoint(text: str) -> bool:
    return Path(text).is_file() or text.endswith(CHECKPOINT_SUFFIXES)


def _check_args(args: argparse.Namespace) -> str | None:
    """The first problem with the options, as a message; None when they fit together."""
    if not Path(args.data_root).is_dir() and not args.data_root.startswith("hf:"):
        return f"--data-root {args.data_root} is not a folder"
    if args.max_images < 0:
        return f"--max-images must be >= 0 (0 = the whole split), got {args.max_images}"
    for option, path, name in (("--out", args.out, "eval.json"), ("--plot", args.plot, "cm.png")):
        if path and Path(path).is_dir():
            example = Path(path) / name
            return f"{option} {path} is a folder: give the file to write, e.g. {example}"
    if _is_checkpoint(args.model):
        if not Path(args.model).is_file():
            return f"checkpoint {args.model} not found"
        given = [
            "--" + name.replace("_", "-") for name in MODEL_ONLY if getattr(args, name) is not None
        ]
        if given:
            return (
                f"{', '.join(given)} select a shipped model's file; {args.model} is a checkpoint "
                "(zoo export it, then evaluate the model directory)"
            )
    elif args.amp != "none":
        return "--amp applies to checkpoints; choose a model's file with --precision"
    elif int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return "a model is evaluated in one process: run zoo eval without torchrun"
    if args.plot:
        from training.eval_plot import require_matplotlib

        try:
            require_matplotlib()
        except ImportError as error:
            return str(error)
    return None


def _evaluate_checkpoint(args: argparse.Namespace, command: str) -> dict[str, Any] | None:
    """The result on the main process (None on the others)."""
    from training.distributed import cleanup, init_distributed
    from training.evaluate import evaluate_checkpoint

    dist_info = init_distributed(args.device)
    try:
        result = evaluate_checkpoint(
            args.model,
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
            command=command,
            scales=args.scales,
        )
    finally:
        cleanup()
    return result if dist_info.is_main else None


def _evaluate_model(args: argparse.Namespace, command: str) -> dict[str, Any]:
    from training.eval_model import evaluate_model
    from zoo.tta import TTA

    return evaluate_model(
        args.model,
        args.data_root,
        split=args.split,
        backend=args.backend or "auto",
        precision=args.precision or "auto",
        min_agreement=args.min_agreement,
        device=args.device,
        revision=args.revision,
        mode=args.mode,
        tta=TTA(tuple(args.scales), args.flip),
        boundary_tolerance=args.boundary_tolerance,
        max_images=args.max_images,
        progress=not args.no_progress,
        command=command,
    )


def main(argv: list[str]) -> int:
    """`zoo eval MODEL --data-root DIR [--scales S ...] [--flip] [--out F] [--plot PNG]`."""
    args = _parser().parse_args(argv)
    problem = _check_args(args)
    if problem:
        return fail(PROG, problem, code=2)
    from training.eval_report import class_table, summary_line
    from training.evaluate import write_eval_json
    from zoo.tta import TTA

    command = shlex.join(["zoo", "eval", *argv])
    written = []
    try:
        TTA(tuple(args.scales), args.flip)  # checked before any model is loaded
        if _is_checkpoint(args.model):
            result = _evaluate_checkpoint(args, command)
        else:
            result = _evaluate_model(args, command)
        if result is None:  # not the main process
            return 0
        if args.out:
            written.append(write_eval_json(args.out, result))
        if args.plot:
            from training.eval_plot import plot_eval

            written.append(plot_eval(result, args.plot))
    except USER_ERRORS as error:
        return fail(PROG, error, code=2)
    print(summary_line(result))
    print(class_table(result["metrics"]))
    for path in written:
        print(f"wrote {path}")
    return 0
