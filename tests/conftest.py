"""Fixtures shared by the runtime tests: the small 4-class model directory of
`tests.helpers_modeldir.shared_model_dir` (exported once per session) and Segmenters over it.
A test module that needs another model defines its own `model_dir`, which takes precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

import zoo
from tests.helpers_modeldir import shared_model_dir
from tests.helpers_tmp import numbered_temp_root, remove_finished_runs
from zoo.segmenter import Segmenter

SMALL_MODEL_CLASSES = 4


def pytest_sessionstart(session: pytest.Session) -> None:
    """Before anything is written: delete earlier runs' kept temporary folders
    (`tests.helpers_tmp`); the xdist controller does it, not each worker."""
    if hasattr(session.config, "workerinput"):
        return
    root = numbered_temp_root()
    if root is not None:
        remove_finished_runs(root)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_model_dir(tmp_path_factory.getbasetemp(), num_classes=SMALL_MODEL_CLASSES)


@pytest.fixture(scope="session")
def onnx_seg(model_dir: Path) -> Segmenter:
    return zoo.load(model_dir, backend="onnx", device="cpu")


@pytest.fixture(scope="session")
def torch_seg(model_dir: Path) -> Segmenter:
    return zoo.load(model_dir, backend="torch", device="cpu")
