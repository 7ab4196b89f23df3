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
        help="validate a folder dataset (dataset.json, images/, masks/) and summarise it",
    )
    check.add_argument("root", help="dataset folder holding dataset.json")

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
            _check(args.root)
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


def _check(root: str) -> None:
    from tqdm import tqdm

    from training.data.folder import check_folder_dataset, format_summary

    with tqdm(desc="checking", unit="pair", disable=not sys.stderr.isatty()) as bar:
        spec, summaries = check_folder_dataset(root, on_pair=bar.update)
    print(format_summary(spec, summaries))


if __name__ == "__main__":
    sys.exit(main())
