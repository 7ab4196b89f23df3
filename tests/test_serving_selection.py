"""`zoo.load` picks its path from `BACKENDS` and the accuracy gates recorded in eval.json."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

import zoo
from zoo import backend_openvino, backends, selection
from zoo.errors import ModelNotAvailableError
from zoo.loading import PACKAGED_MODELS_DIR
from zoo.modeldir import record_files
from zoo.predict_cli import EXIT_ERROR, _parser

BUILTIN = PACKAGED_MODELS_DIR / "lraspp_mbv3_synthcity_cpg"


@pytest.fixture
def model_dir(tmp_path: Path, monkeypatch) -> Path:
    """The built-in model with a model.int8.onnx stand-in and no recorded agreement; the
    CPU reports BF16 (whatever this machine's does) unless a test says otherwise."""
    directory = tmp_path / "model"
    directory.mkdir()
    for name in ("config.json", "model.onnx"):
        shutil.copy(BUILTIN / name, directory / name)
    shutil.copy(BUILTIN / "model.onnx", directory / "model.int8.onnx")
    record_files(directory)
    (directory / "eval.json").write_text("{}")
    monkeypatch.setattr(selection, "openvino_capabilities", lambda: ["BF16", "FP32"])
    monkeypatch.setattr(selection, "_gpu_wanted", lambda device: False)
    return directory


def record(directory: Path, **agreements: float) -> None:
    """eval.json figures, e.g. record(d, openvino_bf16=0.999)."""
    paths = {k.replace("_", "/"): {"argmax_agreement": v} for k, v in agreements.items()}
    (directory / "eval.json").write_text(json.dumps({selection.AGREEMENT_KEY: paths}))


def uninstalled(monkeypatch, name: str) -> None:
    row = dataclasses.replace(backends.BACKENDS[name], module="no_such_module_h8")
    monkeypatch.setitem(selection.BACKENDS, name, row)


def test_without_records_auto_takes_onnx_runtime_fp32(model_dir: Path) -> None:
    segmenter = zoo.load(model_dir)
    assert (segmenter.backend_name, segmenter.precision) == ("onnx", "fp32")
    assert "openvino/bf16: no recorded agreement" in segmenter.selection
    assert "onnx/int8: no recorded agreement" in segmenter.selection


def test_auto_takes_the_fastest_path_whose_gate_is_met(model_dir: Path, monkeypatch) -> None:
    pytest.importorskip("openvino")
    record(model_dir, openvino_bf16=0.9981, openvino_int8=0.99, onnx_int8=0.99)
    segmenter = zoo.load(model_dir)
    assert (segmenter.backend_name, segmenter.precision) == ("openvino", "bf16")
    assert segmenter.providers == ["OpenVINO:CPU:bf16"]
    assert "99.81% >= gate 99.50%" in segmenter.selection

    record(model_dir, openvino_bf16=0.99, openvino_int8=0.97, onnx_int8=0.985)
    segmenter = zoo.load(model_dir)
    assert (segmenter.backend_name, segmenter.precision) == ("onnx", "int8")
    assert "openvino/bf16: recorded agreement 99.00% < gate 99.50%" in segmenter.selection
    assert "openvino/int8: recorded agreement 97.00% < gate 98.00%" in segmenter.selection

    record(model_dir, openvino_bf16=0.999)
    monkeypatch.setattr(selection, "openvino_capabilities", lambda: ["FP32", "INT8"])
    segmenter = zoo.load(model_dir)
    assert (segmenter.backend_name, segmenter.precision) == ("onnx", "fp32")
    assert "OpenVINO reports no BF16 support" in segmenter.selection


def test_a_missing_library_is_skipped_with_its_install_hint(model_dir: Path, monkeypatch) -> None:
    record(model_dir, openvino_bf16=0.999, onnx_int8=0.99)
    uninstalled(monkeypatch, "openvino")
    segmenter = zoo.load(model_dir)
    assert (segmenter.backend_name, segmenter.precision) == ("onnx", "int8")
    assert "pip install 'cpg-zoo[openvino]'" in segmenter.selection


def test_explicit_path_below_its_gate_is_refused_unless_asked(model_dir: Path) -> None:
    record(model_dir, onnx_int8=0.9612)
    with pytest.raises(ValueError, match=r"onnx/int8 agrees with fp32 on 96\.12%.*98\.00%"):
        zoo.load(model_dir, precision="int8")
    segmenter = zoo.load(model_dir, precision="int8", min_agreement=0.96)
    assert (segmenter.backend_name, segmenter.precision) == ("onnx", "int8")
    # auto skips it, an explicit fp32 load ignores it
    assert zoo.load(model_dir).precision == "fp32"
    assert zoo.load(model_dir, backend="onnx").precision == "fp32"


@pytest.mark.parametrize("min_agreement", [96.0, 1.5, -0.1])
def test_min_agreement_outside_0_1_is_refused(model_dir: Path, min_agreement: float) -> None:
    record(model_dir, onnx_int8=0.9612)
    with pytest.raises(ValueError, match=r"min_agreement is a fraction in \[0, 1\]"):
        zoo.load(model_dir, precision="int8", min_agreement=min_agreement)
    with pytest.raises(ValueError, match=r"min_agreement is a fraction in \[0, 1\]"):
        zoo.load(model_dir, min_agreement=min_agreement)  # auto: not a silent fp32 fallback


def test_explicit_precision_without_a_record_loads(model_dir: Path) -> None:
    segmenter = zoo.load(model_dir, precision="int8")
    assert (segmenter.backend_name, segmenter.precision) == ("onnx", "int8")
    assert segmenter.selection == "onnx/int8: precision='int8' asked for"


def test_export_parity_counts_for_onnx_runtime_int8(model_dir: Path) -> None:
    parity = {"export": {"parity": {"int8": {"argmax_agreement": 0.9905}}}}
    (model_dir / "eval.json").write_text(json.dumps(parity))
    segmenter = zoo.load(model_dir)
    assert (segmenter.backend_name, segmenter.precision) == ("onnx", "int8")
    assert "99.05%" in segmenter.selection


def test_bf16_names_its_backend_and_other_backends_refuse_it(model_dir: Path) -> None:
    pytest.importorskip("openvino")
    if "BF16" not in backend_openvino.openvino_capabilities():
        pytest.skip("this CPU has no bf16")
    assert zoo.load(model_dir, precision="bf16").backend_name == "openvino"
    with pytest.raises(ValueError, match="backend='onnx' has no precision 'bf16'"):
        zoo.load(model_dir, backend="onnx", precision="bf16")


def test_torch_only_directory_falls_back_to_torch(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("torch")
    directory = tmp_path / "model"
    directory.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(BUILTIN / name, directory / name)
    monkeypatch.setattr(selection, "_gpu_wanted", lambda device: False)
    segmenter = zoo.load(directory)
    assert segmenter.backend_name == "torch"
    assert "onnx/fp32: no model.onnx" in segmenter.selection


def test_nothing_usable_names_the_reasons(model_dir: Path, monkeypatch) -> None:
    for name in backends.BACKENDS:
        uninstalled(monkeypatch, name)
    with pytest.raises(ModelNotAvailableError, match=r"no usable backend.*onnx/fp32: "):
        zoo.load(model_dir)


def test_the_table_feeds_load_and_the_cli() -> None:
    assert backends.BACKEND_CHOICES == ("auto", "onnx", "openvino", "torch")
    actions = {a.dest: a for a in _parser()._actions}
    assert tuple(actions["backend"].choices) == backends.BACKEND_CHOICES
    assert set(actions["precision"].choices) == {"auto", "fp32", "bf16", "int8", "fp16"}
    with pytest.raises(ValueError, match="use one of auto, onnx, openvino, torch"):
        zoo.load(BUILTIN, backend="tensorrt")
    assert backends.BACKENDS["openvino"].files["bf16"] == "model.onnx"
    assert backends.BACKENDS["openvino"].install_hint() == "pip install 'cpg-zoo[openvino]'"


def test_zoo_predict_verbose_says_which_path_and_why(tmp_path: Path, capsys) -> None:
    from zoo.predict_cli import main as predict_main

    image = PACKAGED_MODELS_DIR.parent / "examples" / "synthcity_1.png"
    argv = [str(image), "--model", str(BUILTIN), "--device", "cpu", "--out", str(tmp_path), "-v"]
    assert predict_main([*argv, "--backend", "onnx"]) == 0
    assert "path onnx/fp32: backend='onnx' asked for" in capsys.readouterr().err
    assert predict_main([*argv, "--precision", "int8", "--min-agreement", "0.5"]) == EXIT_ERROR
    assert "model.int8.onnx not found" in capsys.readouterr().err
