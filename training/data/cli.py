"""`zoo data ...`: check a dataset, prepare a benchmark's labels, or generate SynthCity."""

from __future__ import annotations

import argparse
import sys

from training.data.layouts import LAYOUTS
from zoo.cli_errors import USER_ERRORS, fail


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoo data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser(
        "check",
        help="validate your data as `zoo train --data-root` reads it (a folder with "
        "dataset.json, images/, masks/, or a Hugging Face dataset) and summarise it",
    )
    check.add_argument("root", help="dataset folder, save_to_disk folder or hf:<id>")
    check.add_argument("--image-column", default="image", help="Hugging Face image column")
    check.add_argument("--mask-column", default="annotation", help="Hugging Face mask column")

    prepare = commands.add_parser(
        "prepare", help="convert raw labels to train-id PNGs once (safe to run again)"
    )
    prepare.add_argument("dataset", choices=sorted(LAYOUTS))
    prepare.add_argument("root", help="dataset root folder")
    prepare.add_argument("--workers", type=int, default=None, help="processes (default: CPUs)")

    synth = commands.add_parser(
        "synthcity", help="generate SynthCity street scenes in the Cityscapes layout"
    )
    synth.add_argument("out_root", help="folder to write leftImg8bit/ and gtFine/ into")
    synth.add_argument("--train", type=int, default=500, help="training frames")
    synth.add_argument("--val", type=int, default=100, help="validation frames")
    synth.add_argument("--height", type=int, default=256)
    synth.add_argument("--width", type=int, default=512)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--workers", type=int, default=None, help="processes (default: CPUs)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `zoo data` with `argv` (the arguments after "data"); returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "check":
            _check(args.root, args.image_column, args.mask_column)
        elif args.command == "prepare":
            from training.data.prepare import prepare_dataset

            stats = prepare_dataset(args.dataset, args.root, workers=args.workers)
            print(
                f"{args.dataset}: converted {stats.converted} labels, {stats.skipped} done before"
            )
        else:
            from training.data.synthcity import write_synthcity

            root = write_synthcity(
                args.out_root,
                n_train=args.train,
                n_val=args.val,
                size=(args.height, args.width),
                seed=args.seed,
                workers=args.workers,
            )
            print(f"SynthCity written to {root} (use it as dataset 'synthcity')")
    except USER_ERRORS as error:  # includes the dataset layout and file errors
        return fail(f"zoo data {args.command}", error)
    return 0


def _check(root: str, image_column: str, mask_column: str) -> None:
    from tqdm import tqdm

    from training.data.check import check_data_root
    from training.data.folder import format_summary

    with tqdm(desc="checking", unit="pair", disable=not sys.stderr.isatty()) as bar:
        spec, summaries = check_data_root(root, image_column, mask_column, on_item=bar.update)
    print(format_summary(spec, summaries))


if __name__ == "__main__":
    sys.exit(main())
