"""The three networks: shapes, torchvision compatibility, ONNX tracing, clear errors."""

from __future__ import annotations

import functools
import subprocess
import sys

import numpy as np
import pytest
import torch
from torchvision.models.segmentation import deeplabv3_resnet50, lraspp_mobilenet_v3_large

from zoo.models import build_model, has_aux_head
from zoo.registry import ARCHS, get_spec, list_models

EVAL_SHAPES = [(1, 3, 64, 96), (2, 3, 97, 131)]
TRAIN_SHAPES = [(2, 3, 64, 96), (2, 3, 97, 131)]  # BatchNorm in train mode needs batch > 1


@functools.cache
def _model(arch: str, num_classes: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(arch, num_classes, aux_loss=has_aux_head(arch))


@pytest.mark.parametrize("model_id", list_models())
def test_every_registry_id_gives_logits_of_the_right_shape(model_id: str) -> None:
    spec = get_spec(model_id)
    model = _model(spec.arch, spec.num_classes)
    for training, shapes in ((False, EVAL_SHAPES), (True, TRAIN_SHAPES)):
        model.train(training)
        for shape in shapes:
            with torch.no_grad():
                outputs = model(torch.randn(shape))
            expected = (shape[0], spec.num_classes, shape[2], shape[3])
            assert outputs["out"].shape == expected
            if has_aux_head(spec.arch):
                assert outputs["aux"].shape == expected
            else:
                assert set(outputs) == {"out"}
            assert torch.isfinite(outputs["out"]).all()


def test_aux_output_only_when_asked() -> None:
    model = build_model("deeplabv3_r50", 3).eval()
    with torch.no_grad():
        assert set(model(torch.randn(1, 3, 32, 32))) == {"out"}


@pytest.mark.parametrize(
    ("arch", "torchvision_constructor", "aux"),
    [
        ("deeplabv3_r50", deeplabv3_resnet50, True),
        ("lraspp_mbv3", lraspp_mobilenet_v3_large, False),
    ],
)
def test_state_dict_loads_into_torchvision_strictly(arch, torchvision_constructor, aux) -> None:
    torch.manual_seed(1)
    ours = build_model(arch, 7, aux_loss=aux).eval()
    kwargs = {"aux_loss": True} if aux else {}
    theirs = torchvision_constructor(num_classes=7, weights_backbone=None, **kwargs).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    image = torch.randn(1, 3, 65, 81)
    with torch.no_grad():
        assert torch.equal(ours(image)["out"], theirs(image)["out"])
    # ...and a torchvision checkpoint loads into ours.
    ours.load_state_dict(theirs.state_dict(), strict=True)


def test_hrnet_ocr_uses_hrnetv2_branches() -> None:
    model = build_model("hrnetv2_w48_ocr", 4)
    assert model.backbone.feature_info.channels() == [48, 96, 192, 384]
    assert model.backbone.feature_info.reduction() == [4, 8, 16, 32]
    assert model.head.soft_regions[-1].out_channels == 4


def test_hrnet_ocr_aux_is_the_soft_object_regions() -> None:
    torch.manual_seed(0)
    model = build_model("hrnetv2_w48_ocr", 4, aux_loss=True).eval()
    # Changing the final classifier changes "out" but not the soft regions ("aux").
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(image)
        model.head.classifier.weight.add_(1.0)
        after = model(image)
    assert torch.equal(before["aux"], after["aux"])
    assert not torch.equal(before["out"], after["out"])


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_eval_forward_exports_to_onnx_with_dynamic_height_and_width(arch: str, tmp_path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")

    class LogitsOnly(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x)["out"]

    torch.manual_seed(0)
    model = LogitsOnly(build_model(arch, 3)).eval()
    path = tmp_path / "model.onnx"
    axes = {0: "batch", 2: "height", 3: "width"}
    torch.onnx.export(
        model, (torch.randn(1, 3, 64, 96),), str(path), input_names=["input"],
        output_names=["logits"], dynamic_axes={"input": axes, "logits": axes}, dynamo=False,
        opset_version=17,
    )  # fmt: skip
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 64, 96), (2, 3, 97, 131)]:
        image = torch.randn(shape)
        with torch.no_grad():
            expected = model(image).numpy()
        (logits,) = session.run(None, {"input": image.numpy()})
        assert logits.shape == expected.shape
        scale = max(1.0, float(np.abs(expected).max()))
        assert np.abs(logits - expected).max() <= 1e-4 * scale


def test_unknown_arch_lists_the_valid_ones() -> None:
    with pytest.raises(
        ValueError, match="valid archs: deeplabv3_r50, hrnetv2_w48_ocr, lraspp_mbv3"
    ):
        build_model("unet", 3)


def test_bad_num_classes_and_aux_on_lraspp_are_refused() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        build_model("lraspp_mbv3", 0)
    with pytest.raises(ValueError, match="lraspp_mbv3 has no auxiliary head"):
        build_model("lraspp_mbv3", 3, aux_loss=True)


def test_pretrained_backbone_without_download_gives_a_clear_error() -> None:
    # A subprocess, so that no test can ever download: torchvision's downloader is replaced by
    # one that fails, and the Hugging Face Hub (timm's source) is switched offline.
    code = """
import urllib.error
import torchvision.models._api as api
def no_download(*args, **kwargs):
    raise urllib.error.URLError("no network in this test")
api.load_state_dict_from_url = no_download
from zoo.models import build_model
for arch in ("lraspp_mbv3", "deeplabv3_r50", "hrnetv2_w48_ocr"):
    try:
        build_model(arch, 3, pretrained_backbone=True)
    except RuntimeError as error:
        print(error)
    else:
        raise SystemExit(f"{arch}: no error")
"""
    env = {"HF_HUB_OFFLINE": "1", "TORCH_HOME": "/nonexistent-torch-home", "PATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    for arch, line in zip(("lraspp_mbv3", "deeplabv3_r50", "hrnetv2_w48_ocr"), lines, strict=True):
        assert line.startswith(f"could not download the ImageNet backbone weights for {arch}")
        assert "pretrained_backbone=False" in line
