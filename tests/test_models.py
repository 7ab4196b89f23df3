"""The networks of `zoo.archs`: shapes, the rows' facts against real networks, torchvision
compatibility, ONNX tracing, clear errors, and the unpublished arch end to end."""

from __future__ import annotations

import functools
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision.models
import torchvision.models.segmentation

from zoo.archs import ARCHITECTURES, get_architecture
from zoo.datasets import DATASETS
from zoo.models import build_model, has_aux_head
from zoo.registry import list_models

EVAL_SHAPES = [(1, 3, 64, 96), (2, 3, 97, 131)]
TRAIN_SHAPES = [(2, 3, 64, 96), (2, 3, 97, 131)]  # BatchNorm in train mode needs batch > 1
TORCHVISION_ARCHS = sorted(name for name, row in ARCHITECTURES.items() if row.torchvision)
UNPUBLISHED_ARCHS = sorted(name for name, row in ARCHITECTURES.items() if not row.published)


def _class_counts(arch: str) -> list[int]:
    """The class counts `arch` is trained with: the published datasets' for a published arch
    (the registry ids: a ce/cpg pair is one network), the others' (SynthCity) otherwise."""
    published = ARCHITECTURES[arch].published
    return sorted({info.num_classes for info in DATASETS.values() if info.published == published})


@functools.cache
def _model(arch: str, num_classes: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(arch, num_classes, aux_loss=has_aux_head(arch))


@functools.cache
def _state_shapes(arch: str, num_classes: int, aux_loss: bool) -> dict[str, tuple[int, ...]]:
    """Parameter/buffer shapes of a network built on the meta device (no memory, no compute)."""
    with torch.device("meta"):
        model = build_model(arch, num_classes, aux_loss=aux_loss)
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def test_the_class_counts_cover_every_registry_network() -> None:
    """The shape test below builds each distinct network of the registry: 3 archs x 3 class
    counts (a ce/cpg pair is one network), plus the unpublished archs."""
    from zoo.registry import get_spec

    networks = {(get_spec(i).arch, get_spec(i).num_classes) for i in list_models()}
    assert len(networks) == 9
    assert networks <= {(arch, n) for arch in ARCHITECTURES for n in _class_counts(arch)}
    assert 19 in _class_counts("deeplabv3_mbv3")  # SynthCity


@pytest.mark.parametrize(
    ("arch", "num_classes"),
    [(arch, n) for arch in ARCHITECTURES for n in _class_counts(arch)],
)
def test_logits_have_the_input_size_and_class_count(arch: str, num_classes: int) -> None:
    model = _model(arch, num_classes)
    for training, shapes in ((False, EVAL_SHAPES), (True, TRAIN_SHAPES)):
        model.train(training)
        for shape in shapes:
            with torch.no_grad():
                outputs = model(torch.randn(shape))
            expected = (shape[0], num_classes, shape[2], shape[3])
            assert outputs["out"].shape == expected
            if has_aux_head(arch):
                assert outputs["aux"].shape == expected
            else:
                assert set(outputs) == {"out"}
            assert torch.isfinite(outputs["out"]).all()


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_classifier_layers_are_exactly_the_class_dependent_weights(arch: str) -> None:
    """The row's `classifier_layers` against two real networks with 3 and 5 classes."""
    aux = has_aux_head(arch)
    three, five = _state_shapes(arch, 3, aux), _state_shapes(arch, 5, aux)
    assert three.keys() == five.keys()
    differing = {key for key in three if three[key] != five[key]}
    prefixes = get_architecture(arch).classifier_layers
    assert differing == {key for key in three if key.startswith(prefixes)}
    for prefix in prefixes:  # no dead prefix
        assert any(key.startswith(prefix) for key in differing), prefix


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_aux_prefixes_are_exactly_the_aux_head_weights(arch: str) -> None:
    """The row's `aux_prefixes` (what export drops) against the networks with / without aux."""
    plain = _state_shapes(arch, 3, False)
    with_aux = _state_shapes(arch, 3, True) if has_aux_head(arch) else plain
    assert plain.keys() <= with_aux.keys()
    prefixes = get_architecture(arch).aux_prefixes
    assert with_aux.keys() - plain.keys() == {k for k in with_aux if k.startswith(prefixes)}


@pytest.mark.parametrize("arch", TORCHVISION_ARCHS)
def test_backbone_weights_name_a_torchvision_weights_entry(arch: str) -> None:
    enum_name, member = get_architecture(arch).backbone_weights.split(".")
    weights = getattr(getattr(torchvision.models, enum_name), member)
    assert weights.url.startswith("https://download.pytorch.org/")


def test_aux_output_only_when_asked() -> None:
    model = build_model("deeplabv3_r50", 3).eval()
    with torch.no_grad():
        assert set(model(torch.randn(1, 3, 32, 32))) == {"out"}


@pytest.mark.parametrize("arch", TORCHVISION_ARCHS)
def test_state_dict_loads_into_torchvision_strictly(arch: str) -> None:
    row = get_architecture(arch)
    torch.manual_seed(1)
    ours = build_model(arch, 7, aux_loss=row.has_aux).eval()
    constructor = getattr(torchvision.models.segmentation, row.torchvision)
    kwargs = {"aux_loss": True} if row.has_aux else {}
    theirs = constructor(num_classes=7, weights_backbone=None, **kwargs).eval()
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
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_eval_forward_exports_to_onnx_with_dynamic_height_and_width(arch: str, tmp_path) -> None:
    """The shipped exporter (`export.onnx_export.export_onnx`) on each arch's eval forward."""
    onnxruntime = pytest.importorskip("onnxruntime")
    from export.onnx_export import export_onnx

    torch.manual_seed(0)
    model = build_model(arch, 3).eval()
    path = export_onnx(model, tmp_path / "model.onnx", 3, opset=17, sample_size=(64, 96))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 64, 96), (2, 3, 97, 131)]:
        image = torch.randn(shape)
        with torch.no_grad():
            expected = model(image)["out"].numpy()
        (logits,) = session.run(None, {"input": image.numpy()})
        assert logits.shape == expected.shape
        scale = max(1.0, float(np.abs(expected).max()))
        assert np.abs(logits - expected).max() <= 1e-4 * scale


def test_unknown_arch_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError) as error:
        build_model("deeplabv3_r5", 3)
    assert str(error.value) == (
        "unknown arch 'deeplabv3_r5' (did you mean deeplabv3_r50, deeplabv3_mbv3?); valid archs: "
        "deeplabv3_mbv3, deeplabv3_r50, hrnetv2_w48_ocr, lraspp_mbv3"
    )


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
import sys
from zoo.models import build_model
for arch in sys.argv[1:]:
    try:
        build_model(arch, 3, pretrained_backbone=True)
    except RuntimeError as error:
        print(error)
    else:
        raise SystemExit(f"{arch}: no error")
"""
    env = {"HF_HUB_OFFLINE": "1", "TORCH_HOME": "/nonexistent-torch-home", "PATH": ""}
    archs = sorted(ARCHITECTURES)
    result = subprocess.run(
        [sys.executable, "-c", code, *archs], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(archs)
    for arch, line in zip(archs, lines, strict=True):
        assert line.startswith(f"could not download the ImageNet backbone weights for {arch}")
        assert "pretrained_backbone=False" in line


@pytest.mark.parametrize("arch", UNPUBLISHED_ARCHS)
def test_an_unpublished_arch_trains_exports_and_loads(arch: str, tmp_path) -> None:
    """Added by its row alone: a SynthCity recipe trains it, `export` drops its aux head and
    writes a model directory that `zoo.load` runs; the registry and cards do not list it."""
    from safetensors.torch import load_file

    from export.api import export_model
    from training.data.synthetic import write_tiny_dataset
    from training.recipes import apply_overrides, get_recipe
    from training.trainer import Trainer
    from zoo import load

    assert not [model_id for model_id in list_models() if model_id.startswith(f"{arch}_")]
    root = write_tiny_dataset("synthcity", tmp_path / "data", n_train=4, n_val=1, size=(32, 48))
    recipe = apply_overrides(
        get_recipe(f"{arch}_synthcity_cpg"),
        dict(
            iterations=2, batch_size=2, crop_size=(32, 32), eval_interval=2, log_interval=1,
            checkpoint_interval=2, warmup_iters=1, workers=0, threads=1,
        ),
    )  # fmt: skip
    Trainer(recipe, tmp_path / "run", data_root=root, progress=False).fit()
    trained = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    inference_keys = set(_state_shapes(arch, 19, False))
    assert trained.keys() == set(_state_shapes(arch, 19, recipe.aux_loss))

    out = export_model(tmp_path / "run" / "last.pt", tmp_path / "model", shapes=((1, 3, 32, 48),))
    assert load_file(str(out / "model.safetensors")).keys() == inference_keys  # aux dropped
    segmenter = load(out, backend="onnx")
    assert segmenter.num_classes == 19
    mask = segmenter.predict(np.zeros((40, 56, 3), np.uint8))
    assert mask.shape == (40, 56) and mask.dtype.kind in "iu"
