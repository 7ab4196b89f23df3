"""A model directory's files are checked against the sha256 that config.json records."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers_modeldir import shared_model_dir, smooth_image

import zoo
from zoo.errors import ModelFileError
from zoo.modelfiles import CONFIG_NAME, ONNX_NAME, WEIGHTS_NAME

pytest_plugins = ["conftest_hub"]  # fixture hub: a local Hub server

PACKAGED = Path(zoo.__file__).parent / "assets" / "models" / "lraspp_mbv3_synthcity_cpg"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record(directory: Path, names: tuple[str, ...] = (WEIGHTS_NAME, ONNX_NAME)) -> None:
    """Write the `files` record of `names` into config.json, computed here with hashlib."""
    data = json.loads((directory / CONFIG_NAME).read_text())
    data["files"] = {
        name: {"sha256": _sha256(directory / name), "bytes": (directory / name).stat().st_size}
        for name in names
    }
    (directory / CONFIG_NAME).write_text(json.dumps(data, indent=2))


@pytest.fixture
def model_dir(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """A private copy of the shared test model directory, with its record."""
    shared = shared_model_dir(tmp_path_factory.getbasetemp(), num_classes=4)
    for name in (CONFIG_NAME, WEIGHTS_NAME, ONNX_NAME):
        shutil.copy(shared / name, tmp_path / name)
    _record(tmp_path)
    return tmp_path


def _overwrite_middle(path: Path, size: int = 64 * 1024) -> None:
    """Replace `size` bytes in the middle of `path` (weights data) with random ones."""
    data = bytearray(path.read_bytes())
    start = len(data) // 2
    data[start : start + size] = np.random.default_rng(0).bytes(size)
    path.write_bytes(bytes(data))


def test_changed_onnx_bytes_are_refused(model_dir: Path) -> None:
    image = smooth_image(64, 96, seed=1)
    before = zoo.load(model_dir, backend="onnx", device="cpu").predict(image)
    _overwrite_middle(model_dir / ONNX_NAME)
    expected = re.escape(str(model_dir / ONNX_NAME)) + r": sha256 [0-9a-f]{16}\.\.\. differs"
    with pytest.raises(ModelFileError, match=expected):
        zoo.load(model_dir, backend="onnx", device="cpu")
    edited = zoo.load(model_dir, backend="onnx", device="cpu", verify=False).predict(image)
    assert edited.shape == before.shape  # verify=False: loads the changed file as it is


def test_changed_weights_are_refused_by_the_torch_backend(model_dir: Path) -> None:
    _overwrite_middle(model_dir / WEIGHTS_NAME)
    with pytest.raises(ModelFileError, match=re.escape(str(model_dir / WEIGHTS_NAME))):
        zoo.load(model_dir, backend="torch", device="cpu")
    zoo.load(model_dir, backend="onnx", device="cpu")  # model.onnx is intact


def test_truncated_file_names_both_sizes(model_dir: Path) -> None:
    size = (model_dir / ONNX_NAME).stat().st_size
    with (model_dir / ONNX_NAME).open("r+b") as file:
        file.truncate(size - 1)
    with pytest.raises(
        ModelFileError, match=rf"{size - 1} bytes, but .*config\.json records {size}"
    ):
        zoo.load(model_dir, backend="onnx")


def test_file_missing_from_the_record_is_refused(model_dir: Path) -> None:
    _record(model_dir, names=(WEIGHTS_NAME,))
    with pytest.raises(ModelFileError, match=r"model\.onnx: not in the 'files' record"):
        zoo.load(model_dir, backend="onnx")


def test_each_file_version_is_hashed_once(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zoo.modeldir

    hashed: list[str] = []
    real = zoo.modeldir.file_sha256

    def counting(path: str | os.PathLike[str]) -> str:
        hashed.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(zoo.modeldir, "file_sha256", counting)
    for _ in range(3):
        zoo.load(model_dir, backend="onnx", device="cpu")
    assert hashed == [ONNX_NAME]
    stat = (model_dir / ONNX_NAME).stat()
    os.utime(model_dir / ONNX_NAME, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    zoo.load(model_dir, backend="onnx", device="cpu")
    assert hashed == [ONNX_NAME, ONNX_NAME]  # a new mtime: hashed again


def test_config_without_record_loads_with_a_warning(
    model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = json.loads((model_dir / CONFIG_NAME).read_text())
    del data["files"]
    (model_dir / CONFIG_NAME).write_text(json.dumps(data))
    _overwrite_middle(model_dir / ONNX_NAME)  # nothing to check it against
    with caplog.at_level(logging.WARNING, logger="zoo.modeldir"):
        zoo.load(model_dir, backend="onnx", device="cpu")
    assert "has no 'files' record" in caplog.text and str(model_dir) in caplog.text


def test_saving_an_edited_config_keeps_the_record(model_dir: Path) -> None:
    from zoo.config import ModelConfig

    recorded = json.loads((model_dir / CONFIG_NAME).read_text())["files"]
    config = ModelConfig.load(model_dir)
    config.model_id = "renamed"
    config.save(model_dir)
    data = json.loads((model_dir / CONFIG_NAME).read_text())
    assert data["model_id"] == "renamed" and data["files"] == recorded
    _overwrite_middle(model_dir / ONNX_NAME)
    with pytest.raises(ModelFileError, match=r"model\.onnx: sha256"):
        zoo.load(model_dir, backend="onnx")


def test_packaged_model_records_its_files() -> None:
    record = json.loads((PACKAGED / CONFIG_NAME).read_text())["files"]
    assert record == {
        name: {"sha256": _sha256(PACKAGED / name), "bytes": (PACKAGED / name).stat().st_size}
        for name in (WEIGHTS_NAME, ONNX_NAME)
    }
    zoo.load("lraspp_mbv3_synthcity_cpg", backend="onnx", device="cpu")


def test_export_records_hashes_and_is_byte_reproducible(tmp_path: Path) -> None:
    from bench.synthetic import random_checkpoint
    from export import export_model

    checkpoint = random_checkpoint("lraspp_mbv3", tmp_path / "c.pt")
    shapes = ((1, 3, 49, 75),)
    first = export_model(checkpoint, tmp_path / "a", shapes=shapes)
    second = export_model(checkpoint, tmp_path / "b", shapes=shapes)
    assert (first / WEIGHTS_NAME).read_bytes() == (second / WEIGHTS_NAME).read_bytes()
    record = json.loads((first / CONFIG_NAME).read_text())["files"]
    assert record == {
        name: {"sha256": _sha256(first / name), "bytes": (first / name).stat().st_size}
        for name in (WEIGHTS_NAME, ONNX_NAME)
    }


def test_files_downloaded_from_the_hub_are_verified(hub, model_dir: Path) -> None:
    from zoo.hub import push_model_dir

    repo = "testorg/verified"
    push_model_dir(model_dir, repo, tag="intact")
    _overwrite_middle(model_dir / ONNX_NAME)  # the record still describes the intact file
    push_model_dir(model_dir, repo)
    zoo.load(f"hf-hub:{repo}@intact", backend="onnx", device="cpu")
    with pytest.raises(ModelFileError, match=r"snapshots/[0-9a-f]+/model\.onnx: sha256 .* differs"):
        zoo.load(f"hf-hub:{repo}", backend="onnx", device="cpu")
