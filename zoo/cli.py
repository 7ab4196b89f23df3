"""The `zoo` command line. Subcommands living in producer packages are imported lazily."""

from __future__ import annotations

import importlib
import importlib.util
import sys

from zoo.cli_errors import USER_ERRORS, fail, only_with, reader_left

# subcommand -> ("module:function taking argv", one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "list": ("zoo.cli:list_main", "list the models and whether each loads now"),
    "predict": ("zoo.predict_cli:main", "segment images, folders or globs with a model"),
    "train": ("training.cli:train_main", "train a recipe (also under torchrun)"),
    "eval": ("training.cli:eval_main", "evaluate a checkpoint or a model on a dataset"),
    "data": ("training.data.cli:main", "prepare datasets / generate SynthCity"),
    "export": ("export.cli:main", "checkpoint -> model directory (safetensors, ONNX)"),
    "push": ("zoo.hub_cli:push_main", "upload a model directory to the Hugging Face Hub"),
    "card": ("zoo.cli:card_main", "write the model card (README.md) of a model directory"),
    "demo": ("app:main", "start the Gradio demo"),
}


def list_main(argv: list[str]) -> int:
    """`zoo list [PATTERN] [--available]`: every model `zoo.load` takes by name (built-in,
    registry ids on the Hub, other Hub repos in the local cache), with where it comes from and
    whether it loads now. Offline and instant: the Hub is not asked. One model per line on
    stdout (for scripts); the column header and a summary go to stderr."""
    import argparse

    from zoo.availability import model_entries

    parser = argparse.ArgumentParser(prog="zoo list", description=list_main.__doc__)
    parser.add_argument("pattern", nargs="?", help="substring or shell pattern, e.g. '*_cpg'")
    parser.add_argument("--available", action="store_true", help="only models that load now")
    args = parser.parse_args(argv)
    every = model_entries(args.pattern)
    entries = [entry for entry in every if entry.available or not args.available]
    if not entries:
        what = "available model" if args.available else "model"
        return fail("zoo list", f"no {what} matches {args.pattern or '*'!r} (see `zoo list`)")
    header = ("NAME", "ARCH", "DATASET", "LOSS", "CLASSES", "INPUT", "SOURCE", "AVAILABLE")
    table = [header] + [
        (
            entry.name,
            entry.arch,
            entry.dataset,
            entry.loss,
            str(entry.num_classes or "?"),
            "x".join(map(str, entry.input_size)) if entry.input_size else "?",
            entry.source,
            "yes" if entry.available else "no",
        )
        for entry in entries
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    notes = ["NOTE", *(entry.note for entry in entries)]
    for index, (row, note) in enumerate(zip(table, notes, strict=True)):
        cells = [value.ljust(width) for value, width in zip(row, widths, strict=True)]
        print("  ".join([*cells, note]), file=sys.stderr if index == 0 else sys.stdout)
    loadable = sum(entry.available for entry in every)
    print(
        f"{loadable} of {len(every)} models load now (built-in or in the local Hub cache); "
        "registry ids load from the Hub once published.",
        file=sys.stderr,
    )
    return 0


def card_main(argv: list[str]) -> int:
    """`zoo card MODEL_DIR` or `zoo card --all [--out model_cards]`."""
    import argparse

    from zoo.cards import generate_registry_cards, write_card

    parser = argparse.ArgumentParser(
        prog="zoo card",
        description="Write the model card (README.md) of a model directory from its config.json "
        "and eval.json, or the cards of all registry ids with --all (with their planned "
        "training recipes).",
    )
    parser.add_argument("model_dir", nargs="?", help="model directory written by `zoo export`")
    parser.add_argument("--repo", help="Hub repo id the usage snippets load from")
    parser.add_argument(
        "--builtin",
        action="store_true",
        help="the directory will ship in the package (zoo/assets/models/): usage loads it by "
        "name (automatic for the package's own directories)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a README.md in MODEL_DIR that is not a cpg-zoo card (kept otherwise)",
    )
    parser.add_argument("--all", action="store_true", help="cards of all registry ids")
    parser.add_argument(
        "--out",
        help="with --all: output folder (default model_cards); a MODEL_DIR's card is "
        "MODEL_DIR/README.md",
    )
    parser.add_argument(
        "--models-root", help="with --all: folder of model directories named by id (optional)"
    )
    args = parser.parse_args(argv)
    if args.all == (args.model_dir is not None):
        parser.error("give either MODEL_DIR or --all")
    all_only = only_with(
        "--all; MODEL_DIR's card is MODEL_DIR/README.md",
        {"--out": args.out, "--models-root": args.models_root},
    )
    dir_only = only_with(
        "MODEL_DIR, not with --all",
        {"--repo": args.repo, "--builtin": args.builtin, "--overwrite": args.overwrite},
    )
    problem = dir_only if args.all else all_only
    if problem:
        parser.error(problem)
    if args.repo and args.builtin:
        parser.error("--repo and --builtin exclude each other: where does the model load from?")
    try:
        if args.all:
            from training.recipes import get_recipe  # a producer: imported by the CLI only

            out = args.out or "model_cards"
            paths = generate_registry_cards(
                out, args.models_root, recipe_of=lambda i: get_recipe(i).to_dict()
            )
            print(f"wrote {len(paths)} cards under {out}/")
        else:
            path = write_card(args.model_dir, args.repo, args.builtin, args.overwrite)
            print(f"wrote {path}")
    except USER_ERRORS as error:
        return fail("zoo card", error, code=2)
    return 0


# Optional dependencies -> the extra of pyproject.toml that installs them.
EXTRA_OF_MODULE = {
    "torch": "torch",
    "torchvision": "torch",
    "timm": "torch",
    "tensorboard": "train",
    "onnx": "export",
    "onnxscript": "export",
    "gradio": "demo",
    "pandas": "demo",
}


def _usage() -> str:
    lines = ["usage: zoo [--version] COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:8s} {help_text}" for name, (_, help_text) in SUBCOMMANDS.items()]
    lines += ["", "`zoo COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `zoo` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    if argv[0] in {"-V", "--version"}:
        from zoo import __version__

        print(f"cpg-zoo {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in SUBCOMMANDS:
        fail("zoo", f"unknown command {command!r}")
        print(f"\n{_usage()}", file=sys.stderr)
        return 2
    module_name, function_name = SUBCOMMANDS[command][0].split(":")
    if importlib.util.find_spec(module_name) is None:
        return fail(f"zoo {command}", "not implemented yet", code=2)
    try:
        function = getattr(importlib.import_module(module_name), function_name)
        code = int(function(rest) or 0)
        sys.stdout.flush()  # a reader that left fails here, not in the exit flush
        return code
    except BrokenPipeError:  # `zoo list | head`: the reader left; no traceback
        return reader_left()
    except ModuleNotFoundError as error:
        extra = EXTRA_OF_MODULE.get((error.name or "").split(".")[0])
        if extra is None:
            raise
        return fail(
            f"zoo {command}",
            f"needs {error.name}, which this install lacks: pip install 'cpg-zoo[{extra}]'",
            code=2,
        )


if __name__ == "__main__":
    sys.exit(main())
