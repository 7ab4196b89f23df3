"""Model cards: `README.md` of a model directory and of each registry id (`model_cards/`).

Both kinds are rendered from one Jinja template, `zoo/assets/card_template.md`, into
`huggingface_hub` `ModelCard`s with `ModelCardData` YAML (license, library, tags, datasets,
pipeline tag) and a `model-index` built from `eval.json` with `EvalResult` (the parts:
`zoo.card_parts`). A card states only
numbers that `eval.json` measured (a model without one says "not trained yet"), shows how to
load the model it describes (its directory, its Hub repo, or by name when it ships in the
package), and no path of the machine that wrote it. Output is deterministic (no dates), so
committed cards can be checked against the generator.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.availability import HUB_PUBLISHED, hub_snapshot, is_packaged_dir
from zoo.card_parts import (
    LIBRARY_NAME,
    base_context,
    card_data,
    cpg_rows,
    loss_text,
    recipe_rows,
    render,
    results_section,
    usage_context,
)
from zoo.config import ModelConfig
from zoo.eval_record import export_rows, portable, read_eval
from zoo.fileio import write_text_atomic
from zoo.modelfiles import CARD_LISTED_FILES, CARD_NAME, CONFIG_NAME, ONNX_NAME
from zoo.registry import ARCHS, MODELS, get_spec

MAX_LISTED_CLASSES = 30  # class names a card lists in its summary


def _directory_name(model_dir: Path) -> str:
    """How a card names its model directory: the path as given when relative, relative to
    the current directory when under it, else just the folder's name."""
    if not model_dir.is_absolute():
        return model_dir.as_posix()
    try:
        return model_dir.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return model_dir.name


def render_card(
    config: ModelConfig,
    eval_data: dict[str, Any] | None,
    files: list[str] | None = None,
    repo_id: str | None = None,
    model_dir: str | Path | None = None,
    builtin: bool = False,
) -> Any:
    """The `ModelCard` of a model directory's config and eval.json.

    Its usage loads this model: from Hub repo `repo_id` when given, by name when it ships in
    the package (`builtin`, or `model_dir` is a directory of the package), else from
    `model_dir` (default: the model id's folder)."""
    model_id = config.model_id or f"{config.arch}_{config.dataset}_{config.loss.get('name', 'ce')}"
    loss_name = str(config.loss.get("name", "ce"))
    data = card_data(model_id, config.arch, config.dataset, loss_name, eval_data)
    context = base_context(model_id, config.arch, config.dataset, loss_name)
    title = context["dataset_title"]
    summary = [
        ("architecture", f"{context['arch_title']} (`{config.arch}`)"),
        ("dataset", f"{title} (`{config.dataset}`), {config.num_classes} classes"),
        ("loss", loss_text(config.loss)),
        ("input", f"RGB, normalised with mean {config.mean} and std {config.std}"),
        ("input size", " x ".join(map(str, config.input_size)) + " (H x W; default window)"),
        ("ignore index", str(config.ignore_index)),
    ]
    if files:
        summary.append(("files", ", ".join(f"`{name}`" for name in files)))
    if config.source_commit:
        summary.append(("source commit", f"`{config.source_commit}`"))
    shown = ", ".join(config.classes[:MAX_LISTED_CLASSES])
    more = f", ... ({len(config.classes) - MAX_LISTED_CLASSES} more)" * (
        len(config.classes) > MAX_LISTED_CLASSES
    )
    summary.append(("classes", f"{config.num_classes}: {shown}{more}"))
    onnx = not files or ONNX_NAME in files  # no snippet for a torch-only directory
    snapshot = hub_snapshot(model_dir) if model_dir is not None else None
    if repo_id is None and snapshot is not None:  # a Hub download: name its exact revision
        repo_id = f"{snapshot[0]}@{snapshot[1]}"
        summary.append(("Hub revision", f"`{snapshot[0]}` at commit `{snapshot[1]}`"))
    if repo_id is not None:
        usage = usage_context(model_id, "hub", repo_id, onnx)
    elif builtin or (model_dir is not None and is_packaged_dir(model_dir)):
        usage = usage_context(model_id, "builtin", model_id, onnx)
        context["zoo_model"] = True  # ships in the package: loads by name, like a registry id
    else:
        where = _directory_name(Path(model_dir)) if model_dir is not None else model_id
        usage = usage_context(model_id, "local", where, onnx)
    context |= usage | {
        "card_data": data.to_yaml(),
        "summary": summary,
        "trained": eval_data is not None,
        "mean": list(config.mean),
        "std": list(config.std),
        "recipe": recipe_rows(config.recipe),
        "recipe_source": "Recipe (`config.json` -> `recipe`)",
        "cpg_settings": cpg_rows(config.recipe, config.loss) if loss_name == "cpg" else [],
    }
    if eval_data is not None:
        context |= results_section(eval_data, config.classes)
        context["export"] = export_rows(eval_data.get("export"))
        build = eval_data.get("build")
        if isinstance(build, dict) and build.get("command"):
            context["build"] = {
                "description": portable(str(build.get("description") or "")),
                "command": portable(str(build["command"])),
                "commit": str(build.get("git_commit", "?")),
            }
    return render(context)


def _present_files(directory: Path) -> list[str]:
    return [n for n in CARD_LISTED_FILES if (directory / n).is_file()]


def is_zoo_card(path: Path) -> bool:
    """Whether the README.md at `path` is a cpg-zoo card (its YAML names the library)."""
    from huggingface_hub.repocard import metadata_load
    from yaml import YAMLError  # huggingface_hub's YAML parser (PyYAML)

    try:
        metadata = metadata_load(path)
    except (ValueError, YAMLError):  # front matter that is not a YAML mapping
        return False
    return metadata is not None and metadata.get("library_name") == LIBRARY_NAME


def write_card(
    model_dir: str | Path,
    repo_id: str | None = None,
    builtin: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write `model_dir/README.md` from its `config.json` and `eval.json` (atomically).

    `repo_id`: the Hub repo the usage loads from; `builtin`: the directory is a staging copy
    of a model that will ship in the package (usage loads it by name). A README.md that is
    not a cpg-zoo card (say, written by hand) is kept: ValueError unless `overwrite`."""
    from huggingface_hub.utils import validate_repo_id

    if repo_id is not None:
        validate_repo_id(repo_id)  # the usage snippets would load a repo that cannot exist
    directory = Path(model_dir)
    config = ModelConfig.load(directory)
    path = directory / CARD_NAME
    if path.is_file() and not overwrite and not is_zoo_card(path):
        raise ValueError(
            f"{path} is not a cpg-zoo card (no 'library_name: {LIBRARY_NAME}' in its YAML "
            "header), so it was kept: move it away, or pass --overwrite to replace it"
        )
    files = _present_files(directory)
    card = render_card(config, read_eval(directory), files, repo_id, directory, builtin)
    write_text_atomic(path, str(card))
    return path


def repo_card_text(model_dir: str | Path, repo_id: str) -> str | None:
    """The card a push of `model_dir` to `repo_id` uploads in place of its README.md: one
    whose usage loads from that repo, when the directory has no card or the one `zoo card`
    generated for the local directory (its usage would load a local path on the Hub). None
    when the card is hand-edited: it goes up as it is. Writes nothing: the directory's own
    card keeps describing the directory."""
    directory = Path(model_dir)
    path = directory / CARD_NAME
    config = ModelConfig.load(directory)
    eval_data, files = read_eval(directory), _present_files(directory)
    if path.is_file():
        local = render_card(config, eval_data, files, None, directory)
        if path.read_text() != str(local):
            return None
    return str(render_card(config, eval_data, files, repo_id, directory))


def _spec_recipe(model_id: str) -> dict[str, Any]:
    """What the registry alone knows of a model's training: arch, dataset, loss, crop."""
    spec = get_spec(model_id)
    height, width = spec.input_size
    return {
        "arch": spec.arch,
        "dataset": spec.dataset,
        "loss": spec.loss,
        "crop_size": [height, width],
    }


def registry_card(model_id: str, recipe: dict[str, Any] | None = None) -> Any:
    """The card of a registry id that has no trained model directory: recipe, no metrics.

    `recipe` is the planned training recipe (`training.recipes.get_recipe(id).to_dict()`,
    passed in by the caller: `zoo` does not import the producers); without it the card shows
    what the registry knows (arch, dataset, loss, crop)."""
    spec = get_spec(model_id)
    source = "`training.recipes`" if recipe is not None else "the registry (`zoo.registry`)"
    recipe = recipe if recipe is not None else _spec_recipe(model_id)
    info = spec.dataset_info
    loss: dict[str, Any] = {"name": spec.loss}
    if spec.loss == "cpg":
        loss |= {k.removeprefix("cpg_"): v for k, v in recipe.items() if k.startswith("cpg_")}
    published = "published" if model_id in HUB_PUBLISHED else "not published yet"
    context = base_context(model_id, spec.arch, spec.dataset, spec.loss)
    usage = usage_context(model_id, "hub", spec.hub_repo)
    if model_id not in HUB_PUBLISHED:
        usage["load_comment"] = usage["load_comment"].replace("; pin", " once published; pin")
    context |= usage | {
        "card_data": card_data(model_id, spec.arch, spec.dataset, spec.loss, None).to_yaml(),
        "planned": True,
        "summary": [
            ("architecture", f"{ARCHS[spec.arch]} (`{spec.arch}`)"),
            ("dataset", f"{info.title} (`{spec.dataset}`), {spec.num_classes} classes"),
            ("loss", loss_text(loss)),
            ("Hub repo", f"`{spec.hub_repo}` ({published})"),
        ],
        "mean": list(info.mean),
        "std": list(info.std),
        "recipe": recipe_rows(recipe),
        "recipe_source": f"Planned recipe (from {source})",
    }
    return render(context)


def generate_registry_cards(
    out_dir: str | Path = "model_cards",
    models_root: str | Path | None = None,
    recipe_of: Callable[[str], dict[str, Any]] | None = None,
) -> list[Path]:
    """Write `out_dir/<id>/README.md` for all registry ids; return the paths.

    An id with a model directory `models_root/<id>/` (config.json) gets that directory's card
    (its eval.json numbers; usage from its Hub repo); the others get the "not trained yet"
    card of `registry_card`, with the recipe `recipe_of(id)` when given. ValueError, before
    anything is written, when `out_dir` is a file or `models_root` is not a folder.
    """
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ValueError(
            f"the output folder {out_dir} is a file, not a folder: the cards go to "
            f"{out_dir}/<id>/{CARD_NAME}; give a folder"
        )
    if models_root is not None and not Path(models_root).is_dir():
        raise ValueError(
            f"the models root {models_root} is not a folder: it should hold model directories "
            "named by id"
        )
    paths = []
    for model_id in sorted(MODELS):
        model_dir = Path(models_root) / model_id if models_root is not None else None
        if model_dir is not None and (model_dir / CONFIG_NAME).is_file():
            config = ModelConfig.load(model_dir)
            files = _present_files(model_dir)
            card = render_card(config, read_eval(model_dir), files, MODELS[model_id].hub_repo)
        else:
            card = registry_card(model_id, recipe_of(model_id) if recipe_of else None)
        path = Path(out_dir) / model_id / CARD_NAME
        write_text_atomic(path, str(card))
        paths.append(path)
    return paths
