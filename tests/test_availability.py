"""`zoo list` / `zoo.list_models`: every model with its source and whether it loads now,
offline; the built-in model is listed, named in errors and the default of `zoo predict`."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import zoo
from tests.helpers_hub import fake_hub_cache
from zoo import predict_cli
from zoo.cli import list_main
from zoo.registry import HUB_NAMESPACE_ENV

BUILT_IN = Path(__file__).resolve().parents[1] / "zoo" / "assets" / "models"
BUILT_IN_ID = "lraspp_mbv3_synthcity_cpg"
EXAMPLE = Path(__file__).resolve().parents[1] / "zoo" / "assets" / "examples" / "synthcity_1.png"
# The 18 registry ids, written out (3 archs x 3 datasets x 2 losses).
REGISTRY_IDS = [
    f"{arch}_{dataset}_{loss}"
    for arch in ("deeplabv3_r50", "hrnetv2_w48_ocr", "lraspp_mbv3")
    for dataset in ("ade20k", "cityscapes", "cocostuff")
    for loss in ("ce", "cpg")
]


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hub cache and no network at all: any connection attempt fails the test."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.delenv(HUB_NAMESPACE_ENV, raising=False)

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("zoo list must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    return cache


def rows(captured: pytest.CaptureResult[str]) -> dict[str, list[str]]:
    """`zoo list` rows (stdout) by name, cut at the columns of the header (the first line of
    stderr): ARCH DATASET LOSS CLASSES INPUT SOURCE AVAILABLE NOTE."""
    header = captured.err.splitlines()[0]
    assert header.split()[:3] == ["NAME", "ARCH", "DATASET"]
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    table = [[line[a:b].strip() for a, b in bounds] for line in captured.out.splitlines()]
    return {fields[0]: fields[1:] for fields in table}


def test_list_shows_every_model_with_its_source_and_availability(offline, capsys):
    assert list_main([]) == 0
    captured = capsys.readouterr()
    table = rows(captured)
    assert list(table) == [BUILT_IN_ID, *REGISTRY_IDS]
    builtin = table[BUILT_IN_ID]
    assert builtin[:7] == ["lraspp_mbv3", "synthcity", "cpg", "19", "128x256", "built-in", "yes"]
    assert table["deeplabv3_r50_ade20k_ce"][:7] == [
        "deeplabv3_r50", "ade20k", "ce", "150", "512x512", "Hub", "no",
    ]  # fmt: skip
    for model_id in REGISTRY_IDS:
        assert table[model_id][6] == "no", model_id
        assert table[model_id][7] == f"not published yet (cpg-zoo/{model_id})"
    assert "1 of 19 models load now" in captured.err


def test_list_marks_cached_hub_models_available(offline, capsys, monkeypatch):
    from huggingface_hub import constants

    files = {n: BUILT_IN / BUILT_IN_ID / n for n in ("config.json", "model.onnx")}
    fake_hub_cache(offline, "cpg-zoo/lraspp_mbv3_cityscapes_cpg", files)
    fake_hub_cache(offline, "someone/street-model", files)
    fake_hub_cache(offline, "someone/card-only", {"config.json": files["config.json"]})
    assert list_main([]) == 0
    table = rows(capsys.readouterr())
    assert table["lraspp_mbv3_cityscapes_cpg"][5:] == ["Hub", "yes", "in the local Hub cache"]
    # another cached repo: listed by its hf-hub id with the facts of its config.json
    assert table["hf-hub:someone/street-model"] == [
        "lraspp_mbv3", "synthcity", "cpg", "19", "128x256", "local cache", "yes",
        "in the local Hub cache",
    ]  # fmt: skip
    assert "hf-hub:someone/card-only" not in table  # no runnable file
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert zoo.load("hf-hub:someone/street-model", backend="onnx").num_classes == 19


def test_list_pattern_finds_the_built_in_model(offline, capsys):
    """Issue 17.1: `zoo list synthcity` and `zoo.list_models("synthcity")` missed it."""
    assert zoo.list_models("synthcity") == [BUILT_IN_ID]
    assert zoo.list_models() == [BUILT_IN_ID, *REGISTRY_IDS]
    assert zoo.list_models("*_cpg")[:2] == [BUILT_IN_ID, "deeplabv3_r50_ade20k_cpg"]
    assert list_main(["synthcity"]) == 0
    assert list(rows(capsys.readouterr())) == [BUILT_IN_ID]
    assert list_main(["--available"]) == 0
    assert list(rows(capsys.readouterr())) == [BUILT_IN_ID]
    assert list_main(["no-such-model"]) == 1
    assert "no model matches 'no-such-model'" in capsys.readouterr().err


def test_list_under_another_namespace_does_not_claim_unpublished(offline, capsys, monkeypatch):
    monkeypatch.setenv(HUB_NAMESPACE_ENV, "my-org")
    assert list_main(["lraspp_mbv3_ade20k_ce"]) == 0
    row = rows(capsys.readouterr())["lraspp_mbv3_ade20k_ce"]
    assert row[6:] == ["no", "not cached, not checked offline (my-org/lraspp_mbv3_ade20k_ce)"]


def test_unknown_model_error_names_the_built_in_model(offline):
    with pytest.raises(ValueError) as error:
        zoo.load("lraspp_mbv3_synthcity")
    message = str(error.value)
    assert f"Did you mean {BUILT_IN_ID}" in message
    assert f"Valid names: {BUILT_IN_ID}, deeplabv3_r50_ade20k_ce," in message


def test_predict_defaults_to_the_built_in_model(offline, tmp_path, capsys):
    """Issue 17.1: `zoo predict IMAGE` needed --model; it now uses the built-in model."""
    image = tmp_path / "street.png"
    Image.open(EXAMPLE).resize((128, 64)).save(image)
    out = tmp_path / "masks"
    fixed_path = ["--backend", "onnx", "--precision", "fp32"]  # the same engine as below
    assert predict_cli.main([str(image), "--out", str(out), "--quiet", *fixed_path]) == 0
    mask = np.asarray(Image.open(out / "street.png"))
    built_in = zoo.load(BUILT_IN / BUILT_IN_ID, backend="onnx", precision="fp32")
    expected = built_in.predict(str(image))
    np.testing.assert_array_equal(mask, expected)
