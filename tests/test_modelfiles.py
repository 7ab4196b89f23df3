"""The model-directory file table agrees with the backends that load the files, and the
lists derived from it (hashed files, Hub pulls and pushes, card files) say what a user expects."""

from __future__ import annotations

from zoo.backends import BACKENDS
from zoo.hub import UPLOAD_FILES, backend_files
from zoo.modelfiles import FILE_KINDS, MODEL_FILES, files_loaded_by


def test_every_file_a_backend_loads_names_that_backend_in_the_table() -> None:
    for backend, row in BACKENDS.items():
        for precision, name in row.files.items():
            assert backend in FILE_KINDS[name].backends, (backend, precision, name)
    for kind in FILE_KINDS.values():
        for backend in kind.backends:
            assert kind.name in BACKENDS[backend].files.values(), (kind.name, backend)


def test_derived_lists() -> None:
    assert MODEL_FILES == (
        "model.safetensors",
        "model.onnx",
        "model.int8.onnx",
        "model.fp16.onnx",
    )
    assert files_loaded_by("onnx") == {
        "fp32": "model.onnx",
        "int8": "model.int8.onnx",
        "fp16": "model.fp16.onnx",
    }
    assert set(UPLOAD_FILES) == {*MODEL_FILES, "config.json", "eval.json", "README.md"}
    assert backend_files("onnx", "int8") == ["config.json", "model.int8.onnx", "eval.json",
                                             "README.md"]  # fmt: skip
    assert backend_files("torch") == ["config.json", "model.safetensors", "eval.json", "README.md"]


def test_a_pull_for_each_backend_row_fetches_the_file_that_row_loads() -> None:
    # Expected from the file names alone: what each backend/precision reads from disk.
    expected = {
        ("onnx", "fp32"): "model.onnx",
        ("onnx", "int8"): "model.int8.onnx",
        ("onnx", "fp16"): "model.fp16.onnx",
        ("openvino", "fp32"): "model.onnx",
        ("openvino", "bf16"): "model.onnx",  # converted to bf16 at load
        ("openvino", "int8"): "model.int8.onnx",
        ("torch", "fp32"): "model.safetensors",
        ("torch", "fp16"): "model.safetensors",  # cast at load
        ("torch", "bf16"): "model.safetensors",
    }
    pulls = {
        (backend, precision): backend_files(backend, precision)
        for backend, row in BACKENDS.items()
        for precision in row.precisions
    }
    assert set(pulls) == set(expected)
    for key, files in pulls.items():
        assert files == ["config.json", expected[key], "eval.json", "README.md"], key
