"""The parts of a model card: its YAML metadata, the rows and usage snippet of each section,
and the rendering of the one Jinja template, `zoo/assets/card_template.md`, into a
`huggingface_hub` `ModelCard`. `zoo.cards` puts them together into whole cards (of a model
directory or of a registry id)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from zoo.eval_record import (
    METRICS,
    Rows,
    dataset_title,
    measured_metrics,
    number,
    percent,
    portable,
)
from zoo.registry import ARCHS, LOSSES, MODELS

TEMPLATE = Path(__file__).resolve().parent / "assets" / "card_template.md"

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
def loss_text(loss: dict[str, Any]) -> str:
    """The loss in words, with its CPG settings (config.json's `loss`)."""
    name = str(loss.get("name", "ce"))
    if name != "cpg":
        return "cross-entropy (baseline)"
    settings = ", ".join(f"{k}={v}" for k, v in sorted(loss.items()) if k != "name")
    return f"cross-entropy + lambda * CPG ({settings})" if settings else "cross-entropy + CPG"


def recipe_rows(recipe: dict[str, Any]) -> Rows:
    """The Recipe table: one (`key`, value) row per field, paths made portable."""

    def fmt(value: Any) -> str:
        if isinstance(value, list | tuple):
            return " x ".join(str(v) for v in value) if value else "-"
        if value == "":
            return "-"
        return f"`{portable(str(value))}`"

    return [(f"`{key}`", fmt(value)) for key, value in recipe.items()]


def cpg_rows(recipe: dict[str, Any], loss: dict[str, Any]) -> Rows:
    """CPG settings from config.json's `loss`, else the recipe's `cpg_*` fields."""
    rows = [(f"`{k}`", f"`{v}`") for k, v in sorted(loss.items()) if k != "name"]
    return rows or [(f"`{k}`", f"`{v}`") for k, v in recipe.items() if k.startswith("cpg_")]


def usage_context(model_id: str, source: str, where: str, onnx: bool = True) -> dict[str, Any]:
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


def results_section(eval_data: dict[str, Any], classes: list[str]) -> dict[str, Any]:
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


def render(context: dict[str, Any]) -> Any:
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


def is_registry_model(model_id: str, arch: str, dataset: str, loss: str) -> bool:
    """Whether a model is one of the zoo's: a registry id, with that id's arch, dataset and
    loss (a user's model that merely borrows the name is not)."""
    spec = MODELS.get(model_id)
    return spec is not None and (spec.arch, spec.dataset, spec.loss) == (arch, dataset, loss)


def base_context(model_id: str, arch: str, dataset: str, loss: str) -> dict[str, Any]:
    """What every card says of a model: title, arch, dataset, loss, whether it is one of the
    zoo's models (`zoo_model`: "Part of the cpg-zoo model zoo"); empty sections."""
    return {
        "model_id": model_id,
        "zoo_model": is_registry_model(model_id, arch, dataset, loss),
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
