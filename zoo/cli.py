"""The `zoo` command line. Subcommands living in producer packages are imported lazily."""

from __future__ import annotations

import importlib
import importlib.util
import sys

# subcommand -> ("module:function taking argv", one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "list": ("zoo.cli:list_main", "list the registry's model ids"),
    "predict": ("zoo.predict_cli:main", "segment images, folders or globs with a model"),
    "train": ("training.cli:train_main", "train a recipe (also under torchrun)"),
    "eval": ("training.cli:eval_main", "evaluate a checkpoint on a dataset"),
    "data": ("training.data.cli:main", "prepare datasets / generate SynthCity"),
    "export": ("export.cli:main", "checkpoint -> model directory (safetensors, ONNX)"),
    "push": ("zoo.hub_cli:push_main", "upload a model directory to the Hugging Face Hub"),
    "card": ("zoo.cli:card_main", "write the model card (README.md) of a model directory"),
    "demo": ("app:main", "start the Gradio demo"),
}


def list_main(argv: list[str]) -> int:
    """`zoo list [PATTERN]`: one registry id per line with its arch, dataset and loss."""
    import argparse

    from zoo.registry import get_spec, list_models

    parser = argparse.ArgumentParser(prog="zoo list", description=list_main.__doc__)
    parser.add_argument("pattern", nargs="?", help="substring or shell pattern, e.g. '*_cpg'")
    args = parser.parse_args(argv)
    ids = list_models(args.pattern)
    for model_id in ids:
        spec = get_spec(model_id)
        height, width = spec.input_size
        print(
            f"{model_id:32s} {spec.arch:16s} {spec.dataset:11s} {spec.loss:4s} "
            f"{spec.num_classes:4d} classes  {height}x{width}  hub:{spec.hub_repo}"
        )
    if not ids:
        print(f"no model id matches {args.pattern!r}", file=sys.stderr)
        return 1
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
    parser.add_argument("--repo", help="Hub repo id used in the usage snippets")
    parser.add_argument("--all", action="store_true", help="cards of all registry ids")
    parser.add_argument("--out", default="model_cards", help="output folder for --all")
    parser.add_argument(
        "--models-root", help="with --all: folder of model directories named by id (optional)"
    )
    args = parser.parse_args(argv)
    if args.all == (args.model_dir is not None):
        parser.error("give either MODEL_DIR or --all")
    try:
        if args.all:
            from training.recipes import get_recipe  # a producer: imported by the CLI only

            paths = generate_registry_cards(
                args.out, args.models_root, recipe_of=lambda i: get_recipe(i).to_dict()
            )
            print(f"wrote {len(paths)} cards under {args.out}/")
        else:
            print(f"wrote {write_card(args.model_dir, repo_id=args.repo)}")
    except (FileNotFoundError, ValueError) as error:
        print(f"zoo card: {error}", file=sys.stderr)
        return 2
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
    lines = ["usage: zoo COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:8s} {help_text}" for name, (_, help_text) in SUBCOMMANDS.items()]
    lines += ["", "`zoo COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `zoo` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in SUBCOMMANDS:
        print(f"zoo: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, function_name = SUBCOMMANDS[command][0].split(":")
    if importlib.util.find_spec(module_name) is None:
        print(f"zoo {command}: not implemented yet", file=sys.stderr)
        return 2
    try:
        function = getattr(importlib.import_module(module_name), function_name)
        return int(function(rest) or 0)
    except ModuleNotFoundError as error:
        extra = EXTRA_OF_MODULE.get((error.name or "").split(".")[0])
        if extra is None:
            raise
        print(
            f"zoo {command}: needs {error.name}, which this install lacks: "
            f"pip install 'cpg-zoo[{extra}]'",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
