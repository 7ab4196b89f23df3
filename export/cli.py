"""`zoo export CHECKPOINT --out MODEL_DIR [--int8 --calib-data DIR] [--fp16] [--head ...]`."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import TypeVar

from export.images import CALIB_LIMIT
from export.onnx_export import HEADS, MAX_OPSET, MIN_OPSET
from export.parity import INT8_MIN_AGREEMENT
from zoo.cli_errors import USER_ERRORS, fail, only_with
from zoo.modelfiles import (
    CARD_NAME,
    CONFIG_NAME,
    EVAL_NAME,
    ONNX_FP16_NAME,
    ONNX_INT8_NAME,
    ONNX_NAME,
    WEIGHTS_NAME,
)

PROG = "zoo export"
_T = TypeVar("_T")


def _size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 512x1024, got {text!r}") from None
    return height, width


def _shape(text: str) -> tuple[int, int, int, int]:
    try:
        batch, channels, height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected NxCxHxW, e.g. 1x3x193x257, got {text!r}"
        ) from None
    return batch, channels, height, width


def _check_needed_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse options that do nothing without another one (argparse exits with code 2)."""
    needs = {
        "--calib-data": (args.calib_data, {
            "--calib-labels": args.calib_labels,
            "--calib-size": args.calib_size,
            "--calib-limit": args.calib_limit,
        }),
        "--int8": (args.int8, {
            "--int8-per-tensor": args.int8_per_tensor,
            "--int8-min-agreement": args.int8_min_agreement,
            "--int8-max-miou-drop": args.int8_max_miou_drop,
        }),
    }  # fmt: skip
    for needed, (given, options) in needs.items():
        problem = only_with(f"{needed}, which is not given", options)
        if problem and not given:
            parser.error(problem)


def _given(value: _T | None, default: _T) -> _T:
    return default if value is None else value


def _print_progress(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Export a training checkpoint (or .safetensors / model directory) to a "
        f"model directory: {CONFIG_NAME}, {WEIGHTS_NAME}, {ONNX_NAME} [, {ONNX_INT8_NAME}, "
        f"{ONNX_FP16_NAME}] and the export report in {EVAL_NAME}; {CONFIG_NAME} records the "
        "sha256 of each model file. Parity gates fail the export. An existing model directory "
        f"is replaced whole once every gate passed (its other files kept, its {CARD_NAME} card "
        "dropped; the README.md of a folder that held no model is kept).",
    )
    parser.add_argument("checkpoint", help="trainer checkpoint (.pt), .safetensors or model dir")
    parser.add_argument("--out", required=True, help="model directory to write")
    parser.add_argument("--int8", action="store_true", help=f"also write {ONNX_INT8_NAME}")
    parser.add_argument("--calib-data", help="folder of images for int8 calibration (recursive)")
    parser.add_argument("--calib-labels", help="label folder mirroring --calib-data (for mIoU)")
    parser.add_argument("--calib-size", type=_size, help="HxW calibration size (default: config)")
    parser.add_argument(
        "--calib-limit", type=int, help=f"calibration images used (default {CALIB_LIMIT})"
    )
    parser.add_argument(
        "--int8-per-tensor",
        action="store_true",
        help="per-tensor weight scales (faster, less exact)",
    )
    parser.add_argument("--fp16", action="store_true", help=f"also write {ONNX_FP16_NAME} (GPU)")
    parser.add_argument("--head", choices=HEADS, default="logits", help="extra graph output")
    parser.add_argument(
        "--opset", type=int, default=18, help=f"ONNX opset, {MIN_OPSET} to {MAX_OPSET} (default 18)"
    )
    parser.add_argument(
        "--shape",
        dest="shapes",
        type=_shape,
        action="append",
        help="parity-gate input NxCxHxW (repeatable; default 1x3x256x512 1x3x193x257 2x3x128x160)",
    )
    parser.add_argument("--max-diff", type=float, default=1e-3, help="fp32 max |logit diff|")
    parser.add_argument(
        "--int8-min-agreement",
        type=float,
        help=f"fail below this int8/fp32 argmax agreement (default {INT8_MIN_AGREEMENT})",
    )
    parser.add_argument("--int8-max-miou-drop", type=float, help="fail above this mIoU drop")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress lines (which step is running)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `zoo export`; returns 0 on success, 1 on a failed gate or bad input."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_needed_options(parser, args)
    from export.api import export_model
    from export.parity import DEFAULT_SHAPES, ParityError, ParityGates

    try:
        gates = ParityGates(
            fp32_max_abs_diff=args.max_diff,
            int8_min_agreement=_given(args.int8_min_agreement, INT8_MIN_AGREEMENT),
            int8_max_miou_drop=args.int8_max_miou_drop,
        )
        out = export_model(
            args.checkpoint,
            args.out,
            int8=args.int8,
            calib_data=args.calib_data,
            calib_labels=args.calib_labels,
            calib_size=args.calib_size,
            calib_limit=_given(args.calib_limit, CALIB_LIMIT),
            int8_per_channel=not args.int8_per_tensor,
            fp16=args.fp16,
            head=args.head,
            opset=args.opset,
            shapes=tuple(args.shapes) if args.shapes else DEFAULT_SHAPES,
            gates=gates,
            command=shlex.join(["zoo", "export", *argv]),
            progress=None if args.quiet else _print_progress,
        )
    except ParityError as error:  # a failed gate: the figures say by how much
        fail(PROG, error)
        print(json.dumps(error.figures, indent=2), file=sys.stderr)
        return 1
    except USER_ERRORS as error:  # includes CheckpointError (a ValueError)
        return fail(PROG, error)
    print(f"exported {args.checkpoint} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
