"""Model cards: `README.md` of a model directory and of each registry id (`model_cards/`).

Cards are `huggingface_hub` `ModelCard`s with `ModelCardData` YAML (license, library, tags,
datasets, pipeline tag) and a `model-index` built from `eval.json` with `EvalResult`. A card
states only numbers that `eval.json` measured; a model without one says "not trained yet".
Output is deterministic (no dates), so committed cards can be checked against the generator.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.config import (
    CARD_NAME,
    CONFIG_NAME,
    EVAL_NAME,
    ONNX_FP16_NAME,
    ONNX_INT8_NAME,
    ONNX_NAME,
    WEIGHTS_NAME,
    ModelConfig,
    read_json_object,
    write_text_atomic,
)
from zoo.loading import packaged_models
from zoo.registry import ARCHS, LOSSES, MODELS, get_spec

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

# Card metric -> (display name, keys eval.json may use for it under "metrics"), in card order.
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "mIoU": ("mIoU", ("mIoU", "miou", "mean_iou")),
    "pixel_accuracy": ("pixel accuracy", ("pixel_accuracy", "pixel_acc", "aAcc")),
    "mean_accuracy": ("mean class accuracy", ("mean_accuracy", "mean_acc", "mAcc")),
    "boundary_f": ("boundary F", ("boundary_f", "mBF", "boundary_f_score")),
    "boundary_iou": ("boundary IoU", ("boundary_iou", "mBIoU")),
}
ONNX_FILES = (ONNX_NAME, ONNX_INT8_NAME, ONNX_FP16_NAME)


# -- eval.json ------------------------------------------------------------------------------
def read_eval(model_dir: str | Path) -> dict[str, Any] | None:
    """`eval.json` of a model directory, or None if absent; a malformed one is an error."""
    path = Path(model_dir) / EVAL_NAME
    return read_json_object(path) if path.is_file() else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def measured_metrics(eval_data: dict[str, Any] | None) -> dict[str, float]:
    """The card metrics `eval_data["metrics"]` holds as finite numbers (missing = not measured)."""
    metrics = (eval_data or {}).get("metrics")
    if not isinstance(metrics, dict):
        return {}
    found = {}
    for key, (_, aliases) in METRICS.items():
        for alias in aliases:
            value = _number(metrics.get(alias))
            if value is not None:
                found[key] = value
                break
    return found


def _percent(value: float) -> str:
    return f"{value * 100:.2f}" if value <= 1.0 else f"{value:.2f}"


# -- metadata -------------------------------------------------------------------------------
def card_data(
    model_id: str, arch: str, dataset: str, loss: str, eval_data: dict[str, Any] | None
) -> Any:
    """`ModelCardData` with tags and, where `eval_data` measured something, a model-index."""
    from huggingface_hub import EvalResult, ModelCardData

    results = []
    split = str((eval_data or {}).get("split") or "val")
    dataset_title = get_spec_title(dataset)
    for key, value in measured_metrics(eval_data).items():
        results.append(
            EvalResult(
                task_type=PIPELINE_TAG,
                task_name=TASK_NAME,
                dataset_type=dataset,
                dataset_name=dataset_title,
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


def get_spec_title(dataset: str) -> str:
    from zoo.datasets import get_dataset_info

    return get_dataset_info(dataset).title


# -- body sections --------------------------------------------------------------------------
def _loss_text(loss: dict[str, Any]) -> str:
    name = str(loss.get("name", "ce"))
    if name != "cpg":
        return "cross-entropy (baseline)"
    settings = ", ".join(f"{k}={v}" for k, v in sorted(loss.items()) if k != "name")
    return f"cross-entropy + lambda * CPG ({settings})" if settings else "cross-entropy + CPG"


def _table(rows: list[tuple[str, str]], header: tuple[str, str] = ("", "")) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in rows]
    return "\n".join(lines)


def _recipe_rows(recipe: dict[str, Any]) -> list[tuple[str, str]]:
    def fmt(value: Any) -> str:
        if isinstance(value, list | tuple):
            return " x ".join(str(v) for v in value) if value else "-"
        return f"`{value}`"

    return [(f"`{key}`", fmt(value)) for key, value in recipe.items()]


def _cpg_rows(recipe: dict[str, Any], loss: dict[str, Any]) -> list[tuple[str, str]]:
    """CPG settings from config.json's `loss`, else the recipe's `cpg_*` fields."""
    rows = [(f"`{k}`", f"`{v}`") for k, v in sorted(loss.items()) if k != "name"]
    return rows or [(f"`{k}`", f"`{v}`") for k, v in recipe.items() if k.startswith("cpg_")]


def _usage(model_id: str, repo: str | None, mean: list[float], std: list[float]) -> str:
    """Usage with `zoo.load` and with plain ONNX Runtime; from the Hub when the model has a
    repo (registry id or `repo_id`), else from its local directory."""
    if repo is None and model_id in packaged_models():
        load_name, where = model_id, "shipped in the cpg-zoo package: loads offline by name"
        onnx_source = f'path = str(PACKAGED_MODELS_DIR / "{model_id}" / "model.onnx")'
        hub_import = "from zoo.loading import PACKAGED_MODELS_DIR\n"
    elif repo is None:
        load_name, where = f"path/to/{model_id}", "a local model directory (this folder)"
        onnx_source = f'path = "path/to/{model_id}/model.onnx"'
        hub_import = ""
    else:
        load_name = model_id if model_id in MODELS else f"hf-hub:{repo}"
        where = f'a registry id, "hf-hub:{repo}@<commit sha or tag>" (pinned) or a local directory'
        onnx_source = f'path = hf_hub_download("{repo}", "model.onnx")'
        hub_import = "from huggingface_hub import hf_hub_download\n"
    return f"""## Usage

With the zoo (`pip install cpg-zoo`; ONNX Runtime backend, no torch needed):

```python
import zoo

# {where}
model = zoo.load("{load_name}")
mask = model.predict("street.png")  # H x W array of class ids
```

With plain ONNX Runtime (the model takes float32 NCHW images normalised with the mean/std of
`config.json` and returns logits at the input size):

```python
import numpy as np
import onnxruntime as ort
{hub_import}from PIL import Image

{onnx_source}
session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
mean = np.array({list(mean)}, dtype=np.float32)
std = np.array({list(std)}, dtype=np.float32)
image = np.asarray(Image.open("street.png").convert("RGB"), dtype=np.float32) / 255.0
x = ((image - mean) / std).transpose(2, 0, 1)[None]  # 1 x 3 x H x W
logits = session.run(None, {{session.get_inputs()[0].name: x}})[0]
mask = logits[0].argmax(0)  # H x W class ids
```
"""


def _limitations(dataset_title: str, trained: bool) -> str:
    lines = [
        "## Limitations",
        "",
        f"- Made for the {dataset_title} label set only; other domains (camera, weather, "
        "country, indoor vs outdoor) can degrade it sharply. Validate on your own data first.",
        "- Reported numbers come from one training run and the evaluation settings in "
        "`eval.json`; re-training or another inference mode (window, flip) shifts them.",
        "- The int8 ONNX variant, where present, trades accuracy for CPU speed (its accuracy, "
        "if measured, is in `eval.json`); fp16 ONNX is meant for GPUs.",
        "- Not for safety-critical use (e.g. driving decisions) without further validation.",
    ]
    if not trained:
        lines.insert(2, "- **Not trained yet**: this card describes a planned model.")
    return "\n".join(lines)


def _citation() -> str:
    return (
        "## Citation\n\nThe CPG loss is from the paper "
        f'"{PAPER_TITLE}" ([arXiv:{PAPER_ARXIV}]({PAPER_URL})):\n\n'
        f"```bibtex\n{BIBTEX}\n```\n"
    )


def _results(eval_data: dict[str, Any], classes: list[str]) -> str:
    metrics = measured_metrics(eval_data)
    split = eval_data.get("split") or "val"
    lines = ["## Results", ""]
    if not metrics:
        lines.append("`eval.json` holds no measured metric yet.")
        return "\n".join(lines) + "\n"
    raw = eval_data.get("metrics", {})
    rows = [(METRICS[key][0], _percent(value)) for key, value in metrics.items()]
    tolerance = _number(raw.get("boundary_tolerance_px"))
    lines.append(
        f"Measured on the {split} split (values in %"
        + (f"; boundary metrics at {tolerance:g} px tolerance" if tolerance is not None else "")
        + "):"
    )
    lines += ["", _table(rows, ("metric", "value"))]
    per_class = raw.get("per_class_iou")
    if isinstance(per_class, list) and len(per_class) == len(classes):
        pairs = [(name, _number(v)) for name, v in zip(classes, per_class, strict=True)]
        body = [(name, _percent(v) if v is not None else "n/a") for name, v in pairs]
        lines += ["", "<details><summary>per-class IoU</summary>", ""]
        lines += [_table(body, ("class", "IoU %")), "", "</details>"]
    elif isinstance(per_class, dict):
        body = [
            (str(k), _percent(n)) for k, v in per_class.items() if (n := _number(v)) is not None
        ]
        lines += ["", "<details><summary>per-class IoU</summary>", ""]
        lines += [_table(body, ("class", "IoU %")), "", "</details>"]
    provenance = [
        (label, f"`{eval_data[key]}`")
        for key, label in (
            ("command", "command"),
            ("git_commit", "code commit"),
            ("checkpoint", "checkpoint"),
        )
        if eval_data.get(key)
    ]
    if provenance:
        lines += ["", "Produced by:", "", _table(provenance, ("", ""))]
    export = eval_data.get("export")
    if isinstance(export, dict) and export:
        lines += [
            "",
            "Export report (from `eval.json`):",
            "",
            "```json",
            json.dumps(export, indent=2, sort_keys=True),
            "```",
        ]
    return "\n".join(lines) + "\n"


# -- whole cards ----------------------------------------------------------------------------
def render_card(
    config: ModelConfig,
    eval_data: dict[str, Any] | None,
    files: list[str] | None = None,
    repo_id: str | None = None,
) -> Any:
    """The `ModelCard` of a model directory's config and eval.json."""
    from huggingface_hub import ModelCard

    model_id = config.model_id or f"{config.arch}_{config.dataset}_{config.loss.get('name', 'ce')}"
    loss_name = str(config.loss.get("name", "ce"))
    repo = repo_id or (MODELS[model_id].hub_repo if model_id in MODELS else None)
    data = card_data(model_id, config.arch, config.dataset, loss_name, eval_data)
    dataset_title = get_spec_title(config.dataset)
    trained = eval_data is not None
    summary = [
        ("architecture", f"{ARCHS.get(config.arch, config.arch)} (`{config.arch}`)"),
        ("dataset", f"{dataset_title} (`{config.dataset}`), {config.num_classes} classes"),
        ("loss", _loss_text(config.loss)),
        ("input", f"RGB, normalised with mean {config.mean} and std {config.std}"),
        (
            "input size",
            " x ".join(str(v) for v in config.input_size) + " (H x W; default window)",
        ),
        ("ignore index", str(config.ignore_index)),
    ]
    if files:
        summary.append(("files", ", ".join(f"`{name}`" for name in files)))
    if config.source_commit:
        summary.append(("source commit", f"`{config.source_commit}`"))
    sections = [
        f"# {model_id}\n",
        f"{ARCHS.get(config.arch, config.arch)} for semantic segmentation on {dataset_title}, "
        f"trained with {LOSSES.get(loss_name, loss_name)} from the "
        f"[CPG loss paper]({PAPER_URL}). Part of the cpg-zoo model zoo.\n",
        _table(summary, ("", "")) + "\n",
        _results(eval_data, config.classes) if trained else _not_trained_text(),
        _usage(model_id, repo, config.mean, config.std),
        "## Training\n",
    ]
    if config.recipe:
        sections.append(
            "Recipe (`config.json` -> `recipe`):\n\n"
            + _table(_recipe_rows(config.recipe), ("setting", "value"))
            + "\n"
        )
    else:
        sections.append("`config.json` records no training recipe.\n")
    cpg = _cpg_rows(config.recipe, config.loss)
    if loss_name == "cpg" and cpg:
        sections.append("CPG settings:\n\n" + _table(cpg, ("setting", "value")) + "\n")
    sections += [_limitations(dataset_title, trained) + "\n", _citation()]
    build = (eval_data or {}).get("build")
    if isinstance(build, dict) and build.get("command"):
        sections.append(_build_section(build))
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(sections))


def _build_section(build: dict[str, Any]) -> str:
    """How the model directory was built end to end (eval.json -> `build`, written by build
    scripts such as scripts/build_default_model.sh)."""
    lines = ["## Rebuilding this model\n"]
    if build.get("description"):
        lines.append(f"{build['description']}\n")
    lines.append(f"From the repository root (code commit `{build.get('git_commit', '?')}`):\n")
    lines.append(f"```bash\n{build['command']}\n```\n")
    return "\n".join(lines)


def _not_trained_text() -> str:
    return (
        "## Results\n\n**Not trained yet.** No `eval.json` exists for this model, so no metric "
        "is reported.\n"
    )


def write_card(model_dir: str | Path, repo_id: str | None = None) -> Path:
    """Write `model_dir/README.md` from its `config.json` and `eval.json` (atomically)."""
    directory = Path(model_dir)
    config = ModelConfig.load(directory)
    eval_data = read_eval(directory)
    present = [n for n in (WEIGHTS_NAME, *ONNX_FILES) if (directory / n).is_file()]
    card = render_card(config, eval_data, files=present, repo_id=repo_id)
    path = directory / CARD_NAME
    write_text_atomic(path, str(card))
    return path


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
    from huggingface_hub import ModelCard

    spec = get_spec(model_id)
    source = "`training.recipes`" if recipe is not None else "the registry (`zoo.registry`)"
    recipe = recipe if recipe is not None else _spec_recipe(model_id)
    data = card_data(model_id, spec.arch, spec.dataset, spec.loss, None)
    title = spec.dataset_info.title
    info = spec.dataset_info
    loss: dict[str, Any] = {"name": spec.loss}
    if spec.loss == "cpg":
        loss |= {k.removeprefix("cpg_"): v for k, v in recipe.items() if k.startswith("cpg_")}
    summary = [
        ("architecture", f"{ARCHS[spec.arch]} (`{spec.arch}`)"),
        ("dataset", f"{title} (`{spec.dataset}`), {spec.num_classes} classes"),
        ("loss", _loss_text(loss)),
        ("Hub repo", f"`{spec.hub_repo}` (not published yet)"),
    ]
    sections = [
        f"# {model_id}\n",
        f"{ARCHS[spec.arch]} for semantic segmentation on {title}, to be trained with "
        f"{LOSSES[spec.loss]} from the [CPG loss paper]({PAPER_URL}). Part of the cpg-zoo "
        "model zoo.\n",
        _table(summary, ("", "")) + "\n",
        _not_trained_text().replace(
            "no metric is reported.",
            "no metric is reported and no weights are published. Train it with "
            f"`zoo train {model_id}`, export it with `zoo export`, then regenerate this card "
            "from the model directory with `zoo card MODEL_DIR`.",
        ),
        _usage(model_id, spec.hub_repo, list(info.mean), list(info.std)),
        "## Training\n",
        f"Planned recipe (from {source}):\n\n"
        + _table(_recipe_rows(recipe), ("setting", "value"))
        + "\n",
        _limitations(title, trained=False) + "\n",
        _citation(),
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(sections))


def generate_registry_cards(
    out_dir: str | Path = "model_cards",
    models_root: str | Path | None = None,
    recipe_of: Callable[[str], dict[str, Any]] | None = None,
) -> list[Path]:
    """Write `out_dir/<id>/README.md` for all registry ids; return the paths.

    An id with a model directory `models_root/<id>/` (config.json) gets that directory's card
    (its eval.json numbers); the others get the "not trained yet" card of `registry_card`,
    with the recipe `recipe_of(id)` when given.
    """
    paths = []
    for model_id in sorted(MODELS):
        model_dir = Path(models_root) / model_id if models_root is not None else None
        if model_dir is not None and (model_dir / CONFIG_NAME).is_file():
            config = ModelConfig.load(model_dir)
            present = [n for n in (WEIGHTS_NAME, *ONNX_FILES) if (model_dir / n).is_file()]
            card = render_card(config, read_eval(model_dir), files=present)
        else:
            card = registry_card(model_id, recipe_of(model_id) if recipe_of else None)
        path = Path(out_dir) / model_id / CARD_NAME
        write_text_atomic(path, str(card))
        paths.append(path)
    return paths
