"""zoo.load + Segmenter on small local model directories (lraspp_mbv3, 4 classes)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zoo
from tests.helpers_modeldir import smooth_image
from zoo import preprocess
from zoo.errors import ModelFileError, ModelNotAvailableError
from zoo.modelfiles import ONNX_NAME, WEIGHTS_NAME
from zoo.segmenter import Segmenter

NUM_CLASSES = 4


@pytest.fixture(scope="session")
def image() -> np.ndarray:
    return smooth_image(90, 140, seed=3)


def test_load_each_backend(model_dir: Path, onnx_seg: Segmenter, torch_seg: Segmenter) -> None:
    assert onnx_seg.backend_name == "onnx"
    assert onnx_seg.providers == ["CPUExecutionProvider"]
    assert onnx_seg.device == "cpu"
    assert torch_seg.backend_name == "torch"
    assert torch_seg.device == "cpu"
    auto = zoo.load(str(model_dir))  # model.onnx present -> ONNX
    assert auto.backend_name == "onnx"
    assert auto.classes == [f"class{i}" for i in range(NUM_CLASSES)]
    assert auto.palette.shape == (NUM_CLASSES, 3) and auto.palette.dtype == np.uint8
    assert auto.config.num_classes == NUM_CLASSES


def test_auto_falls_back_to_torch_without_onnx(model_dir: Path, tmp_path: Path) -> None:
    for name in ("config.json", WEIGHTS_NAME):
        shutil.copy(model_dir / name, tmp_path / name)
    assert zoo.load(str(tmp_path), device="cpu").backend_name == "torch"
    with pytest.raises(ModelNotAvailableError, match=r"model\.onnx not found"):
        zoo.load(str(tmp_path), backend="onnx")


def test_backends_agree(onnx_seg: Segmenter, torch_seg: Segmenter) -> None:
    for seed in range(2):
        img = smooth_image(96, 160, seed=10 + seed)
        a, b = onnx_seg.predict(img), torch_seg.predict(img)
        assert a.shape == b.shape == (96, 160)
        assert len(np.unique(a)) > 1, "BN-calibrated weights should give varied masks"
        top2 = np.sort(torch_seg.predict_logits(img), axis=0)[-2:]
        confident = (top2[1] - top2[0]) > 0.5
        assert confident.mean() > 0.1
        assert np.array_equal(a[confident], b[confident])
        assert (a == b).mean() > 0.99


def test_mask_dtype_and_proba(onnx_seg: Segmenter, image: np.ndarray) -> None:
    mask = onnx_seg.predict(image)
    assert mask.dtype == np.uint8 and mask.shape == image.shape[:2]
    proba = onnx_seg.predict_proba(image)
    assert proba.shape == (NUM_CLASSES, *image.shape[:2]) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=0), 1.0, atol=1e-5)
    assert np.array_equal(proba.argmax(axis=0), mask)


def test_input_kinds(onnx_seg: Segmenter, image: np.ndarray, tmp_path: Path) -> None:
    expected = onnx_seg.predict(image)
    path = tmp_path / "img.png"
    Image.fromarray(image).save(path)
    assert np.array_equal(onnx_seg.predict(path), expected)
    assert np.array_equal(onnx_seg.predict(str(path)), expected)
    assert np.array_equal(onnx_seg.predict(Image.fromarray(image)), expected)
    rgba = np.dstack([image, np.full(image.shape[:2], 128, np.uint8)])
    assert np.array_equal(onnx_seg.predict(rgba), expected)
    assert np.array_equal(onnx_seg.predict(Image.fromarray(rgba, "RGBA")), expected)
    # grayscale: file, PIL and 2-D array all mean the gray image repeated on 3 channels
    gray = np.asarray(Image.fromarray(image).convert("L"))
    gray_expected = onnx_seg.predict(np.repeat(gray[..., None], 3, axis=2))
    Image.fromarray(gray).save(tmp_path / "gray.png")
    assert np.array_equal(onnx_seg.predict(tmp_path / "gray.png"), gray_expected)
    assert np.array_equal(onnx_seg.predict(gray), gray_expected)
    # 16-bit: scaled to 8-bit
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "gray16.png")
    assert Image.open(tmp_path / "gray16.png").mode.startswith("I")
    assert np.array_equal(onnx_seg.predict(tmp_path / "gray16.png"), gray_expected)
    assert np.array_equal(onnx_seg.predict(image.astype(np.uint16) * 257), expected)


def test_exif_rotation(onnx_seg: Segmenter, tmp_path: Path) -> None:
    image = Image.fromarray(smooth_image(60, 100, seed=4))
    exif = image.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=95)
    mask = onnx_seg.predict(path)
    assert mask.shape == (100, 60)  # follows the displayed (rotated) image
    from PIL import ImageOps

    upright = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert np.array_equal(mask, onnx_seg.predict(upright))


def test_batch_equals_single(onnx_seg: Segmenter) -> None:
    images = [smooth_image(64, 96, seed=s) for s in range(3)] + [smooth_image(50, 70, seed=9)]
    singles = [onnx_seg.predict(img) for img in images]
    batched = onnx_seg.predict(images, batch_size=3)
    assert isinstance(batched, list) and len(batched) == len(images)
    for single, many in zip(singles, batched, strict=True):
        assert np.array_equal(single, many)


def test_resize_policies_give_input_sized_masks(onnx_seg: Segmenter) -> None:
    big = smooth_image(150, 260, seed=5)  # larger than the 64x96 window
    full = onnx_seg.predict(big, max_side=None)
    small = onnx_seg.predict(big, max_side=80)
    slide = onnx_seg.predict(big, mode="slide")
    for mask in (full, small, slide):
        assert mask.shape == (150, 260)
    proba = onnx_seg.predict_proba(big, max_side=80)
    assert proba.shape == (NUM_CLASSES, 150, 260)
    np.testing.assert_allclose(proba.sum(axis=0), 1.0, atol=1e-5)
    tiny = smooth_image(40, 50, seed=6)  # smaller than the window: one clipped tile
    assert np.array_equal(onnx_seg.predict(tiny, mode="slide"), onnx_seg.predict(tiny))


def test_max_side_upsamples_logits_like_torch(onnx_seg: Segmenter) -> None:
    import torch
    import torch.nn.functional as F

    big = smooth_image(150, 260, seed=5)
    logits = onnx_seg.predict_logits(big, max_side=80)
    assert logits.shape == (NUM_CLASSES, 46, 80)
    reference = F.interpolate(
        torch.from_numpy(logits)[None], size=(150, 260), mode="bilinear", align_corners=False
    )[0].numpy()
    np.testing.assert_allclose(preprocess.resize_logits(logits, (150, 260)), reference, atol=1e-4)
    mask = onnx_seg.predict(big, max_side=80)
    top2 = np.sort(reference, axis=0)[-2:]
    clear = (top2[1] - top2[0]) > 1e-3
    assert np.array_equal(mask[clear], reference.argmax(axis=0)[clear])


def test_slide_averages_window_logits(onnx_seg: Segmenter) -> None:
    big = smooth_image(150, 260, seed=5)
    # 64x96 tiles every (43, 64) px (2/3 of the window, rounded up), last ones flush with the edge
    windows = [
        (slice(top, top + 64), slice(left, left + 96))
        for top in (0, 43, 86)
        for left in (0, 64, 128, 164)
    ]
    total = np.zeros((NUM_CLASSES, 150, 260), np.float32)
    count = np.zeros((150, 260), np.float32)
    for rows, cols in windows:
        total[:, rows, cols] += onnx_seg.predict_logits(big[rows, cols], max_side=None)
        count[rows, cols] += 1
    assert count.min() >= 1
    got = onnx_seg.predict_logits(big, mode="slide")
    np.testing.assert_allclose(got, total / count, atol=1e-4)
    assert np.array_equal(onnx_seg.predict(big, mode="slide", batch_size=5), got.argmax(axis=0))


def test_thread_safety(onnx_seg: Segmenter, torch_seg: Segmenter) -> None:
    images = [smooth_image(64 + 8 * (s % 3), 96, seed=20 + s) for s in range(6)]
    for seg in (onnx_seg, torch_seg):
        sequential = [seg.predict(img) for img in images]
        with ThreadPoolExecutor(4) as pool:
            concurrent = list(pool.map(seg.predict, images * 2))
        for expected, got in zip(sequential * 2, concurrent, strict=True):
            assert np.array_equal(expected, got)


def test_colorize_overlay_and_mask_image(onnx_seg: Segmenter, image: np.ndarray) -> None:
    mask = onnx_seg.predict(image)
    colors = onnx_seg.colorize(mask)
    assert colors.shape == (*mask.shape, 3) and colors.dtype == np.uint8
    assert np.array_equal(colors[mask == mask[0, 0]][0], onnx_seg.palette[mask[0, 0]])
    blended = onnx_seg.overlay(image, mask, alpha=1.0)
    assert np.array_equal(blended, colors)
    assert np.array_equal(onnx_seg.overlay(image, mask, alpha=0.0), image)
    void = mask.copy()
    void[:5] = 255
    assert np.array_equal(onnx_seg.overlay(image, void, alpha=1.0)[:5], image[:5])
    with pytest.raises(ValueError, match="mask"):
        onnx_seg.overlay(image, mask[:10])
    png = onnx_seg.mask_image(mask)
    assert png.mode == "P" and np.array_equal(np.asarray(png), mask)
    assert png.getpalette()[:3] == onnx_seg.palette[0].tolist()


def test_onnx_path_does_not_import_torch(model_dir: Path, tmp_path: Path) -> None:
    Image.fromarray(smooth_image(64, 96, seed=1)).save(tmp_path / "x.png")
    code = textwrap.dedent(
        f"""
        import sys
        import zoo
        seg = zoo.load({str(model_dir)!r}, backend="onnx", device="cpu")
        mask = seg.predict({str(tmp_path / "x.png")!r})
        assert mask.shape == (64, 96), mask.shape
        seg.predict_proba({str(tmp_path / "x.png")!r}, mode="slide")
        seg = zoo.load({str(model_dir)!r})
        assert seg.backend_name == "onnx"
        bad = [m for m in ("torch", "torchvision", "timm") if m in sys.modules]
        assert not bad, bad
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# ---------------------------------------------------------------- errors


def test_missing_or_incomplete_model_dir(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        zoo.load(str(tmp_path / "nope"))
    with pytest.raises(ModelNotAvailableError, match=r"config\.json is missing"):
        zoo.load(str(tmp_path))
    shutil.copy(Path(__file__), tmp_path / "x.py")
    with pytest.raises(ValueError, match="is a file"):
        zoo.load(str(tmp_path / "x.py"))


def test_a_checkpoint_or_a_model_file_in_place_of_the_directory_says_what_to_pass(
    model_dir: Path, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "runs" / "mine" / "last.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"PK")
    message = re.escape(
        f"{checkpoint} is a file, not a model directory, perhaps a training checkpoint: export "
        f"it with `zoo export {checkpoint} --out MODEL_DIR` and load MODEL_DIR"
    )
    with pytest.raises(ValueError, match=message):
        zoo.load(str(checkpoint))
    onnx = model_dir / "model.onnx"
    message = re.escape(
        f"{onnx} is a file, not a model directory: it is a model-directory file; pass its "
        f"directory {model_dir}"
    )
    with pytest.raises(ValueError, match=message):
        zoo.load(onnx)


def test_model_dir_without_model_files(model_dir: Path, tmp_path: Path) -> None:
    shutil.copy(model_dir / "config.json", tmp_path / "config.json")
    with pytest.raises(ModelNotAvailableError, match=r"neither model\.onnx nor"):
        zoo.load(str(tmp_path))
    with pytest.raises(ModelNotAvailableError, match=r"model\.safetensors not found"):
        zoo.load(str(tmp_path), backend="torch")


def test_precision_file_absent(model_dir: Path) -> None:
    with pytest.raises(ModelNotAvailableError, match=r"model\.int8\.onnx not found.*fp32"):
        zoo.load(str(model_dir), precision="int8")
    with pytest.raises(ModelNotAvailableError, match=r"model\.fp16\.onnx"):
        zoo.load(str(model_dir), backend="onnx", precision="fp16")
    with pytest.raises(ValueError, match="unknown precision"):
        zoo.load(str(model_dir), precision="fp8")


def test_damaged_onnx(model_dir: Path, tmp_path: Path) -> None:
    shutil.copy(model_dir / "config.json", tmp_path / "config.json")
    data = (model_dir / ONNX_NAME).read_bytes()
    (tmp_path / ONNX_NAME).write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelFileError, match=str(tmp_path / ONNX_NAME)):
        zoo.load(str(tmp_path), device="cpu")


def test_damaged_weights(model_dir: Path, tmp_path: Path) -> None:
    shutil.copy(model_dir / "config.json", tmp_path / "config.json")
    (tmp_path / WEIGHTS_NAME).write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match=WEIGHTS_NAME):
        zoo.load(str(tmp_path), backend="torch", device="cpu")


def test_unknown_registry_id_lists_valid_ids() -> None:
    with pytest.raises(ValueError, match="lraspp_mbv3_cityscapes_cpg") as info:
        zoo.load("lraspp_mbv3_cityscape_cpg")
    assert "Did you mean" in str(info.value)
    assert "deeplabv3_r50_ade20k_ce" in str(info.value)


def test_unpublished_registry_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry id whose Hub repo is missing: the hub's error, labelled with the id."""
    calls = []

    def download_model(repo_id, revision=None, backend="onnx", precision="fp32"):
        calls.append((repo_id, revision, backend))
        raise ModelNotAvailableError(f"Hub repo {repo_id} not found")

    fake = types.ModuleType("zoo.hub")
    fake.download_model = download_model  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "zoo.hub", fake)
    monkeypatch.setenv("CPG_ZOO_HUB_NAMESPACE", "some-org")
    with pytest.raises(ModelNotAvailableError, match=r"lraspp_mbv3_cityscapes_cpg.*not be trained"):
        zoo.load("lraspp_mbv3_cityscapes_cpg")
    assert calls[0] == ("some-org/lraspp_mbv3_cityscapes_cpg", None, "onnx")
    with pytest.raises(ModelNotAvailableError):
        zoo.load("hf-hub:org/repo@v1", backend="torch")
    assert calls[-1] == ("org/repo", "v1", "torch")
    with pytest.raises(ValueError, match="pins revision"):
        zoo.load("hf-hub:org/repo@v1", revision="v2")


def test_bad_images(onnx_seg: Segmenter, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.png"):
        onnx_seg.predict(tmp_path / "missing.png")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(ValueError, match=r"corrupt\.jpg"):
        onnx_seg.predict(corrupt)
    with pytest.raises(
        ValueError, match=r"got \(4, 5, 6, 3\); a batch of images goes in as a list"
    ):
        onnx_seg.predict(np.zeros((4, 5, 6, 3), np.uint8))
    with pytest.raises(IsADirectoryError, match=rf"{re.escape(str(tmp_path))} is a folder, not"):
        onnx_seg.predict(tmp_path)  # exists: not "image file not found"
    with pytest.raises(TypeError, match=r"generator; .* several images go in as a list"):
        onnx_seg.predict(image for image in [np.zeros((10, 10, 3), np.uint8)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        onnx_seg.predict(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(ValueError, match="float32"):
        onnx_seg.predict(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(TypeError, match="unsupported image input int; pass a path") as info:
        onnx_seg.predict(12)  # type: ignore[arg-type]
    assert "list" not in str(info.value)  # an int is not several images
    with pytest.raises(ValueError, match="unknown mode"):
        onnx_seg.predict(np.zeros((10, 10, 3), np.uint8), mode="tiles")


def test_bad_config(model_dir: Path, tmp_path: Path) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    config["classes"] = config["classes"][:2]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="class names"):
        zoo.load(str(tmp_path))


@pytest.mark.parametrize(
    ("shape", "size"), [((5, 37, 53), (150, 301)), ((3, 10, 10), (7, 13)), ((4, 1, 1), (5, 5))]
)
def test_argmax_resized_matches_full_interpolation(shape: tuple, size: tuple) -> None:
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(shape, dtype=np.float32)
    coarse = rng.standard_normal((shape[0], 4, 5), dtype=np.float32)
    smooth = preprocess.resize_logits(coarse, shape[1:])  # mostly agreeing neighbours
    for logits in (noise, smooth):
        expected = preprocess.resize_logits(logits, size).argmax(axis=0)
        assert np.array_equal(preprocess.argmax_resized(logits, size, np.uint8), expected)
        assert np.array_equal(preprocess.class_argmax(logits, np.int32), logits.argmax(axis=0))


@pytest.mark.slow
def test_loads_a_directory_written_by_export(model_dir: Path, tmp_path: Path) -> None:
    """The contract with `export.export_model`: its model directory loads on both backends."""
    api = pytest.importorskip("export.api", reason="export.export_model not available")
    import torch
    from safetensors.torch import load_file

    from zoo.config import ModelConfig

    checkpoint = tmp_path / "checkpoint.pt"  # the trainer's format: state dict + config
    state = load_file(str(model_dir / WEIGHTS_NAME))
    torch.save({"model": state, "config": ModelConfig.load(model_dir).to_dict()}, checkpoint)
    exported = api.export_model(checkpoint, tmp_path / "exported", shapes=((1, 3, 64, 96),))
    onnx_seg = zoo.load(str(exported), device="cpu")
    torch_seg = zoo.load(str(exported), backend="torch", device="cpu")
    assert onnx_seg.backend_name == "onnx"
    img = smooth_image(72, 120, seed=8)
    a, b = onnx_seg.predict(img), torch_seg.predict(img)
    assert a.shape == (72, 120)
    assert (a == b).mean() > 0.99


def test_cuda_request_without_a_gpu(model_dir: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu installed: device='cuda' may work here")
    with pytest.raises(RuntimeError, match="onnxruntime-gpu"):
        zoo.load(str(model_dir), backend="onnx", device="cuda")
    with pytest.raises(ValueError, match="unknown device"):
        zoo.load(str(model_dir), device="gpu")
    auto = zoo.load(str(model_dir), backend="onnx")  # "auto" falls back to the CPU
    assert auto.device == "cpu" and auto.providers == ["CPUExecutionProvider"]


def test_the_packaged_model_loads_by_name_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """`zoo.load("lraspp_mbv3_synthcity_cpg")`: the demo's model, shipped in the package."""
    from zoo.loading import PACKAGED_MODELS_DIR, packaged_models

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert packaged_models() == ["lraspp_mbv3_synthcity_cpg"]
    segmenter = zoo.load("lraspp_mbv3_synthcity_cpg")
    assert segmenter.model_dir == PACKAGED_MODELS_DIR / "lraspp_mbv3_synthcity_cpg"
    example = Path(zoo.__file__).parent / "assets" / "examples" / "synthcity_1.png"
    mask = segmenter.predict(example)
    assert mask.shape == Image.open(example).size[::-1]
    road, sky = 0, 10  # a trained street model finds at least these in a street scene
    assert {road, sky} <= set(np.unique(mask).tolist())
