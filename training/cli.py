"""`zoo train` and `zoo eval` (also `python -m training train|eval ...`, e.g. under torchrun)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.cli_errors import USER_ERRORS, fail

if TYPE_CHECKING:
    from training.recipes import Recipe

__all__ = ["eval_main", "train_main"]


def _fail(prog: str, error: BaseException | str) -> int:
    """`zoo.cli_errors.fail` with the training CLIs' exit status 2."""
    return fail(prog, error, code=2)


def _train_parser() -> argparse.ArgumentParser:
    from training.recipes import list_recipes
    from training.runs import RESUME_SAFE_KEYS

    parser = argparse.ArgumentParser(
        prog="zoo train",
        description="Train a recipe (a registry id, or a *_synthcity_* CPU recipe). Run under "
        "`torchrun --nproc-per-node N -m training train ...` for several processes.",
        epilog="overrides: key=value pairs checked against the recipe, e.g. iterations=200 "
        "batch_size=4 crop_size=256,512 lr=0.02 amp=bf16 cpg_lambda=1.0 device=cpu workers=0 "
        "eval_interval=100. On resume only " + ", ".join(RESUME_SAFE_KEYS) + " may change "
        "without --allow-override. Recipes: " + ", ".join(list_recipes()),
    )
    parser.add_argument(
        "recipe", nargs="?", help="recipe name, e.g. lraspp_mbv3_cityscapes_cpg (or use --arch)"
    )
    parser.add_argument("overrides", nargs="*", help="key=value recipe overrides")
    parser.add_argument(
        "--arch",
        help="train this architecture on your own data at --data-root (a folder with "
        "dataset.json, or a Hugging Face dataset): the recipe's crop and iterations come from "
        "the data (see --print-recipe)",
    )
    parser.add_argument(
        "--loss",
        choices=("ce", "cpg"),
        help="with --arch: cpg (default: CE + CPG) or ce; a named recipe's loss is in its name",
    )
    parser.add_argument("--data-root", help="dataset folder (its real layout); required to train")
    parser.add_argument("--out", help="run folder for checkpoints and logs; required to train")
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in OUT from last.pt (last.prev.pt if last.pt is unreadable) "
        "with its recipe; a new run if OUT holds none",
    )
    start.add_argument("--resume-from", metavar="PATH", help="continue from this checkpoint")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the run OUT holds (its checkpoints, metrics.jsonl, run.json, tb/) first",
    )
    parser.add_argument(
        "--allow-override",
        action="store_true",
        help="on resume, allow overrides that change the result (lr, iterations, ...)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    parser.add_argument("--print-recipe", action="store_true", help="print the resolved recipe")
    return parser


def _resumed_recipe(
    name: str, overrides: list[str], checkpoint: dict, path: Path, allow_override: bool
) -> Recipe:
    """The recipe saved in `checkpoint` with `overrides` applied; ValueError if the recipe
    name differs or an override changes the result without `allow_override`."""
    from training.recipes import Recipe, apply_overrides
    from training.runs import RESUME_SAFE_KEYS, changed_keys

    try:
        saved = Recipe.from_dict(checkpoint["config"]["recipe"])
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: its recipe is not valid here ({error})") from None
    if saved.name != name:
        hint = ""
        prefix, suffix = f"{saved.arch}_", f"_{saved.loss}"
        if saved.dataset == "custom" and name.startswith(prefix) and name.endswith(suffix):
            data = saved.name.removeprefix(prefix).removesuffix(suffix)
            hint = (
                f": its data was named {data!r} (a recipe of your data is named after the "
                'folder, or "name" in dataset.json); to resume on this data, add '
                f'"name": "{data}" to its dataset.json'
            )
        raise ValueError(f"{path} is a checkpoint of {saved.name}, not of {name}{hint}")
    recipe = apply_overrides(saved, overrides)
    refused = [key for key in changed_keys(saved, recipe) if key not in RESUME_SAFE_KEYS]
    if refused and not allow_override:
        changes = ", ".join(
            f"{key} {getattr(saved, key)!r} -> {getattr(recipe, key)!r}" for key in refused
        )
        raise ValueError(
            f"resuming {path} with overrides that change the result ({changes}); "
            "add --allow-override to continue anyway, or train into a new --out"
        )
    return recipe


def _base_recipe(args: argparse.Namespace, main_rank: bool) -> tuple[Recipe, int | None]:
    """The named recipe, or with --arch the recipe for the user's dataset at --data-root
    (checked whole first: every image and mask is read), and the number of training images
    it was derived from (None for a named recipe). The arguments are checked before the data
    is read."""
    from training.custom_recipe import custom_recipe
    from training.recipe_data import check_recipe_matches_data
    from training.recipes import get_recipe, parse_overrides
    from zoo.archs import ARCHITECTURES
    from zoo.lookup import lookup

    if args.arch is None:
        if args.recipe is not None and "=" in args.recipe:  # argparse took an override for it
            names = [value for value in args.overrides if "=" not in value]
            if len(names) != 1:
                raise ValueError(
                    f"give one RECIPE before the key=value overrides (got {args.recipe!r} where "
                    "the recipe name goes)"
                )
            args.overrides.remove(names[0])  # `zoo train key=value RECIPE`: the name, anywhere
            args.overrides.insert(0, args.recipe)
            args.recipe = names[0]
        if args.recipe is None:
            raise ValueError("give a RECIPE (zoo list recipes: zoo train --help) or --arch")
        recipe = get_recipe(args.recipe)
        if args.loss is not None and args.loss != recipe.loss:
            other = recipe.name.removesuffix(f"_{recipe.loss}") + f"_{args.loss}"
            raise ValueError(
                f"--loss {args.loss} goes with --arch; recipe {recipe.name} trains with loss "
                f"{recipe.loss}: train {other} for {args.loss}"
            )
        parse_overrides(args.overrides, recipe)
        if args.data_root is not None:
            check_recipe_matches_data(recipe, args.data_root)
        return recipe, None
    if args.recipe is not None:
        if "=" not in args.recipe:
            raise ValueError(f"give a RECIPE ({args.recipe}) or --arch ({args.arch}), not both")
        args.overrides.insert(0, args.recipe)  # an override taken for the recipe name
    lookup(ARCHITECTURES, args.arch, "arch")
    given = parse_overrides(args.overrides)
    if args.data_root is None:
        raise ValueError("--arch trains on your own data: give --data-root")
    name, images, sizes = _describe_data(
        args.data_root,
        given.get("image_column", "image"),
        given.get("mask_column", "annotation"),
        verbose=main_rank and not args.print_recipe,
    )
    # an iterations= override also sets what derives from it (warm-up, intervals)
    loss = args.loss or "cpg"
    recipe = custom_recipe(args.arch, loss, name, images, sizes, given.get("iterations"))
    return recipe, images


def _recipe_line(recipe: Recipe, source: str, train_images: int | None) -> str:
    """One line on the recipe a run of the user's data trains (after every override)."""
    height, width = recipe.crop_size
    whole = f" (all {train_images} training images)" if recipe.batch_size == train_images else ""
    return (
        f"recipe {recipe.name} {source}: crop {height}x{width}, {recipe.iterations} iterations "
        f"of batch {recipe.batch_size}{whole}, lr {recipe.lr}, warm-up {recipe.warmup_iters} "
        "(--print-recipe shows all)"
    )


def _describe_data(
    root: str, image_column: str, mask_column: str, verbose: bool
) -> tuple[str, int, list[tuple[int, int]]]:
    """(name, training images, image sizes) of a user's dataset, after checking it."""
    import re

    from training.data.check import check_data_root
    from training.data.folder import format_summary, is_folder_dataset
    from training.data.hf import is_hf_dataset

    if not (is_hf_dataset(root) or is_folder_dataset(root)):
        raise ValueError(
            f"--data-root {root} is not a dataset of your own: expected a folder with "
            "dataset.json, images/ and masks/ (README 'Your own data') or a Hugging Face "
            "dataset (save_to_disk folder or hf:<id>)"
        )
    spec, summaries = check_data_root(root, image_column, mask_column)  # `zoo data check`'s
    if verbose:
        print(format_summary(spec, summaries))
    name, train = spec.info.name, summaries["train"]
    images, sizes = train.images, list(train.sizes.elements())
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "custom", images, sizes


def _start_point(args: argparse.Namespace, main_rank: bool) -> tuple[Recipe, Path | bool | None]:
    """The recipe to train and what `Trainer.fit` resumes from: the checkpoint's recipe with
    the overrides for --resume / --resume-from, else the named recipe with them. With --arch,
    prints the recipe it trains (after every override)."""
    from training.checkpoints import load_checkpoint
    from training.recipes import apply_overrides
    from training.runs import find_resume_point

    base, train_images = _base_recipe(args, main_rank)
    recipe = apply_overrides(base, args.overrides)
    resume: Path | bool | None = None
    source = "from the data"
    if args.resume_from:
        path = Path(args.resume_from)
        checkpoint = load_checkpoint(path)
        resume = path
    elif args.resume:
        if args.out is None:
            raise ValueError("--resume continues the run in --out: give --out")
        point = find_resume_point(args.out)
        resume = True if point is None else point.path  # True: a new run, if OUT holds none
        if point is not None:
            path, checkpoint = point.path, point.checkpoint
            for problem in point.skipped if main_rank else []:
                print(f"zoo train: warning: {problem}; using {path}", file=sys.stderr)
    if isinstance(resume, Path):
        recipe = _resumed_recipe(recipe.name, args.overrides, checkpoint, path, args.allow_override)
        source = f"from {path}"
    if args.arch is not None and main_rank and not args.print_recipe:
        print(_recipe_line(recipe, source, train_images))
    return recipe, resume


def _interrupted(out: Path, argv: list[str]) -> None:
    """Say where an interrupted run stands (Ctrl-C) and how to continue it."""
    from training.runs import LAST

    if not (out / LAST).is_file():
        print(f"zoo train: interrupted before the first checkpoint in {out}", file=sys.stderr)
        return
    again: list[str] = []  # argv without how it started: --resume continues it
    skip = False
    for arg in argv:
        dropped = arg in ("--resume", "--overwrite", "--resume-from")
        if not (skip or dropped or arg.startswith("--resume-from=")):
            again.append(arg)
        skip = arg == "--resume-from"
    print(
        f"zoo train: interrupted; the run continues from {out / LAST} (written every "
        f"checkpoint_interval iterations) with: {shlex.join(['zoo', 'train', *again, '--resume'])}",
        file=sys.stderr,
    )


def train_main(argv: list[str]) -> int:
    """`zoo train RECIPE --data-root DIR --out DIR [key=value ...] [--resume | --overwrite]`."""
    args = _train_parser().parse_intermixed_args(argv)
    main_rank = os.environ.get("RANK", "0") == "0"
    if args.resume and args.overwrite:
        return _fail("zoo train", "--resume continues the run in --out, --overwrite deletes it")
    if not args.print_recipe:
        for option in ("data_root", "out"):
            if getattr(args, option) is None:
                return _fail("zoo train", f"--{option.replace('_', '-')} is required to train")
        if not Path(args.data_root).is_dir() and not args.data_root.startswith("hf:"):
            return _fail("zoo train", f"--data-root {args.data_root} is not a folder")
        if Path(args.out).exists() and not Path(args.out).is_dir():
            return _fail("zoo train", f"--out {args.out} exists and is not a folder")
    try:
        recipe, resume = _start_point(args, main_rank)
    except USER_ERRORS as error:
        return _fail("zoo train", error)
    if args.print_recipe:
        import json

        print(json.dumps(recipe.to_dict(), indent=2))
        return 0
    data_root = Path(args.data_root)
    from training.trainer import Trainer
    from zoo.models import BackboneDownloadError

    try:
        trainer = Trainer(
            recipe,
            args.out,
            data_root=data_root,
            progress=not args.no_progress,
            command=shlex.join(["zoo", "train", *argv]),
        )
        result = trainer.fit(resume, overwrite=args.overwrite)
    except BackboneDownloadError as error:  # or start from weights that need no download
        return _fail("zoo train", f"{error} Or fine-tune with init=MODEL_ID (zoo list).")
    except USER_ERRORS as error:
        return _fail("zoo train", error)
    except KeyboardInterrupt:
        if main_rank:
            _interrupted(Path(args.out), argv)
        return 130
    if result and main_rank:
        print(f"final val mIoU {result['mIoU']:.4f}, mBF {result.get('mBF', float('nan')):.4f}")
    return 0


def eval_main(argv: list[str]) -> int:
    """`zoo eval MODEL --data-root DIR [--scales S ...] [--flip] [--out F] [--plot PNG]`: a
    checkpoint, or a model directory / registry id / hf-hub id on any backend
    (`training.eval_cli`)."""
    from training.eval_cli import main

    return main(argv)
