"""export: checkpoint -> model directory, parity gates, damaged inputs, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from bench.synthetic import random_checkpoint, save_checkpoint, small_config
from export import CheckpointError, ParityError, ParityGates, check_onnx_file, export_model
from export.checkpoint import load_checkpoint
from export.cli import main as cli_main
from export.images import load_calibration_set, synthetic_images
from export.parity import int8_parity
from export.quantize import ArrayReader
from tests.helpers_checkpoints import pattern_images, trained_checkpoint
from tests.helpers_torch import one_torch_thread  # noqa: F401 (autouse fixture)
from zoo.config import ModelConfig
from zoo.modelfiles import (
    CONFIG_NAME,
    EVAL_NAME,
    ONNX_FP16_NAME,
    ONNX_INT8_NAME,
    ONNX_NAME,
    WEIGHTS_NAME,
)
from zoo.models import build_model, has_aux_head

# small gate inputs: batch 1, an odd size, batch 2
SHAPES = ((1, 3, 64, 96), (1, 3, 49, 75), (2, 3, 64, 64))
ARCHS = [
    "lraspp_mbv3",
    pytest.param("deeplabv3_r50", marks=pytest.mark.slow),
    pytest.param("hrnetv2_w48_ocr", marks=pytest.mark.slow),
]


@pytest.fixture(scope="module")
def lraspp_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_checkpoint("lraspp_mbv3", tmp_path_factory.mktemp("ckpt") / "lraspp.pt")


@pytest.fixture(scope="module")
def lraspp_dir(lraspp_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_model(lraspp_checkpoint, tmp_path_factory.mktemp("out") / "m", shapes=SHAPES)


def _ort_vs_torch(model_dir: Path, shape: tuple[int, int, int, int]) -> float:
    """Independent check: max |logit diff| of ORT vs the reloaded torch model."""
    loaded = load_checkpoint(model_dir)
    model = build_model(loaded.config.arch, loaded.config.num_classes)
    model.load_state_dict(loaded.state_dict, strict=True)
    x = synthetic_images(shape, loaded.config.mean, loaded.config.std, seed=7)
    with torch.no_grad():
        reference = model.eval()(torch.from_numpy(x))["out"].numpy()
    logits = check_onnx_file(model_dir / ONNX_NAME).run(["logits"], {"input": x})[0]
    assert logits.shape == reference.shape
    return float(np.abs(logits - reference).max())


@pytest.mark.parametrize("arch", ARCHS)
def test_export_parity(arch: str, tmp_path: Path) -> None:
    checkpoint = random_checkpoint(arch, tmp_path / "c.pt", aux_loss=has_aux_head(arch))
    out = export_model(checkpoint, tmp_path / "model", shapes=SHAPES)
    assert {p.name for p in out.iterdir()} == {CONFIG_NAME, WEIGHTS_NAME, ONNX_NAME, EVAL_NAME}
    # the modes `open()` / `mkdir` give in this process (not mkstemp's 0600 / mkdtemp's 0700)
    (tmp_path / "plain.txt").write_text("")
    (tmp_path / "plain").mkdir()
    file_mode = (tmp_path / "plain.txt").stat().st_mode & 0o777
    assert {p.stat().st_mode & 0o777 for p in out.iterdir()} == {file_mode}
    assert out.stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777
    onnx.checker.check_model(str(out / ONNX_NAME), full_check=True)
    graph = onnx.load(str(out / ONNX_NAME)).graph
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert graph.input[0].name == "input" and dims == ["batch", 3, "height", "width"]
    dims = [d.dim_param or d.dim_value for d in graph.output[0].type.tensor_type.shape.dim]
    assert graph.output[0].name == "logits" and dims == ["batch", 4, "height", "width"]

    report = json.loads((out / EVAL_NAME).read_text())["export"]
    cases = report["parity"]["fp32"]["cases"]
    assert [tuple(c["input_shape"]) for c in cases] == list(SHAPES)
    assert all(
        c["max_abs_diff"] <= 1e-3 and c["argmax_agreement_decisive"] >= 0.9999 for c in cases
    )
    assert report["ir_version"] <= 10 and report["opset"] >= 17
    assert _ort_vs_torch(out, (1, 3, 71, 53)) <= 1e-3


def test_safetensors_round_trip(lraspp_checkpoint: Path, lraspp_dir: Path) -> None:
    original = torch.load(lraspp_checkpoint, weights_only=True)["model"]
    reloaded = load_file(str(lraspp_dir / WEIGHTS_NAME))
    assert reloaded.keys() == original.keys()
    for key, value in original.items():
        assert reloaded[key].dtype == value.dtype
        assert reloaded[key].numpy().tobytes() == value.numpy().tobytes(), key
    config = ModelConfig.load(lraspp_dir)
    assert load_checkpoint(lraspp_dir / WEIGHTS_NAME).config == config
    model = build_model(config.arch, config.num_classes)
    model.load_state_dict(reloaded, strict=True)


def test_model_dir_and_safetensors_are_export_sources(lraspp_dir: Path, tmp_path: Path) -> None:
    out = export_model(lraspp_dir, tmp_path / "again", shapes=SHAPES[1:2])
    assert (out / ONNX_NAME).is_file()


def _write_dataset(folder: Path, count: int, num_classes: int) -> Path:
    images, labels = pattern_images(count, (96, 96), num_classes, seed=1)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        (folder / "images" / "a").mkdir(parents=True, exist_ok=True)
        (folder / "labels" / "a").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / "images" / "a" / f"{i:03d}.png")
        Image.fromarray(label.astype(np.uint8)).save(folder / "labels" / "a" / f"{i:03d}.png")
    return folder


@pytest.mark.parametrize("arch", ARCHS)
def test_int8_export_meets_gate_on_trained_model(arch: str, tmp_path: Path) -> None:
    checkpoint = trained_checkpoint(arch, tmp_path / "t.pt", num_classes=3)
    data = _write_dataset(tmp_path / "data", 8, 3)
    out = export_model(
        checkpoint,
        tmp_path / "model",
        int8=True,
        calib_data=data,
        calib_size=(96, 96),
        shapes=SHAPES,
    )
    check_onnx_file(out / ONNX_INT8_NAME)
    graph = onnx.load(str(out / ONNX_INT8_NAME))
    assert graph.ir_version <= 10
    producer = {output: node for node in graph.graph.node for output in node.output}
    upsample = producer["logits"]
    while upsample.op_type == "Slice":  # HRNet crops its pad-to-32 margin after upsampling
        upsample = producer[upsample.input[0]]
    assert upsample.op_type == "Resize"  # float logits: no 8-bit rounding at full resolution
    report = json.loads((out / EVAL_NAME).read_text())["export"]
    rewritten = report["int8"]["hardswish_rewritten"]
    assert rewritten == (20 if arch == "lraspp_mbv3" else 0)  # MobileNetV3-Large's hard-swishes
    assert report["int8"]["hardswish_scales_folded"] == rewritten
    assert "HardSwish" not in {node.op_type for node in graph.graph.node}
    shapes = [node for node in graph.graph.node if node.op_type == "Shape"]
    assert report["int8"]["shapes_read_before_dequantize"] >= 1  # the input's, for the upsampling
    read = [producer.get(n.input[0]) for n in shapes]
    assert "DequantizeLinear" not in {node.op_type for node in read if node is not None}
    int8 = report["parity"]["int8"]
    assert int8["passed"] and int8["argmax_agreement"] >= 0.98
    assert int8["miou_images"] == 8 and int8["miou_fp32"] > 0.5  # really trained (3 classes)
    assert int8["miou_drop"] <= 0.05


def test_fp16_and_argmax_head(lraspp_checkpoint: Path, tmp_path: Path) -> None:
    out = export_model(
        lraspp_checkpoint, tmp_path / "m", fp16=True, head="argmax", shapes=SHAPES[1:]
    )
    session = check_onnx_file(out / ONNX_NAME)
    assert [o.name for o in session.get_outputs()] == ["logits", "labels"]
    x = synthetic_images((1, 3, 40, 56), [0.5] * 3, [0.25] * 3)
    logits, labels = session.run(None, {"input": x})
    assert labels.shape == (1, 40, 56) and np.array_equal(labels, logits.argmax(1))
    fp16 = check_onnx_file(out / ONNX_FP16_NAME)
    assert fp16.get_inputs()[0].type == "tensor(float)"
    half_logits, half_labels = fp16.run(None, {"input": x})
    assert np.array_equal(half_labels, half_logits.argmax(1))
    assert (half_labels == labels).mean() > 0.9  # fp16 decides (almost) like fp32
    report = json.loads((out / EVAL_NAME).read_text())["export"]
    assert report["parity"]["fp16"]["input_shape"] == list(SHAPES[-1])


def test_failed_gate_leaves_no_model_dir(lraspp_checkpoint: Path, tmp_path: Path) -> None:
    impossible = ParityGates(fp32_max_abs_diff=0.0)
    with pytest.raises(ParityError) as error:
        export_model(lraspp_checkpoint, tmp_path / "m", shapes=SHAPES[1:2], gates=impossible)
    assert "max |logit diff|" in str(error.value)
    assert error.value.figures["cases"][0]["max_abs_diff"] > 0
    assert list(tmp_path.iterdir()) == []


def test_failed_gate_keeps_previous_model_dir(lraspp_dir: Path, tmp_path: Path) -> None:
    previous = {p.name: p.read_bytes() for p in lraspp_dir.iterdir()}
    other = random_checkpoint("lraspp_mbv3", tmp_path / "other.pt", seed=3)
    with pytest.raises(ParityError):
        export_model(other, lraspp_dir, shapes=SHAPES[:1], gates=ParityGates(fp32_max_abs_diff=0))
    assert {p.name: p.read_bytes() for p in lraspp_dir.iterdir()} == previous
    assert not [p for p in lraspp_dir.parent.iterdir() if p.name.startswith(".")]


def test_eval_json_is_merged(lraspp_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    out.mkdir()
    (out / EVAL_NAME).write_text(json.dumps({"miou": 0.5, "export": {"old": True}}))
    export_model(lraspp_checkpoint, out, shapes=SHAPES[1:2])
    data = json.loads((out / EVAL_NAME).read_text())
    assert data["miou"] == 0.5 and "old" not in data["export"]


def _same_weights_pass_other_weights_refused(checkpoint: Path, out: Path, tmp_path: Path) -> None:
    """Re-exporting `checkpoint` into `out` keeps eval.json's metrics (mIoU 0.5); exporting
    other weights is refused and leaves `out` as it was."""
    export_model(checkpoint, out, shapes=SHAPES[1:2])  # the same weights: fine
    assert json.loads((out / EVAL_NAME).read_text())["metrics"] == {"mIoU": 0.5}
    other = random_checkpoint("lraspp_mbv3", tmp_path / "other.pt", seed=1)
    before = (out / WEIGHTS_NAME).read_bytes()
    with pytest.raises(ValueError, match="holds metrics of another checkpoint"):
        export_model(other, out, shapes=SHAPES[1:2])
    assert (out / WEIGHTS_NAME).read_bytes() == before


def test_metrics_of_other_weights_refuse_the_export(
    lraspp_checkpoint: Path, tmp_path: Path
) -> None:
    """eval.json measured on checkpoint A: exporting checkpoint B beside it is an error."""
    from zoo.fileio import file_sha256

    out = tmp_path / "m"
    out.mkdir()
    measured = {"metrics": {"mIoU": 0.5}, "checkpoint_sha256": file_sha256(lraspp_checkpoint)}
    (out / EVAL_NAME).write_text(json.dumps(measured))
    _same_weights_pass_other_weights_refused(lraspp_checkpoint, out, tmp_path)


def test_metrics_of_the_exported_files_refuse_other_weights(
    lraspp_checkpoint: Path, tmp_path: Path
) -> None:
    """`zoo eval MODEL_DIR` measured the files exported from checkpoint A: exporting checkpoint
    B over the directory is an error too (its eval.json would keep A's metrics)."""
    out = tmp_path / "m"
    export_model(lraspp_checkpoint, out, shapes=SHAPES[1:2])
    data = json.loads((out / EVAL_NAME).read_text())
    onnx_sha = data["export"]["files"][ONNX_NAME]["sha256"]
    data.update(metrics={"mIoU": 0.5}, model_file=ONNX_NAME, model_file_sha256=onnx_sha)
    (out / EVAL_NAME).write_text(json.dumps(data))
    _same_weights_pass_other_weights_refused(lraspp_checkpoint, out, tmp_path)


def test_truncated_onnx_gives_clear_error(lraspp_dir: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.onnx"
    data = (lraspp_dir / ONNX_NAME).read_bytes()
    damaged.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"damaged\.onnx"):
        check_onnx_file(damaged)
    with pytest.raises(FileNotFoundError, match=r"missing\.onnx"):
        check_onnx_file(tmp_path / "missing.onnx")


def test_garbage_checkpoint_gives_clear_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match=r"garbage\.pt is not a training checkpoint: it is a"):
        export_model(garbage, tmp_path / "m")
    torch.save({"weights": {}}, tmp_path / "keys.pt")
    with pytest.raises(
        CheckpointError, match=r"keys\.pt lacks the keys model, config \(its keys: weights\)"
    ):
        export_model(tmp_path / "keys.pt", tmp_path / "m")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match=r"broken\.safetensors"):
        export_model(broken, tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_wrong_arch_or_class_count_gives_clear_error(tmp_path: Path) -> None:
    lraspp = build_model("lraspp_mbv3", 4)
    wrong_arch = save_checkpoint(lraspp, small_config("deeplabv3_r50", 4), tmp_path / "arch.pt")
    with pytest.raises(CheckpointError, match=r"arch\.pt: state dict does not fit deeplabv3_r50"):
        export_model(wrong_arch, tmp_path / "m")
    wrong_count = save_checkpoint(lraspp, small_config("lraspp_mbv3", 5), tmp_path / "count.pt")
    with pytest.raises(CheckpointError, match="shape mismatch"):
        export_model(wrong_count, tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_cli(lraspp_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "m"
    argv = [str(lraspp_checkpoint), "--out", str(out), "--shape", "1x3x48x64", "--head", "probs",
            "--shape", "2x3x32x40"]  # fmt: skip
    assert cli_main(argv) == 0
    steps = [line for line in capsys.readouterr().err.splitlines() if line.startswith("zoo ")]
    assert steps == [
        f"zoo export: reading {lraspp_checkpoint}",
        "zoo export: writing model.safetensors",
        "zoo export: ONNX export (opset 18) to model.onnx",
        "zoo export: fp32 parity: shape 1 of 2 (1x3x48x64)",
        "zoo export: fp32 parity: shape 2 of 2 (2x3x32x40)",
        f"zoo export: writing {out}",  # a new directory
    ]
    assert cli_main([*argv, "--quiet"]) == 0
    assert "zoo export:" not in capsys.readouterr().err
    assert cli_main(argv) == 0
    assert capsys.readouterr().err.splitlines()[-1] == f"zoo export: replacing {out}"
    report = json.loads((out / EVAL_NAME).read_text())["export"]
    assert report["command"].startswith("zoo export ") and report["outputs"] == ["logits", "probs"]
    (tmp_path / "bad.pt").write_bytes(b"nope")
    assert cli_main([str(tmp_path / "bad.pt"), "--out", str(tmp_path / "x")]) == 1
    assert "bad.pt" in capsys.readouterr().err
    assert cli_main([str(lraspp_checkpoint), "--out", str(tmp_path / "y"), "--int8"]) == 1


def test_int8_steps_report_progress(lraspp_dir: Path) -> None:
    """The calibrator's reader and the int8 gate say which image / batch they are at."""
    lines: list[str] = []
    images = [np.zeros((1, 3, 8, 8), np.float32)] * 3
    reader = ArrayReader(images, lines.append)
    while reader.get_next() is not None:
        pass
    assert lines == [f"int8 calibration: image {i} of 3" for i in (1, 2, 3)]
    lines.clear()
    session = check_onnx_file(lraspp_dir / ONNX_NAME)
    inputs = [synthetic_images((1, 3, 32, 48), [0.5] * 3, [0.2] * 3, seed=1)] * 2
    int8_parity(session, session, inputs, ParityGates(), num_classes=4, progress=lines.append)
    assert lines == [
        "int8 parity: batch 1 of 2 (1x3x32x48)",
        "int8 parity: batch 2 of 2 (1x3x32x48)",
    ]


def test_calibration_images_are_normalised_with_the_config(tmp_path: Path) -> None:
    config = small_config("lraspp_mbv3")
    config.mean, config.std = [0.5, 0.5, 0.5], [0.25, 0.5, 0.1]
    Image.fromarray(np.full((4, 6, 3), (255, 0, 51), np.uint8)).save(tmp_path / "a.png")
    (image,) = load_calibration_set(tmp_path, (4, 6), config.mean, config.std).images
    # (255/255 - 0.5) / 0.25, (0 - 0.5) / 0.5, (51/255 - 0.5) / 0.1
    assert image.shape == (1, 3, 4, 6)
    assert np.allclose(image[0, :, 2, 3], [2.0, -1.0, -3.0], atol=1e-5)


def test_calibration_labels_in_cityscapes_layout(tmp_path: Path) -> None:
    city = tmp_path / "leftImg8bit" / "val" / "town"
    labels = tmp_path / "gtFine" / "val" / "town"
    city.mkdir(parents=True)
    labels.mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (40, 20), (i * 50, 0, 0)).save(city / f"town_{i}_leftImg8bit.png")
        Image.new("L", (40, 20), i).save(labels / f"town_{i}_gtFine_labelTrainIds.png")
    for folder in (tmp_path, tmp_path / "leftImg8bit" / "val"):
        calibration = load_calibration_set(folder, (10, 20), [0.5] * 3, [0.5] * 3)
        assert len(calibration.images) == 3 and calibration.images[0].shape == (1, 3, 10, 20)
        assert calibration.labels is not None
        assert [int(label.max()) for label in calibration.labels] == [0, 1, 2]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty: no images found for calibration"):
        load_calibration_set(empty, (8, 8), [0] * 3, [1] * 3)
    with pytest.raises(FileNotFoundError, match="missing: calibration folder not found"):
        load_calibration_set(tmp_path / "missing", (8, 8), [0] * 3, [1] * 3)
