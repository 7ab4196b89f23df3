"""Accuracy gates: bf16 / int8 paths measured against fp32 into eval.json, at export too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zoo
from export.precision_gates import main as gates_main
from export.precision_gates import measure_agreement, reduced_paths
from zoo import backend_openvino, backends, selection
from zoo.loading import PACKAGED_MODELS_DIR
from zoo.modeldir import record_files, verify_files

BUILTIN = PACKAGED_MODELS_DIR / "lraspp_mbv3_synthcity_cpg"
EXAMPLES = sorted((PACKAGED_MODELS_DIR.parent / "examples").glob("*.png"))
HAS_BF16 = "BF16" in backend_openvino.openvino_capabilities()


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """The built-in model with model.int8.onnx = a copy of model.onnx (so int8 == fp32)."""
    directory = tmp_path / "model"
    directory.mkdir()
    for name in ("config.json", "model.onnx", "eval.json"):
        shutil.copy(BUILTIN / name, directory / name)
    shutil.copy(BUILTIN / "model.onnx", directory / "model.int8.onnx")
    record_files(directory)
    return directory


@pytest.fixture
def frames(tmp_path: Path) -> Path:
    """The example images, labelled with ONNX Runtime fp32's own masks (fp32 mIoU = 1)."""
    folder = tmp_path / "frames"
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    reference = zoo.load(BUILTIN, backend="onnx", device="cpu")
    for path in EXAMPLES:
        shutil.copy(path, folder / "images" / path.name)
        Image.fromarray(reference.predict(path)).save(folder / "labels" / path.name)
    return folder


def test_measured_figures(model_dir: Path, frames: Path) -> None:
    pytest.importorskip("openvino")
    figures = measure_agreement(model_dir, frames / "images", num_threads=2)
    expected = {"onnx/int8", "openvino/int8"} | ({"openvino/bf16"} if HAS_BF16 else set())
    assert set(figures) == expected
    same_model = figures["onnx/int8"]  # the int8 file is the fp32 model: identical masks
    assert same_model["argmax_agreement"] == 1.0 and same_model["miou_drop"] == 0.0
    assert same_model["miou_fp32"] == 1.0  # labels are fp32's masks
    assert same_model["pixels"] == 3 * 256 * 512 and same_model["frames"] == 3
    assert same_model["size"] == [256, 512] and same_model["gate"] == 0.98
    for key, values in figures.items():
        assert values["passes"] == (values["argmax_agreement"] >= selection.GATES[key[-4:]])
        assert values["miou_drop"] == pytest.approx(1.0 - values["miou"])


def test_recorded_figures_drive_load_and_keep_the_files_valid(
    model_dir: Path, frames: Path
) -> None:
    pytest.importorskip("openvino")
    config_before = (model_dir / "config.json").read_bytes()
    eval_before = json.loads((model_dir / "eval.json").read_text())
    eval_before.pop(selection.AGREEMENT_KEY, None)
    assert gates_main([str(model_dir), str(frames / "images"), "--threads", "2"]) == 0
    data = json.loads((model_dir / "eval.json").read_text())
    assert {k: v for k, v in data.items() if k != selection.AGREEMENT_KEY} == eval_before
    record = data[selection.AGREEMENT_KEY]
    assert record["reference"] == "onnx/fp32" and "export.precision_gates" in record["command"]
    assert (model_dir / "config.json").read_bytes() == config_before
    verify_files(model_dir, ["model.onnx", "model.int8.onnx"])  # raises if a hash broke
    segmenter = zoo.load(model_dir)
    first = "openvino/bf16" if HAS_BF16 else "openvino/int8"
    assert f"{segmenter.backend_name}/{segmenter.precision}" == first
    assert f"{record[first]['argmax_agreement']:.2%}" in segmenter.selection


def test_no_reduced_path_without_openvino_or_int8(model_dir: Path, monkeypatch) -> None:
    (model_dir / "model.int8.onnx").unlink()
    monkeypatch.setattr(
        backends.BackendRow, "installed", lambda row: row.name != "openvino", raising=True
    )
    assert reduced_paths(model_dir) == []


def test_bad_arguments_name_the_problem(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        gates_main([str(tmp_path / "nope"), str(tmp_path)])
    assert "model directory" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no images found"):
        measure_agreement(BUILTIN, empty)


@pytest.mark.slow  # two exports (~40 s on a busy 2-core machine)
def test_export_records_agreement_and_drops_stale_figures(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from bench.synthetic import random_checkpoint
    from export import export_model

    checkpoint = random_checkpoint("lraspp_mbv3", tmp_path / "lraspp.pt", num_classes=4)
    calib = tmp_path / "calib"
    calib.mkdir()
    for seed, path in enumerate(EXAMPLES[:2]):
        image = Image.open(path).resize((128, 64))
        image.save(calib / f"{seed}.png")
    out = tmp_path / "model"
    shapes = ((1, 3, 64, 96),)
    export_model(checkpoint, out, calib_data=calib, calib_size=(64, 128), shapes=shapes)
    record = json.loads((out / "eval.json").read_text())[selection.AGREEMENT_KEY]
    paths = {k for k in record if "/" in k}
    has_bf16 = HAS_BF16 and backends.BACKENDS["openvino"].installed()
    assert paths == ({"openvino/bf16"} if has_bf16 else set())
    for key in paths:
        assert record[key]["size"] == [64, 128] and record[key]["frames"] == 2
    export_model(checkpoint, out, shapes=shapes)  # no calibration images: no figures
    assert selection.AGREEMENT_KEY not in json.loads((out / "eval.json").read_text())
    np.testing.assert_array_equal(zoo.load(out).predict(EXAMPLES[0]).shape, (256, 512))


def test_int8_parity_with_labelled_calibration_images() -> None:
    """Regression: the mIoU of labelled calibration images compared N x H x W predictions
    with H x W labels and failed every int8 export on a labelled folder."""
    import onnxruntime as ort

    from export.images import CalibrationSet
    from export.parity import ParityGates, int8_parity
    from tests.test_serving_ingraph import conv_model

    weights = np.asarray([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])  # class = strongest channel
    session = ort.InferenceSession(
        conv_model(weights, np.zeros(3)), providers=["CPUExecutionProvider"]
    )
    x = np.zeros((1, 3, 2, 2), np.float32)
    x[0, 1, 0, :] = 1.0  # top row: class 1, bottom row: channels tie -> class 0
    label = np.asarray([[1, 1], [0, 2]])  # one pixel wrong: IoU 1 (class 1), 1/2 (0), 0 (2)
    calibration = CalibrationSet([x], [label], [Path("a.png")])
    figures = int8_parity(
        session, session, [x], ParityGates(), calibration=calibration, num_classes=3
    )
    assert figures["miou_fp32"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert figures["miou_drop"] == 0.0 and figures["argmax_agreement"] == 1.0
