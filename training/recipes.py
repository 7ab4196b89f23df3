"""Training recipes: one `Recipe` per registry id, plus SynthCity recipes for CPU experiments.

A recipe is built from the dataset's defaults (`DatasetInfo.recipe`: crop, batch, schedule, as
in public practice, MMSegmentation's 80k/160k schedules) and the arch's values on top
(`Architecture.recipe`). Every arch gets SynthCity recipes; only published archs get recipes
on the published datasets (those are the registry ids). A `cpg` recipe differs from its
`ce` twin only in the loss (`cpg_lambda`). `apply_overrides` turns `key=value` strings from
the command line into a new recipe, type-checked against the dataclass.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, fields
from typing import Any

from zoo.archs import ARCHITECTURES
from zoo.datasets import DATASETS
from zoo.lookup import lookup, unknown_name_error
from zoo.registry import LOSSES

# The CPG weight used by every `cpg` recipe. The paper adds CPG to cross-entropy with weights
# of order 1; 1.0 keeps both terms at a comparable scale at the start of training.
DEFAULT_CPG_LAMBDA = 1.0

AMP_MODES = ("none", "bf16", "fp16")
EVAL_MODES = ("whole", "slide")
# Fields a recipe is defined by; change the recipe name instead of overriding them.
FIXED_FIELDS = ("name", "arch", "dataset", "loss")


@dataclass(frozen=True)
class Recipe:
    """Everything `training.trainer` needs to train one model (hyper-parameters, no paths).

    `batch_size` is the global batch of one optimizer step, summed over processes and
    gradient-accumulation steps; it must divide by `world_size * grad_accum`.
    """

    name: str
    arch: str
    dataset: str
    loss: str  # "ce" or "cpg"
    crop_size: tuple[int, int]  # height, width
    batch_size: int
    iterations: int
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    min_lr: float = 1e-4
    warmup_iters: int = 1000
    warmup_ratio: float = 0.1  # LR at iteration 0 = lr * warmup_ratio, linear up to lr
    aux_loss: bool = False
    aux_weight: float = 0.4
    cpg_lambda: float = 0.0
    cpg_kernel_size: int = 3
    cpg_ignore_mode: str = "exclude"
    scale_range: tuple[float, float] = (0.5, 2.0)
    pretrained_backbone: bool = True
    amp: str = "bf16"
    grad_accum: int = 1
    clip_grad_norm: float = 0.0  # 0 = no clipping
    bn_momentum: float = 0.0  # BatchNorm momentum; 0 = keep the network's own default
    sync_bn: bool = True  # with more than one process on CUDA (torch: GPU only)
    eval_interval: int = 8000
    checkpoint_interval: int = 1000
    log_interval: int = 50
    eval_mode: str = "whole"
    eval_stride: tuple[int, int] = (0, 0)  # sliding-window stride; (0, 0) = 2/3 of the crop
    eval_flip: bool = False
    val_max_images: int = 0  # 0 = the whole validation split
    boundary_tolerance: int = 3  # px, for boundary F-score and Boundary IoU
    seed: int = 0
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    workers: int = 4
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    # GPU habits: channels_last (NHWC) weights and inputs and cuDNN autotuning apply on CUDA
    # only (the CPU path is unchanged); compile wraps the model in torch.compile (opt-in).
    channels_last: bool = True
    cudnn_benchmark: bool = True
    compile: bool = False
    # Fine-tuning: start from these weights (a registry id, a model directory, an hf-hub: id
    # or a trainer checkpoint) instead of ImageNet; the class layers' rows go by class name,
    # a class the source lacks starts fresh (`training.finetune`).
    init: str = ""
    # Columns of a Hugging Face `datasets` dataset given as --data-root.
    image_column: str = "image"
    mask_column: str = "annotation"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        """Inverse of `to_dict`; unknown keys are an error."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown recipe key(s): {', '.join(unknown)}")
        values = {
            key: tuple(value) if isinstance(value, list) else value for key, value in data.items()
        }
        recipe = cls(**values)
        recipe.validate()
        return recipe

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent value."""
        problems: list[str] = []
        if self.loss not in LOSSES:
            problems.append(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.loss == "ce" and self.cpg_lambda != 0:
            problems.append(
                f"{self.name} is a cross-entropy baseline: cpg_lambda must be 0 "
                f"(got {self.cpg_lambda}); use a *_cpg recipe for CE + CPG"
            )
        if self.loss == "cpg" and self.cpg_lambda <= 0:
            problems.append(f"{self.name} is a CPG recipe: cpg_lambda must be > 0")
        for key in (
            "batch_size", "iterations", "grad_accum", "checkpoint_interval", "eval_interval",
            "log_interval",
        ):  # fmt: skip
            if getattr(self, key) < 1:
                problems.append(f"{key} must be >= 1, got {getattr(self, key)}")
        if min(self.crop_size) < 1:
            problems.append(f"crop_size must be positive, got {self.crop_size}")
        if self.lr <= 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.min_lr <= self.lr:
            problems.append(f"min_lr must be in [0, lr={self.lr}], got {self.min_lr}")
        if self.weight_decay < 0 or self.momentum < 0 or self.clip_grad_norm < 0:
            problems.append("weight_decay, momentum and clip_grad_norm must be >= 0")
        if self.warmup_iters < 0 or not 0 < self.warmup_ratio <= 1:
            problems.append("warmup_iters must be >= 0 and warmup_ratio in (0, 1]")
        if not 0 < self.scale_range[0] <= self.scale_range[1]:
            problems.append(
                f"scale_range must be (low, high) with 0 < low <= high: {self.scale_range}"
            )
        if self.amp not in AMP_MODES:
            problems.append(f"amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        if self.eval_mode not in EVAL_MODES:
            problems.append(
                f"eval_mode must be one of {', '.join(EVAL_MODES)}, got {self.eval_mode!r}"
            )
        if self.cpg_kernel_size < 1 or self.cpg_kernel_size % 2 == 0:
            problems.append(f"cpg_kernel_size must be odd and >= 1, got {self.cpg_kernel_size}")
        if min(self.eval_stride) < 0 or (0 in self.eval_stride and self.eval_stride != (0, 0)):
            problems.append(f"eval_stride must be two positive ints or 0,0: {self.eval_stride}")
        if self.boundary_tolerance < 0 or self.val_max_images < 0 or self.workers < 0:
            problems.append("boundary_tolerance, val_max_images and workers must be >= 0")
        if not 0 <= self.bn_momentum <= 1:
            problems.append(
                f"bn_momentum must be in [0, 1] (0 = network default): {self.bn_momentum}"
            )
        if self.threads < 0:
            problems.append(f"threads must be >= 0, got {self.threads}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            problems.append(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.arch not in ARCHITECTURES:
            problems.append(str(unknown_name_error(self.arch, ARCHITECTURES, "arch")))
        elif self.aux_loss and not ARCHITECTURES[self.arch].has_aux:
            problems.append(f"{self.arch} has no auxiliary head: aux_loss must be false")
        if problems:
            raise ValueError(f"recipe {self.name}: " + "; ".join(problems))


# Per-dataset defaults (`DatasetInfo.recipe`) and per-arch values on top (`Architecture.
# recipe`), from the tables.
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    name: dict(info.recipe) for name, info in DATASETS.items() if info.recipe
}
ARCH_TWEAKS: dict[str, dict[str, Any]] = {
    name: dict(arch.recipe) for name, arch in ARCHITECTURES.items()
}

LOSS_SETTINGS: dict[str, dict[str, Any]] = {
    "ce": dict(cpg_lambda=0.0),
    "cpg": dict(cpg_lambda=DEFAULT_CPG_LAMBDA),
}

SYNTHCITY = "synthcity"


def _make(arch: str, dataset: str, loss: str) -> Recipe:
    values: dict[str, Any] = {}
    values.update(DATASET_DEFAULTS[dataset])
    values.update(ARCH_TWEAKS[arch])
    values.update(LOSS_SETTINGS[loss])
    return Recipe(name=f"{arch}_{dataset}_{loss}", arch=arch, dataset=dataset, loss=loss, **values)


def _has_recipe(arch: str, dataset: str) -> bool:
    """Published arch x published dataset (the registry ids), and every arch on the
    unpublished datasets (SynthCity): an unpublished arch adds no published-dataset recipe."""
    return not DATASETS[dataset].published or ARCHITECTURES[arch].published


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        _make(arch, dataset, loss)
        for dataset in DATASET_DEFAULTS
        for arch in ARCHITECTURES
        if _has_recipe(arch, dataset)
        for loss in LOSSES
    )
}


def list_recipes(include_synthcity: bool = True) -> list[str]:
    """Sorted recipe names: the 18 registry ids, plus (by default) those on the unpublished
    datasets (SynthCity)."""
    return sorted(
        name
        for name, recipe in RECIPES.items()
        if include_synthcity or DATASETS[recipe.dataset].published
    )


def get_recipe(name: str) -> Recipe:
    """The recipe `name`; an unknown name lists the valid ones."""
    return lookup(RECIPES, name, "recipe")


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse_scalar(kind: type, text: str, key: str) -> Any:
    text = text.strip()
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(f"{key}: expected a boolean (true/false), got {text!r}")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{key}: expected an integer, got {text!r}") from None
    if kind is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{key}: expected a number, got {text!r}") from None
    return text


def parse_value(key: str, text: str) -> Any:
    """Parse `text` as the type of `Recipe.<key>` (`crop_size=256,512` or `256x512` or `512`)."""
    hints = typing.get_type_hints(Recipe)
    kind = hints[key]
    origin = typing.get_origin(kind)
    if origin is tuple:
        item_types = typing.get_args(kind)
        parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
        if len(parts) == 1:
            parts = parts * len(item_types)
        if len(parts) != len(item_types):
            raise ValueError(
                f"{key}: expected {len(item_types)} comma-separated values, got {text!r}"
            )
        return tuple(_parse_scalar(t, p, key) for t, p in zip(item_types, parts, strict=True))
    return _parse_scalar(kind, text, key)


def split_overrides(overrides: list[str]) -> dict[str, str]:
    """`["key=value", ...]` -> {key: value text} (the last one of a key wins); ValueError for
    an item without "="."""
    items: dict[str, str] = {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        items[key.strip()] = value
    return items


def parse_overrides(
    overrides: list[str] | dict[str, Any], recipe: Recipe | None = None
) -> dict[str, Any]:
    """`key=value` overrides as {key: typed value}; ValueError for an unknown key, a key the
    recipe is defined by (`FIXED_FIELDS`) or a value of the wrong type. Needs no recipe, so a
    command line is checked before any data is read."""
    given = overrides if isinstance(overrides, dict) else split_overrides(overrides)
    valid = [f.name for f in fields(Recipe)]
    changes: dict[str, Any] = {}
    for key, value in given.items():
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            settable = ", ".join(k for k in valid if k not in FIXED_FIELDS)
            raise ValueError(f"unknown recipe key {key!r}{hint}; settable keys: {settable}")
        if key in FIXED_FIELDS:
            fixed = f" ({getattr(recipe, key)!r})" if recipe is not None else ""
            raise ValueError(f"{key} is fixed by the recipe{fixed}; choose another recipe")
        changes[key] = parse_value(key, value) if isinstance(value, str) else value
    return changes


def apply_overrides(recipe: Recipe, overrides: list[str] | dict[str, Any]) -> Recipe:
    """A copy of `recipe` with `key=value` overrides applied, type-checked and validated."""
    new = dataclasses.replace(recipe, **parse_overrides(overrides, recipe))
    new.validate()
    return new


def recipes_markdown() -> str:
    """The recipe table as Markdown (used to generate docs/recipes.md)."""
    cols = [
        ("recipe", lambda r: f"`{r.name}`"),
        ("crop (HxW)", lambda r: f"{r.crop_size[0]}x{r.crop_size[1]}"),
        ("batch", lambda r: str(r.batch_size)),
        ("iters", lambda r: f"{r.iterations:,}"),
        ("lr", lambda r: f"{r.lr:g}"),
        ("wd", lambda r: f"{r.weight_decay:g}"),
        ("warm-up", lambda r: str(r.warmup_iters)),
        ("aux", lambda r: f"{r.aux_weight:g}" if r.aux_loss else "-"),
        ("CPG λ", lambda r: f"{r.cpg_lambda:g}" if r.cpg_lambda else "-"),
        ("BN mom.", lambda r: f"{r.bn_momentum:g}" if r.bn_momentum else "net's"),
        ("AMP", lambda r: r.amp),
        ("pretrained", lambda r: "ImageNet" if r.pretrained_backbone else "no"),
        ("eval", lambda r: r.eval_mode),
    ]
    lines = [
        "| " + " | ".join(name for name, _ in cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for name in list_recipes():
        recipe = RECIPES[name]
        lines.append("| " + " | ".join(fn(recipe) for _, fn in cols) + " |")
    return "\n".join(lines) + "\n"


__all__ = [
    "DEFAULT_CPG_LAMBDA",
    "RECIPES",
    "Recipe",
    "apply_overrides",
    "get_recipe",
    "list_recipes",
    "parse_overrides",
    "parse_value",
    "recipes_markdown",
]
