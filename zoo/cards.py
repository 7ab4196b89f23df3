"""Model cards: `README.md` of a model directory and of each registry id (`model_cards/`).

Both kinds are rendered from one Jinja template, `zoo/assets/card_template.md`, into
`huggingface_hub` `ModelCard`s with `ModelCardData` YAML (license, library, tags, datasets,
pipeline tag) and a `model-index` built from `eval.json` with `EvalResult`. A card states only
numbers that `eval.json` measured (a model without one says "not trained yet"), shows how to
load the model it describes (its directory, its Hub repo, or by name when it ships in the
package), and no path of the machine that wrote it. Output is deterministic (no dates), so
committed cards can be checked against the generator.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.availability import HUB_PUBLISHED, hub_snapshot, is_packaged_dir
from zoo.config import ModelConfig
from zoo.eval_record import (
    METRICS,
    Rows,
    dataset_title,
    export_rows,
    measured_metrics,
    number,
    percent,
    portable,
    read_eval,
)
from zoo.fileio import write_text_atomic
from zoo.modelfiles import CARD_LISTED_FILES, CARD_NAME, CONFIG_NAME, ONNX_NAME
from zoo.registry import ARCHS, LOSSES, MODELS, get_spec

TEMPLATE = Path(__file__).resolve().parent / "assets" / "card_template.md"
MAX_LISTED_CLASSES = 30  # class names a card lists in its summary

PAPER_TITLE = "Convolution-based Probability Gradient Loss for Semantic Segmentation"
PAPER_ARXIV = "2404.06704"
PAPER_URL = f"https://arxiv.org/abs/{PAPER_ARXIV}"
BIBTEX = f"""@misc{{cpg_loss_2024,
  title         = {{{PAPER_TITLE}}},
  year          = {{2024}},
  eprint        = {{{PAPER_ARXIV}}},
  archivePrefix = {{arXiv}},
  url           = {{{PAPER_URL}}}
}}"""
LICENSE = "apache-2.0"
LIBRARY_NAME = "cpg-zoo"
PIPELINE_TAG = "image-segmentation"
TASK_NAME = "Semantic Segmentation"


# -- metadata -------------------------------------------------------------------------------
def card_data(
    model_id: str, arch: str, dataset: str, loss: str, eval_data: dict[str, Any] | None
) -> Any:
    """`ModelCardData` with tags and, where `eval_data` measured something, a model-index."""
    from huggingface_hub import EvalResult, ModelCardData

    results = []
    split = str((eval_data or {}).get("split") or "val")
    title = dataset_title(dataset)
    for key, value in measured_metrics(eval_data).items():
        results.append(
            EvalResult(
                task_type=PIPELINE_TAG,
                task_name=TASK_NAME,
                dataset_type=dataset,
                dataset_name=title,
                dataset_split=split,
                metric_type=key,
                metric_name=METRICS[key][0],
                metric_value=round(value, 6),
            )
        )
    tags = ["semantic-segmentation", "cpg-loss", "onnx", "safetensors", arch, dataset]
    if loss == "ce":
        tags.remove("cpg-loss")
        tags.insert(1, "cross-entropy")
    return ModelCardData(
        license=LICENSE,
        library_name=LIBRARY_NAME,
        pipeline_tag=PIPELINE_TAG,
        tags=tags,
        datasets=[dataset],
        metrics=["mean_iou"],
        model_name=model_id,
        eval_results=results or None,
    )


# -- what goes into a card ------------------------------------------------------------------
def _loss_text(loss: dict[str, Any]) -> str:
    name = str(loss.get("name", "ce"))
    if name != "cpg":
        return "cross-entropy (baseline)"
    settings = ", ".join(f"{k}={v}" for k, v in sorted(loss.items()) if k != "name")
    return f"cross-entropy + lambda * CPG ({settings})" if settings else "cross-entropy + CPG"


def _recipe_rows(recipe: dict[str, Any]) -> Rows:
    def fmt(value: Any) -> str:
        if isinstance(value, list | tuple):
            return " x ".join(str(v) for v in value) if value else "-"
        if value == "":
            return "-"
        return f"`{portable(str(value))}`"

    return [(f"`{key}`", fmt(value)) for key, value in recipe.items()]


def _cpg_rows(recipe: dict[str, Any], loss: dict[str, Any]) -> Rows:
    """CPG settings from config.json's `loss`, else the recipe's `cpg_*` fields."""
    rows = [(f"`{k}`", f"`{v}`") for k, v in sorted(loss.items()) if k != "name"]
    return rows or [(f"`{k}`", f"`{v}`") for k, v in recipe.items() if k.startswith("cpg_")]


def _usage(model_id: str, source: str, where: str, onnx: bool = True) -> dict[str, Any]:
    """How to load the model the card describes. `source`: "hub" (`where` is its repo id),
    "builtin" (ships in the package: by name) or "local" (`where` is its directory)."""
    if source == "hub":
        repo, _, revision = where.partition("@")
        registry = not revision and model_id in MODELS and MODELS[model_id].hub_repo == repo
        pin = f', revision="{revision}"' if revision else ""
        return {
            "load_name": model_id if registry else f"hf-hub:{where}",
            "load_comment": (
                f"from the Hub repo {repo} at commit {revision}"
                if revision
                else f'from the Hub repo {repo}; pin a revision with "hf-hub:{repo}@<commit '
                'sha or tag>"'
            ),
            "onnx_import": "from huggingface_hub import hf_hub_download",
            "onnx_path": f'hf_hub_download("{repo}", "model.onnx"{pin})',
            "onnx": onnx,
        }
    if source == "builtin":
        return {
            "load_name": model_id,
            "load_comment": "ships with the cpg-zoo package: loads offline by name",
            "onnx_import": "from zoo.availability import PACKAGED_MODELS_DIR",
            "onnx_path": f'str(PACKAGED_MODELS_DIR / "{model_id}" / "model.onnx")',
            "onnx": onnx,
        }
    return {
        "load_name": where,
        "load_comment": "this model directory (the folder of this README.md)",
        "onnx_import": "",
        "onnx_path": f'"{where}/model.onnx"',
        "onnx": onnx,
    }


def _directory_name(model_dir: Path) -> str:
    """How a card names its model directory: the path as given when relative, relative to
    the current directory when under it, else just the folder's name."""
    if not model_dir.is_absolute():
        return model_dir.as_posix()
    try:
        return model_dir.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return model_dir.name


def _results(eval_data: dict[str, Any], classes: list[str]) -> dict[str, Any]:
    """The Results section's values: measured metrics (%), per-class IoU, provenance."""
    raw = eval_data.get("metrics")
    raw = raw if isinstance(raw, dict) else {}
    metrics = [(METRICS[k][0], percent(v)) for k, v in measured_metrics(eval_data).items()]
    per_class_raw = raw.get("per_class_iou")
    per_class: Rows = []
    if isinstance(per_class_raw, list) and len(per_class_raw) == len(classes):
        for name, value in zip(classes, per_class_raw, strict=True):
            iou = number(value)
            per_class.append((name, percent(iou) if iou is not None else "n/a"))
    elif isinstance(per_class_raw, dict):
        per_class = [
            (str(k), percent(n)) for k, v in per_class_raw.items() if (n := number(v)) is not None
        ]
    tolerance = number(raw.get("boundary_tolerance_px"))
    labels = {"command": "command", "git_commit": "code commit", "checkpoint": "checkpoint"}
    provenance = [
        (label, f"`{portable(str(eval_data[key]))}`")
        for key, label in labels.items()
        if eval_data.get(key)
    ]
    return {
        "split": str(eval_data.get("split") or "val"),
        "tolerance": f"{tolerance:g}" if tolerance is not None else "",
        "metrics": metrics,
        "per_class": per_class,
        "provenance": provenance,
    }


def _render(context: dict[str, Any]) -> Any:
    """The `ModelCard` of the template filled with `context`."""
    import jinja2
    from huggingface_hub import ModelCard

    environment = jinja2.Environment(
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,  # a missing value is an error, not an empty cell
        autoescape=False,  # Markdown, not HTML
    )
    common = {
        "paper_title": PAPER_TITLE,
        "paper_arxiv": PAPER_ARXIV,
        "paper_url": PAPER_URL,
        "bibtex": BIBTEX,
    }
    text = environment.from_string(TEMPLATE.read_text()).render(**common, **context)
    text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"  # one blank line between blocks
    return ModelCard(text)


def _base_context(model_id: str, arch: str, dataset: str, loss: str) -> dict[str, Any]:
    """What every card says of a model: title, arch, dataset, loss; empty sections."""
    return {
        "model_id": model_id,
        "arch_title": ARCHS.get(arch, arch),
        "dataset_title": dataset_title(dataset),
        "loss_title": LOSSES.get(loss, loss),
        "planned": False,
        "trained": False,
        "metrics": [],
        "per_class": [],
        "provenance": [],
        "export": [],
        "split": "val",
        "tolerance": "",
        "cpg_settings": [],
        "build": None,
    }


# -- whole cards ----------------------------------------------------------------------------
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
    context = _base_context(model_id, config.arch, config.dataset, loss_name)
    title = context["dataset_title"]
    summary = [
        ("architecture", f"{context['arch_title']} (`{config.arch}`)"),
        ("dataset", f"{title} (`{config.dataset}`), {config.num_classes} classes"),
        ("loss", _loss_text(config.loss)),
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
        usage = _usage(model_id, "hub", repo_id, onnx)
    elif builtin or (model_dir is not None and is_packaged_dir(model_dir)):
        usage = _usage(model_id, "builtin", model_id, onnx)
    else:
        where = _directory_name(Path(model_dir)) if model_dir is not None else model_id
        usage = _usage(model_id, "local", where, onnx)
    context |= usage | {
        "card_data": data.to_yaml(),
        "summary": summary,
        "trained": eval_data is not None,
        "mean": list(config.mean),
        "std": list(config.std),
        "recipe": _recipe_rows(config.recipe),
        "recipe_source": "Recipe (`config.json` -> `recipe`)",
        "cpg_settings": _cpg_rows(config.recipe, config.loss) if loss_name == "cpg" else [],
    }
    if eval_data is not None:
        context |= _results(eval_data, config.classes)
        context["export"] = export_rows(eval_data.get("export"))
        build = eval_data.get("build")
        if isinstance(build, dict) and build.get("command"):
            context["build"] = {
                "description": portable(str(build.get("description") or "")),
                "command": portable(str(build["command"])),
                "commit": str(build.get("git_commit", "?")),
            }
    return _render(context)


def _present_files(directory: Path) -> list[str]:
    return [n for n in CARD_LISTED_FILES if (directory / n).is_file()]


def write_card(model_dir: str | Path, repo_id: str | None = None, builtin: bool = False) -> Path:
    """Write `model_dir/README.md` from its `config.json` and `eval.json` (atomically).

    `repo_id`: the Hub repo the usage loads from; `builtin`: the directory is a staging copy
    of a model that will ship in the package (usage loads it by name)."""
    directory = Path(model_dir)
    config = ModelConfig.load(directory)
    files = _present_files(directory)
    card = render_card(config, read_eval(directory), files, repo_id, directory, builtin)
    path = directory / CARD_NAME
    write_text_atomic(path, str(card))
    return path


def card_for_repo(model_dir: str | Path, repo_id: str) -> bool:
    """Before a push to `repo_id`: write the card whose usage loads from that repo, when
    `model_dir` has no card or the one `zoo card` generated for the local directory (its usage
    would load a local path on the Hub). A hand-edited card is kept. True if written."""
    directory = Path(model_dir)
    path = directory / CARD_NAME
    if path.is_file():
        config = ModelConfig.load(directory)
        local = render_card(
            config, read_eval(directory), _present_files(directory), None, directory
        )
        if path.read_text() != str(local):
            return False
    write_card(directory, repo_id=repo_id)
    return True


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
    context = _base_context(model_id, spec.arch, spec.dataset, spec.loss)
    usage = _usage(model_id, "hub", spec.hub_repo)
    if model_id not in HUB_PUBLISHED:
        usage["load_comment"] = usage["load_comment"].replace("; pin", " once published; pin")
    context |= usage | {
        "card_data": card_data(model_id, spec.arch, spec.dataset, spec.loss, None).to_yaml(),
        "planned": True,
        "summary": [
            ("architecture", f"{ARCHS[spec.arch]} (`{spec.arch}`)"),
            ("dataset", f"{info.title} (`{spec.dataset}`), {spec.num_classes} classes"),
            ("loss", _loss_text(loss)),
            ("Hub repo", f"`{spec.hub_repo}` ({published})"),
        ],
        "mean": list(info.mean),
        "std": list(info.std),
        "recipe": _recipe_rows(recipe),
        "recipe_source": f"Planned recipe (from {source})",
    }
    return _render(context)


def generate_registry_cards(
    out_dir: str | Path = "model_cards",
    models_root: str | Path | None = None,
    recipe_of: Callable[[str], dict[str, Any]] | None = None,
) -> list[Path]:
    """Write `out_dir/<id>/README.md` for all registry ids; return the paths.

    An id with a model directory `models_root/<id>/` (config.json) gets that directory's card
    (its eval.json numbers; usage from its Hub repo); the others get the "not trained yet"
    card of `registry_card`, with the recipe `recipe_of(id)` when given.
    """
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
