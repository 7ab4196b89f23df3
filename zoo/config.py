"""`config.json` of a model directory: everything needed to rebuild and run a model.

Written by `export`, read by the runtime (`zoo.load`). Plain JSON, no pickle.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from zoo.datasets import DatasetInfo, get_dataset_info
from zoo.fileio import read_json_object, write_text_atomic
from zoo.modelfiles import CONFIG_NAME, FILES_KEY, MODEL_FILES

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
        return cls.for_info(arch, get_dataset_info(dataset), **{"dataset": dataset, **overrides})

    @classmethod
    def for_info(cls, arch: str, info: DatasetInfo, **overrides: Any) -> ModelConfig:
        """A config filled with the metadata of `info` (a table row or a user's dataset)."""
        values: dict[str, Any] = {
            "arch": arch,
            "dataset": info.name,
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
        """Validate and build; errors name `source`, the offending key and its value.

        Accepts the `files` record of a model directory's config.json (checked here, used by
        `zoo.modeldir`); any other key the dataclass lacks is an error.
        """
        check_config_dict(data, source)
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def save(self, directory: str | Path) -> Path:
        """Write `config.json` into `directory` atomically. The `files` record of a config.json
        already there is kept: it describes the model files, which a new config leaves as
        they are."""
        path = Path(directory) / CONFIG_NAME
        data = self.to_dict()
        try:
            record = read_json_object(path).get(FILES_KEY) if path.is_file() else None
        except (OSError, ValueError):
            record = None  # a damaged config.json is being replaced
        if isinstance(record, dict):
            data[FILES_KEY] = record
        write_text_atomic(path, json.dumps(data, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> ModelConfig:
        """Read `directory/config.json` with a clear error if it is missing or malformed."""
        path = Path(directory) / CONFIG_NAME
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: not a model directory")
        return cls.from_dict(read_json_object(path), source=str(path))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_number(value: Any) -> bool:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


def _is_colour(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 3
        and all(_is_int(c) and 0 <= c <= 255 for c in value)
    )


def _is_file_entry(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == {"sha256", "bytes"}
        and isinstance(value["sha256"], str)
        and re.fullmatch(r"[0-9a-f]{64}", value["sha256"]) is not None
        and _is_int(value["bytes"])
        and value["bytes"] >= 0
    )


# key -> (what it must be, check of the whole value, check of each item or None)
_FIELD_CHECKS: dict[str, tuple[str, Callable[[Any], bool], Callable[[Any], bool] | None]] = {
    "arch": ("a non-empty string", lambda v: isinstance(v, str) and v != "", None),
    "dataset": ("a non-empty string", lambda v: isinstance(v, str) and v != "", None),
    "num_classes": ("a positive integer", lambda v: _is_int(v) and v >= 1, None),
    "classes": ("a list of class names (strings)", lambda v: isinstance(v, list), _is_str),
    "palette": (
        "a list of [R, G, B] colours with integers 0-255",
        lambda v: isinstance(v, list),
        _is_colour,
    ),
    "mean": (
        "a list of 3 numbers",
        lambda v: isinstance(v, list) and len(v) == 3,
        _is_number,
    ),
    "std": (
        "a list of 3 positive numbers",
        lambda v: isinstance(v, list) and len(v) == 3,
        lambda x: _is_number(x) and x > 0,
    ),
    "ignore_index": ("an integer", _is_int, None),
    "input_size": (
        "[height, width] with positive integers",
        lambda v: isinstance(v, list) and len(v) == 2,
        lambda x: _is_int(x) and x >= 1,
    ),
    "model_id": ("a string", lambda v: isinstance(v, str), None),
    "loss": ("a JSON object", lambda v: isinstance(v, dict), None),
    "recipe": ("a JSON object", lambda v: isinstance(v, dict), None),
    "source_commit": ("a string", lambda v: isinstance(v, str), None),
    "format_version": ("a positive integer", lambda v: _is_int(v) and v >= 1, None),
    FILES_KEY: (
        f"an object mapping model files ({', '.join(MODEL_FILES)}) to "
        '{"sha256": 64 hex digits, "bytes": size}',
        lambda v: isinstance(v, dict) and set(v) <= set(MODEL_FILES),
        _is_file_entry,
    ),
}
_REQUIRED = ("arch", "dataset", "num_classes", "classes", "palette", "mean", "std")


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{text} ({type(value).__name__})" if isinstance(value, str) else text


def check_config_dict(data: dict[str, Any], source: str = "config") -> None:
    """Raise ValueError naming `source`, the key and the value for the first problem in
    `data` (a config.json object): newer format_version, unknown or missing key, wrong type or
    range, class / colour counts that disagree with num_classes."""
    version = data.get("format_version", FORMAT_VERSION)
    if _is_int(version) and version > FORMAT_VERSION:
        raise ValueError(
            f"{source}: format_version is {version} but this cpg-zoo reads format_version "
            f"up to {FORMAT_VERSION}: upgrade cpg-zoo to load this model"
        )
    for key in data:
        if key not in _FIELD_CHECKS:
            close = difflib.get_close_matches(str(key), list(_FIELD_CHECKS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"{source}: unknown key {key!r}{hint}; known keys: {', '.join(_FIELD_CHECKS)}"
            )
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise ValueError(f"{source}: missing key(s) {', '.join(missing)}")
    for key, value in data.items():
        expected, whole, item = _FIELD_CHECKS[key]
        if not whole(value):
            raise ValueError(f"{source}: {key} must be {expected}, got {_shown(value)}")
        if item is not None:
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for index, entry in items:
                if not item(entry):
                    where = f"{key}[{index!r}]" if isinstance(value, dict) else f"{key}[{index}]"
                    raise ValueError(
                        f"{source}: {where} is {_shown(entry)}; {key} must be {expected}"
                    )
    num_classes = data["num_classes"]
    if len(data["classes"]) != num_classes:
        raise ValueError(
            f"{source}: num_classes is {num_classes} but {len(data['classes'])} "
            "class names are listed"
        )
    if len(data["palette"]) != num_classes:
        raise ValueError(
            f"{source}: {len(data['palette'])} palette colours for {num_classes} classes"
        )
