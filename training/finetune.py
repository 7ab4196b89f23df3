"""Fine-tuning: start a network from trained weights of the same architecture (`init=`).

`init` is a registry id, a model directory, an `hf-hub:` id (weights from `model.safetensors`)
or a trainer checkpoint (`.pt`). Tensors load by name and shape, except the architecture's
class-dependent layers (`Architecture.classifier_layers`: the classifier, the aux / OCR class
layers), whose rows are classes and go by class NAME (case-insensitive): identical class lists
keep them whole; otherwise each class the source also has gets its row (a subset or a new order
of the source's classes keeps what it learnt) and the other classes keep their fresh
initialisation, as does anything the source lacks (e.g. an aux head that export dropped). A
row is never kept for a class of another name, even when the class counts agree. Any other
shape mismatch is an error.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from zoo.archs import get_architecture


@dataclass
class InitReport:
    """Which tensors came from `source` and which kept their fresh initialisation."""

    source: str
    source_arch: str
    source_classes: int
    kept: list[str] = field(default_factory=list)
    reinitialised: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)  # in the source, not in this network
    # Class-dependent tensors whose rows came from the source by class name (the others fresh).
    mapped: list[str] = field(default_factory=list)
    classes_from_source: dict[str, str] = field(default_factory=dict)  # this run's: source's
    fresh_classes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few lines for the training log: kept tensors by module, re-initialised by name."""
        groups = Counter(".".join(name.split(".")[:2]) for name in self.kept)
        kept = ", ".join(f"{prefix}.* ({count})" for prefix, count in sorted(groups.items()))
        lines = [
            f"init from {self.source} ({self.source_arch}, {self.source_classes} classes): "
            f"kept {len(self.kept)} tensors: {kept or 'none'}",
            f"re-initialised {len(self.reinitialised)} tensors: "
            + (", ".join(self.reinitialised) or "none"),
        ]
        if self.mapped:
            pairs = [
                a if a == b else f"{a} (source {b})" for a, b in self.classes_from_source.items()
            ]
            lines.append(
                f"class rows of {', '.join(self.mapped)} by class name: "
                f"{len(pairs)} from the source ({', '.join(pairs)}), "
                f"{len(self.fresh_classes)} fresh ({', '.join(self.fresh_classes) or 'none'})"
            )
        elif self.fresh_classes:
            lines.append(
                "no class of this run is in the source's classes: the class layers start fresh"
            )
        if self.unused:
            lines.append(f"not used from the source: {', '.join(self.unused)}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "source_arch": self.source_arch,
            "source_classes": self.source_classes, "kept": self.kept,
            "reinitialised": self.reinitialised, "unused": self.unused, "mapped": self.mapped,
            "classes_from_source": self.classes_from_source, "fresh_classes": self.fresh_classes,
        }  # fmt: skip


def read_init_weights(init: str) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(config dict, state dict) of `init`: a trainer checkpoint file, or a model directory /
    registry id / hf-hub: id resolved like `zoo.load` (Hub downloads included)."""
    from safetensors.torch import load_file

    from training.checkpoints import read_checkpoint
    from zoo.config import ModelConfig
    from zoo.loading import resolve_model_dir
    from zoo.modelfiles import WEIGHTS_NAME

    path = Path(init).expanduser()
    if path.is_file():
        checkpoint = read_checkpoint(path)
        return checkpoint["config"], checkpoint["model"]
    model_dir = resolve_model_dir(init, backend="torch")
    weights = model_dir / WEIGHTS_NAME
    if not weights.is_file():
        raise ValueError(f"init={init!r}: {model_dir} has no {WEIGHTS_NAME} to start from")
    return ModelConfig.load(model_dir).to_dict(), load_file(str(weights))


def source_rows(source_classes: list[str], classes: list[str]) -> list[int | None]:
    """For each of `classes`, the index of the same-named source class (case-insensitive)."""
    index = {name.casefold(): i for i, name in enumerate(source_classes)}
    return [index.get(name.casefold()) for name in classes]


def load_init_weights(model: nn.Module, init: str, arch: str, classes: list[str]) -> InitReport:
    """Copy the weights of `init` into `model` (an `arch` network for `classes`)."""
    config, source = read_init_weights(init)
    source_arch, source_classes = config.get("arch"), config.get("num_classes")
    if source_arch != arch:
        raise ValueError(
            f"init={init!r} holds {source_arch} weights but this run trains {arch}; start from "
            f"a {arch} model or change arch"
        )
    class_layers = get_architecture(arch).classifier_layers
    source_names = [str(name) for name in config.get("classes") or []]
    rows = source_rows(source_names, list(classes))
    same_classes = [name.casefold() for name in source_names] == [c.casefold() for c in classes]
    report = InitReport(init, str(source_arch), int(source_classes or 0))
    if not same_classes:
        for name, row in zip(classes, rows, strict=True):
            if row is None:
                report.fresh_classes.append(name)
            else:
                report.classes_from_source[name] = source_names[row]
    chosen: dict[str, Tensor] = {}
    own = model.state_dict()
    for name, tensor in own.items():
        by_class = name.startswith(class_layers) and not same_classes
        if name not in source or (by_class and not report.classes_from_source):
            report.reinitialised.append(name)
        elif by_class:
            mapped = tensor.clone()
            for target, row in enumerate(rows):
                if row is not None:
                    mapped[target] = source[name][row]
            chosen[name] = mapped
            report.mapped.append(name)
        elif source[name].shape != tensor.shape:
            raise ValueError(
                f"init={init!r}: tensor {name} has shape {tuple(source[name].shape)}, this "
                f"network's has {tuple(tensor.shape)} (not a class-dependent layer)"
            )
        else:
            chosen[name] = source[name]
            report.kept.append(name)
    report.unused = sorted(name for name in source if name not in own)
    model.load_state_dict(chosen, strict=False)
    return report
