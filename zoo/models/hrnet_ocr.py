"""HRNetV2-W48 + OCR head (Yuan et al., "Object-Contextual Representations", ECCV 2020).

Backbone: timm's `hrnet_w48` with `features_only=True, feature_location=""`, i.e. the raw
48/96/192/384-channel branch outputs at strides 4/8/16/32. HRNetV2 fuses them by upsampling
every branch to stride 4 and concatenating (720 channels). The OCR head then:

1. predicts soft object regions (the auxiliary output) from the fused features,
2. gathers one representation per object region (region-weighted average of pixel features),
3. relates every pixel to the object representations with attention (object context),
4. fuses the object context with the pixel features and classifies.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BACKBONE_STRIDE = 32  # timm's HRNet fuses branches by fixed 2x factors: pad to a multiple


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 1) -> nn.Sequential:
    """Conv (no bias) -> BatchNorm -> ReLU, 'same' padding."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ObjectContext(nn.Module):
    """Steps 2-3: object region representations, then pixel-to-object attention."""

    def __init__(self, channels: int, key_channels: int) -> None:
        super().__init__()
        self.query = nn.Sequential(
            conv_bn_relu(channels, key_channels), conv_bn_relu(key_channels, key_channels)
        )
        self.key = nn.Sequential(
            conv_bn_relu(channels, key_channels), conv_bn_relu(key_channels, key_channels)
        )
        self.value = conv_bn_relu(channels, key_channels)
        self.project = conv_bn_relu(key_channels, channels)
        self.scale = key_channels**-0.5

    def forward(self, features: torch.Tensor, soft_regions: torch.Tensor) -> torch.Tensor:
        """Object-contextual features of `features` (B, C, H, W) given the region maps."""
        # Object representations: a softmax over pixels turns each region map into weights.
        region_weights = soft_regions.flatten(2).softmax(dim=-1)  # B x K x HW
        objects = torch.bmm(region_weights, features.flatten(2).transpose(1, 2))  # B x K x C
        objects = objects.transpose(1, 2).unsqueeze(-1)  # B x C x K x 1

        query = self.query(features).flatten(2).transpose(1, 2)  # B x HW x Ck
        key = self.key(objects).flatten(2)  # B x Ck x K
        value = self.value(objects).flatten(2).transpose(1, 2)  # B x K x Ck
        attention = (torch.bmm(query, key) * self.scale).softmax(dim=-1)  # B x HW x K
        context = torch.bmm(attention, value).transpose(1, 2)  # B x Ck x HW
        context = context.reshape(context.shape[0], context.shape[1], *features.shape[2:])
        return self.project(context)


class OCRHead(nn.Module):
    """Soft object regions (aux) and object-contextual classification (out)."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        mid_channels: int = 512,
        key_channels: int = 256,
        dropout: float = 0.05,
    ) -> None:
        super().__init__()
        # 1x1 convolutions, as in the reference HRNet-OCR and MMSegmentation's OCRNet (a 3x3
        # 720 -> 720 convolution here would cost ~9x more than the whole rest of this head).
        self.soft_regions = nn.Sequential(
            conv_bn_relu(in_channels, in_channels), nn.Conv2d(in_channels, num_classes, 1)
        )
        self.pixel_features = conv_bn_relu(in_channels, mid_channels, 3)
        self.object_context = ObjectContext(mid_channels, key_channels)
        self.fuse = nn.Sequential(
            conv_bn_relu(2 * mid_channels, mid_channels), nn.Dropout2d(dropout)
        )
        self.classifier = nn.Conv2d(mid_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, soft object regions), both at the features' resolution."""
        soft_regions = self.soft_regions(x)
        features = self.pixel_features(x)
        context = self.object_context(features, soft_regions)
        logits = self.classifier(self.fuse(torch.cat([context, features], dim=1)))
        return logits, soft_regions


class HRNetV2OCR(nn.Module):
    """HRNetV2-W48 backbone + OCR head; `forward` returns {"out"[, "aux"]} at input size."""

    def __init__(
        self, num_classes: int, aux_loss: bool = False, pretrained_backbone: bool = False
    ) -> None:
        super().__init__()
        import timm

        backbone = timm.create_model(
            "hrnet_w48",
            pretrained=pretrained_backbone,
            features_only=True,
            feature_location="",
            out_indices=(1, 2, 3, 4),
        )
        self.backbone = backbone
        feature_info = backbone.feature_info
        assert isinstance(feature_info, timm.models.FeatureInfo)  # features_only=True gives one
        self.head = OCRHead(sum(feature_info.channels()), num_classes)
        self.aux_loss = aux_loss

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"out": logits} (+ "aux": soft object regions) at the input's height and width."""
        height, width = x.shape[-2:]
        pad_bottom = (-height) % BACKBONE_STRIDE
        pad_right = (-width) % BACKBONE_STRIDE
        padded = F.pad(x, (0, pad_right, 0, pad_bottom), mode="replicate")
        branches = self.backbone(padded)
        size = branches[0].shape[-2:]
        fused = torch.cat(
            [branches[0]]
            + [
                F.interpolate(b, size=size, mode="bilinear", align_corners=False)
                for b in branches[1:]
            ],
            dim=1,
        )
        logits, soft_regions = self.head(fused)
        result = {"out": self._to_input_size(logits, padded, height, width)}
        if self.aux_loss:
            result["aux"] = self._to_input_size(soft_regions, padded, height, width)
        return result

    @staticmethod
    def _to_input_size(
        logits: torch.Tensor, padded: torch.Tensor, height: int, width: int
    ) -> torch.Tensor:
        logits = F.interpolate(logits, size=padded.shape[-2:], mode="bilinear", align_corners=False)
        return logits[..., :height, :width]
