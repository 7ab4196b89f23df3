"""Fine-tuning: start a network from trained weights of the same architecture (`init=`).

`init` is a registry id, a model directory, an `hf-hub:` id (weights from `model.safetensors`)
or a trainer checkpoint (`.pt`). Tensors load by name and shape; when the class count differs,
the architecture's class-dependent layers (`Architecture.classifier_layers`: the classifier,
the aux / OCR class layers) keep their fresh initialisation, as does anything the source lacks
(e.g. an aux head that export dropped). Any other shape mismatch is an error.
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
        if self.unused:
            lines.append(f"not used from the source: {', '.join(self.unused)}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "source_arch": self.source_arch,
            "source_classes": self.source_classes, "kept": self.kept,
            "reinitialised": self.reinitialised, "unused": self.unused,
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


def load_init_weights(model: nn.Module, init: str, arch: str, num_classes: int) -> InitReport:
    """Copy the weights of `init` into `model` (an `arch` network with `num_classes`)."""
    config, source = read_init_weights(init)
    source_arch, source_classes = config.get("arch"), config.get("num_classes")
    if source_arch != arch:
        raise ValueError(
            f"init={init!r} holds {source_arch} weights but this run trains {arch}; start from "
            f"a {arch} model or change arch"
        )
    class_layers = get_architecture(arch).classifier_layers
    replace_head = source_classes != num_classes
    report = InitReport(init, str(source_arch), int(source_classes or 0))
    chosen: dict[str, Tensor] = {}
    own = model.state_dict()
    for name, tensor in own.items():
        if (replace_head and name.startswith(class_layers)) or name not in source:
            report.reinitialised.append(name)
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
