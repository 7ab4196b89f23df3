"""The architecture table: one `Architecture` row per network the project can build.

Everything the project knows about a network lives in its row: how to build it (imported
lazily: this module does not import torch), its auxiliary head, the layers that depend on
the class count, where the ImageNet backbone comes from, its recipe values, what the export
drops, and which classifier its training FLOPs are paired with in `bench/train_cost.py`.
Registry ids, recipes, benchmarks and test parametrisations are derived from `ARCHITECTURES`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from zoo.lookup import lookup


@dataclass(frozen=True)
class Architecture:
    """One network.

    Exactly one of `torchvision` and `builder` is set:

    - `torchvision`: a constructor of `torchvision.models.segmentation` (`"lraspp_mobilenet_
      v3_large"`), called with `num_classes`, `weights_backbone` (the enum member named by
      `backbone_weights`, or None) and `aux_loss` (when `has_aux`);
    - `builder`: `"module:callable"`, called as `callable(num_classes=..., aux_loss=...,
      pretrained_backbone=...)`.

    The network returns `{"out": logits}` at the input's size, plus `"aux"` when built with
    `aux_loss=True`.
    """

    name: str
    title: str
    has_aux: bool
    # State-dict prefixes whose shapes depend on num_classes (replaced when fine-tuning on
    # other classes); a test checks them against two real networks.
    classifier_layers: tuple[str, ...]
    # torchvision: a `torchvision.models` weights enum member; otherwise a description.
    backbone_weights: str
    torchvision: str = ""
    builder: str = ""
    # State-dict prefixes of the auxiliary head: training-only, dropped from exported models.
    aux_prefixes: tuple[str, ...] = ()
    # Recipe values of this network on top of the dataset's (`training.recipes`).
    recipe: Mapping[str, Any] = field(default_factory=dict)
    # torchvision classifier with similar layers whose published A100 training rate
    # `bench/train_cost.py` divides this network's training FLOPs by.
    flops_reference: str = "resnet50"
    # Part of the published zoo (registry ids, Hub repos, model cards)? Unpublished networks
    # are trainable (SynthCity and custom-data recipes), exportable and loadable all the same.
    published: bool = True

    def __post_init__(self) -> None:
        if bool(self.torchvision) == bool(self.builder):
            raise ValueError(f"arch {self.name}: set exactly one of torchvision and builder")
        object.__setattr__(self, "recipe", MappingProxyType(dict(self.recipe)))


# MobileNet practice: a smaller weight decay for the depthwise networks.
_MOBILENET_RECIPE = {"weight_decay": 4e-5}

ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture(
            name="deeplabv3_r50",
            title="DeepLabv3-ResNet50 (output stride 8)",
            torchvision="deeplabv3_resnet50",
            has_aux=True,
            classifier_layers=("classifier.4.", "aux_classifier.4."),
            aux_prefixes=("aux_classifier.",),
            backbone_weights="ResNet50_Weights.IMAGENET1K_V1",
            recipe={"aux_loss": True},
            flops_reference="resnet50",  # its backbone
        ),
        Architecture(
            name="hrnetv2_w48_ocr",
            title="HRNetV2-W48 + OCR",
            builder="zoo.models.hrnet_ocr:HRNetV2OCR",
            has_aux=True,  # the soft object regions: no weights of their own
            classifier_layers=("head.soft_regions.1.", "head.classifier."),
            backbone_weights="timm hrnet_w48 (Hugging Face Hub)",
            recipe={"aux_loss": True},
            flops_reference="resnet50",  # dense 3x3 convolutions like it
        ),
        Architecture(
            name="lraspp_mbv3",
            title="LRASPP-MobileNetV3-Large",
            torchvision="lraspp_mobilenet_v3_large",
            has_aux=False,
            classifier_layers=("classifier.low_classifier.", "classifier.high_classifier."),
            backbone_weights="MobileNet_V3_Large_Weights.IMAGENET1K_V1",
            recipe={"aux_loss": False, **_MOBILENET_RECIPE},
            # Inverted residuals, depthwise convolutions and squeeze-excite, like it.
            flops_reference="efficientnet_b0",
        ),
        Architecture(
            name="deeplabv3_mbv3",
            title="DeepLabv3-MobileNetV3-Large",
            torchvision="deeplabv3_mobilenet_v3_large",
            has_aux=True,
            classifier_layers=("classifier.4.", "aux_classifier.4."),
            aux_prefixes=("aux_classifier.",),
            backbone_weights="MobileNet_V3_Large_Weights.IMAGENET1K_V1",
            recipe={"aux_loss": True, **_MOBILENET_RECIPE},
            flops_reference="efficientnet_b0",
            published=False,
        ),
    )
}


def get_architecture(name: str) -> Architecture:
    """The row of architecture `name`; an unknown name lists the valid ones."""
    return lookup(ARCHITECTURES, name, "arch")


def published_archs() -> list[str]:
    """Names of the architectures of the published zoo, in table order."""
    return [name for name, arch in ARCHITECTURES.items() if arch.published]


def archs_with_aux() -> list[str]:
    """Names of the architectures with an auxiliary head, sorted."""
    return sorted(name for name, arch in ARCHITECTURES.items() if arch.has_aux)
