"""The three networks, built by `build_model(arch, num_classes, ...)`.

`deeplabv3_r50` and `lraspp_mbv3` are torchvision's own models (state dicts load into
torchvision's constructors with `strict=True`); `hrnetv2_w48_ocr` is a timm backbone with the
OCR head of `zoo.models.hrnet_ocr`. Every model returns `{"out": logits}` at the input's size,
plus `"aux"` when built with `aux_loss=True`. Importing this module imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from zoo.registry import ARCHS


def _deeplabv3_r50(num_classes: int, aux_loss: bool, pretrained_backbone: bool) -> nn.Module:
    from torchvision.models import ResNet50_Weights
    from torchvision.models.segmentation import deeplabv3_resnet50

    weights = ResNet50_Weights.IMAGENET1K_V1 if pretrained_backbone else None
    return deeplabv3_resnet50(num_classes=num_classes, aux_loss=aux_loss, weights_backbone=weights)


def _lraspp_mbv3(num_classes: int, aux_loss: bool, pretrained_backbone: bool) -> nn.Module:
    from torchvision.models import MobileNet_V3_Large_Weights
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    weights = MobileNet_V3_Large_Weights.IMAGENET1K_V1 if pretrained_backbone else None
    return lraspp_mobilenet_v3_large(num_classes=num_classes, weights_backbone=weights)


def _hrnetv2_w48_ocr(num_classes: int, aux_loss: bool, pretrained_backbone: bool) -> nn.Module:
    from zoo.models.hrnet_ocr import HRNetV2OCR

    return HRNetV2OCR(num_classes, aux_loss=aux_loss, pretrained_backbone=pretrained_backbone)


@dataclass(frozen=True)
class ArchBuilder:
    """How to build one architecture."""

    build: Callable[[int, bool, bool], nn.Module]
    has_aux: bool
    backbone_weights: str  # where `pretrained_backbone=True` downloads from


BUILDERS: dict[str, ArchBuilder] = {
    "deeplabv3_r50": ArchBuilder(_deeplabv3_r50, True, "torchvision ResNet50 IMAGENET1K_V1"),
    "hrnetv2_w48_ocr": ArchBuilder(_hrnetv2_w48_ocr, True, "timm hrnet_w48 (Hugging Face Hub)"),
    "lraspp_mbv3": ArchBuilder(_lraspp_mbv3, False, "torchvision MobileNetV3-Large IMAGENET1K_V1"),
}
assert BUILDERS.keys() == ARCHS.keys()


def has_aux_head(arch: str) -> bool:
    """Whether `arch` has an auxiliary head (`aux_loss=True` is allowed)."""
    return _builder(arch).has_aux


def _builder(arch: str) -> ArchBuilder:
    try:
        return BUILDERS[arch]
    except KeyError:
        raise ValueError(
            f"unknown arch {arch!r}; valid archs: {', '.join(sorted(BUILDERS))}"
        ) from None


def build_model(
    arch: str, num_classes: int, aux_loss: bool = False, pretrained_backbone: bool = False
) -> nn.Module:
    """Build network `arch` with `num_classes` outputs (randomly initialised head).

    `pretrained_backbone=True` downloads ImageNet weights for the backbone (torchvision or
    timm); where that is impossible the error says so.
    """
    builder = _builder(arch)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if aux_loss and not builder.has_aux:
        raise ValueError(
            f"{arch} has no auxiliary head; use aux_loss=False "
            f"(archs with one: {', '.join(a for a, b in BUILDERS.items() if b.has_aux)})"
        )
    try:
        return builder.build(num_classes, aux_loss, pretrained_backbone)
    except OSError as error:  # URLError, connection and hub errors are OSErrors
        if not pretrained_backbone:
            raise
        raise RuntimeError(
            f"could not download the ImageNet backbone weights for {arch} "
            f"({builder.backbone_weights}): {error}. Connect to the internet, pre-fill the "
            "torch hub / Hugging Face cache, or use pretrained_backbone=False."
        ) from error
