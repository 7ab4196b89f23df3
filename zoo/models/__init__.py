"""The networks of `zoo.archs.ARCHITECTURES`, built by `build_model(arch, num_classes, ...)`.

torchvision rows (`deeplabv3_r50`, `lraspp_mbv3`, `deeplabv3_mbv3`) are torchvision's own
models (state dicts load into torchvision's constructors with `strict=True`); other rows name
their builder (`hrnetv2_w48_ocr`: a timm backbone with the OCR head of `zoo.models.hrnet_ocr`).
Every model returns `{"out": logits}` at the input's size, plus `"aux"` when built with
`aux_loss=True`. Importing this module imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from torch import nn

from zoo.archs import Architecture, archs_with_aux, get_architecture


class BackboneDownloadError(OSError, RuntimeError):
    """The ImageNet backbone weights could not be downloaded: an environment problem (an
    OSError, which the CLIs report in one line); a RuntimeError for older callers."""


def has_aux_head(arch: str) -> bool:
    """Whether `arch` has an auxiliary head (`aux_loss=True` is allowed)."""
    return get_architecture(arch).has_aux


def _import(path: str) -> Callable[..., nn.Module]:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _build(row: Architecture, num_classes: int, aux_loss: bool, pretrained: bool) -> nn.Module:
    if row.builder:
        return _import(row.builder)(
            num_classes=num_classes, aux_loss=aux_loss, pretrained_backbone=pretrained
        )
    import torchvision.models
    import torchvision.models.segmentation

    constructor = getattr(torchvision.models.segmentation, row.torchvision)
    weights = None
    if pretrained:
        enum_name, _, member = row.backbone_weights.partition(".")
        weights = getattr(getattr(torchvision.models, enum_name), member)
    kwargs = {"aux_loss": aux_loss} if row.has_aux else {}
    return constructor(num_classes=num_classes, weights_backbone=weights, **kwargs)


def build_model(
    arch: str, num_classes: int, aux_loss: bool = False, pretrained_backbone: bool = False
) -> nn.Module:
    """Build network `arch` with `num_classes` outputs (randomly initialised head).

    `pretrained_backbone=True` downloads ImageNet weights for the backbone (torchvision or
    timm); where that is impossible the error says so.
    """
    row = get_architecture(arch)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if aux_loss and not row.has_aux:
        raise ValueError(
            f"{arch} has no auxiliary head; use aux_loss=False "
            f"(archs with one: {', '.join(archs_with_aux())})"
        )
    try:
        return _build(row, num_classes, aux_loss, pretrained_backbone)
    except OSError as error:  # URLError, connection and hub errors are OSErrors
        if not pretrained_backbone:
            raise
        raise BackboneDownloadError(
            f"could not download the ImageNet backbone weights for {arch} "
            f"({row.backbone_weights}): {error}. Connect to the internet, pre-fill the "
            "torch hub / Hugging Face cache, or use pretrained_backbone=False."
        ) from error
