"""`config.json` of a model directory: everything needed to rebuild and run a model.

Written by `export`, read by the runtime (`zoo.load`). Plain JSON, no pickle.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from zoo.datasets import get_dataset_info

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
ONNX_NAME = "model.onnx"
ONNX_INT8_NAME = "model.int8.onnx"
ONNX_FP16_NAME = "model.fp16.onnx"
EVAL_NAME = "eval.json"
CARD_NAME = "README.md"
FORMAT_VERSION = 1


@dataclass
class ModelConfig:
    """The contents of `config.json`."""

    arch: str
    dataset: str
    num_classes: int
    classes: list[str]
    palette: list[list[int]]
    mean: list[float]
    std: list[float]
    ignore_index: int = 255
    input_size: list[int] = field(default_factory=lambda: [512, 512])  # height, width
    model_id: str = ""
    loss: dict[str, Any] = field(default_factory=lambda: {"name": "ce"})
    recipe: dict[str, Any] = field(default_factory=dict)
    source_commit: str = ""
    format_version: int = FORMAT_VERSION

    @classmethod
    def for_dataset(cls, arch: str, dataset: str, **overrides: Any) -> ModelConfig:
        """A config filled with the dataset's metadata from `zoo.datasets`."""
        info = get_dataset_info(dataset)
        values: dict[str, Any] = {
            "arch": arch,
            "dataset": dataset,
            "num_classes": info.num_classes,
            "classes": list(info.classes),
            "palette": [list(color) for color in info.palette],
            "mean": list(info.mean),
            "std": list(info.std),
            "ignore_index": info.ignore_index,
        }
        values.update(overrides)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> ModelConfig:
        """Validate and build; errors name `source` and the offending key."""
        known = {f.name for f in fields(cls)}
        required = {"arch", "dataset", "num_classes", "classes", "palette", "mean", "std"}
        missing = sorted(required - data.keys())
        if missing:
            raise ValueError(f"{source}: missing key(s) {', '.join(missing)}")
        config = cls(**{key: value for key, value in data.items() if key in known})
        if len(config.classes) != config.num_classes:
            raise ValueError(
                f"{source}: num_classes is {config.num_classes} but {len(config.classes)} "
                "class names are listed"
            )
        if len(config.palette) != config.num_classes:
            raise ValueError(
                f"{source}: {len(config.palette)} palette colours for {config.num_classes} classes"
            )
        if len(config.mean) != 3 or len(config.std) != 3:
            raise ValueError(f"{source}: mean and std must have 3 values")
        return config

    def save(self, directory: str | Path) -> Path:
        """Write `config.json` into `directory` atomically."""
        path = Path(directory) / CONFIG_NAME
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> ModelConfig:
        """Read `directory/config.json` with a clear error if it is missing or malformed."""
        path = Path(directory) / CONFIG_NAME
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: not a model directory")
        return cls.from_dict(read_json_object(path), source=str(path))


def read_json_object(path: str | Path) -> dict[str, Any]:
    """A JSON file that must hold an object; ValueError naming the file otherwise."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return data


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.cache
def default_file_mode() -> int:
    """The mode `open()` would give a new file under this process's umask (e.g. 0o644)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_bytes_atomic(path: str | Path, data: bytes, fsync: bool = True) -> None:
    """Write `data` to `path` through a temp file in the same folder and a rename, so
    readers see the old file or the whole new one. The file gets the umask's usual mode
    (not mkstemp's 0600). `fsync=False` skips the flush to disk (still atomic for readers;
    for bulk writes such as dataset conversion)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fchmod(file.fileno(), default_file_mode())
            if fsync:
                os.fsync(file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Text version of `write_bytes_atomic` (UTF-8)."""
    write_bytes_atomic(path, text.encode("utf-8"))
