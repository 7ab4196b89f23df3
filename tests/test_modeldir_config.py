"""config.json is validated with types: one clear message naming the key and the value."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import zoo
from zoo.config import ModelConfig

PACKAGED = Path(zoo.__file__).parent / "assets" / "models" / "lraspp_mbv3_synthcity_cpg"


def _base() -> dict[str, Any]:
    """The shipped model's config.json (a real, valid one)."""
    return json.loads((PACKAGED / "config.json").read_text())


def _config_dir(tmp_path: Path, **changes: Any) -> Path:
    data = _base()
    data.update(changes)
    (tmp_path / "config.json").write_text(json.dumps(data))
    return tmp_path


BAD_VALUES = [
    ("classes", 19, r"classes must be a list of class names \(strings\), got 19"),
    ("classes", [*["road"] * 18, 7], r"classes\[18\] is 7"),
    ("palette", [[300, 0, 0], *_base()["palette"][1:]], r"palette\[0\] is \[300, 0, 0\]"),
    ("num_classes", "19", r"num_classes must be a positive integer, got '19' \(str\)"),
    ("num_classes", True, r"num_classes must be a positive integer, got true"),
    ("mean", ["0.485", "0.456", "0.406"], r"mean\[0\] is '0.485' \(str\)"),
    ("std", [0.229, 0.0, 0.225], r"std\[1\] is 0.0; std must be a list of 3 positive numbers"),
    ("input_size", [512], r"input_size must be \[height, width\] with positive integers"),
    ("ignore_index", "255", r"ignore_index must be an integer, got '255'"),
    ("loss", "cpg", r"loss must be a JSON object, got 'cpg'"),
    (
        "files",
        {"model.onnx": {"sha256": "00", "bytes": 1}},
        r"files\['model.onnx'\] is \{\"sha256\": \"00\", \"bytes\": 1\}",
    ),
]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    BAD_VALUES,
    ids=[f"{key}-{i}" for i, (key, *_) in enumerate(BAD_VALUES)],
)
def test_bad_value_is_named(key: str, value: Any, message: str, tmp_path: Path) -> None:
    directory = _config_dir(tmp_path, **{key: value})
    with pytest.raises(
        ValueError, match=re.escape(str(directory / "config.json")) + ": " + message
    ):
        zoo.load(directory)


def test_newer_format_version_is_refused_with_both_versions(tmp_path: Path) -> None:
    directory = _config_dir(tmp_path, format_version=99, new_key_of_v99=1)
    with pytest.raises(ValueError, match=r"format_version is 99 but this cpg-zoo reads .* up to 1"):
        zoo.load(directory)


def test_unknown_key_is_named_with_a_suggestion(tmp_path: Path) -> None:
    data = _base()
    data["ignore_idex"] = data.pop("ignore_index")
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(
        ValueError, match=r"unknown key 'ignore_idex' \(did you mean 'ignore_index'"
    ):
        zoo.load(tmp_path)


def test_missing_key_and_count_mismatch_are_named() -> None:
    data = _base()
    del data["mean"]
    with pytest.raises(ValueError, match=r"^c\.json: missing key\(s\) mean$"):
        ModelConfig.from_dict(data, source="c.json")
    data = _base() | {"palette": _base()["palette"][:18]}
    with pytest.raises(ValueError, match=r"18 palette colours for 19 classes"):
        ModelConfig.from_dict(data, source="c.json")


def test_valid_config_round_trips() -> None:
    data = _base()
    config = ModelConfig.from_dict(data)
    assert config.num_classes == 19 and config.palette[0] == [128, 64, 128]
    assert ModelConfig.from_dict(config.to_dict()) == config  # without the files record too
