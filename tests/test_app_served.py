"""The Gradio demo (`app.py`) served as a subprocess and driven by `gradio_client`."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers_app import EXAMPLES, ROOT, build_test_model
from PIL import Image

from bench.app_server import start_app, stop_app

SHIPPED_MODEL = ROOT / "zoo" / "assets" / "models" / "lraspp_mbv3_synthcity_cpg"
SERVED_MODEL = "models/quick"  # the README's `python app.py --model models/quick`

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_test_model(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def served(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The app serving the test model as the relative directory SERVED_MODEL: (url, log)."""
    temp = tmp_path_factory.mktemp("app")
    (temp / SERVED_MODEL).parent.mkdir(parents=True)
    (temp / SERVED_MODEL).symlink_to(model_dir, target_is_directory=True)
    process, url = start_app(temp, "--model", SERVED_MODEL)
    yield url, process.log_path
    stop_app(process)


@pytest.fixture(scope="module")
def server(served: tuple[str, Path]) -> str:
    return served[0]


@pytest.fixture(scope="module")
def client(server: str, tmp_path_factory: pytest.TempPathFactory):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    return gradio_client.Client(
        server, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads"))
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Odd and bad uploads."""
    folder = tmp_path_factory.mktemp("inputs")
    Image.fromarray(np.tile(np.arange(64, dtype=np.uint8), (48, 1))).save(folder / "gray.png")
    rgba = np.random.default_rng(0).integers(0, 256, (37, 53, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    Image.new("RGB", (1, 1), (200, 30, 30)).save(folder / "one.png")
    Image.new("I;16", (40, 30), 30000).save(folder / "sixteen.png")
    Image.new("RGB", (3000, 1800), (90, 90, 90)).save(folder / "huge.png")
    Image.new("L", (8000, 7000)).save(folder / "bomb.png")  # 56 megapixels, a small file
    (folder / "fake.png").write_bytes(b"this is not a PNG at all")
    (folder / "notes.txt").write_text("plain text\n")
    with (folder / "big.png").open("wb") as file:  # over max_file_size (20 MB)
        file.write(os.urandom(21 * 1024 * 1024))
    return folder


def segment(client, path: Path, model: str, backend: str = "onnx"):
    """Call the `/segment` endpoint; returns (mask image, shares, info)."""
    mask_path, shares, info = client.predict(
        gradio_client.handle_file(str(path)), model, backend, api_name="/segment"
    )
    with Image.open(mask_path) as mask:
        mask.load()
    return mask, shares, info


def check_result(result, size: tuple[int, int]) -> None:
    """Mask of `size` (W, H) whose ids are exactly the table's classes."""
    mask, shares, info = result
    assert mask.size == size
    assert mask.mode == "P", "the mask must be a lossless palette PNG of class ids"
    ids = sorted(int(i) for i in np.unique(np.asarray(mask)))
    rows = shares["data"]
    assert shares["headers"] == ["id", "class", "share %"]
    assert sorted(int(row[0]) for row in rows) == ids
    assert sum(row[2] for row in rows) == pytest.approx(100.0, abs=0.1)
    assert "Inference:" in info and " ms " in info and "CPU" in info


def test_segment_an_example(client, model_dir: Path) -> None:
    result = segment(client, EXAMPLES[0], SERVED_MODEL)
    check_result(result, (512, 256))
    assert "Note" not in result[2]


def test_mask_matches_the_library(client, model_dir: Path) -> None:
    import zoo

    mask, _, _ = segment(client, EXAMPLES[1], SERVED_MODEL)
    expected = zoo.load(model_dir, backend="onnx").predict(EXAMPLES[1])
    assert (np.asarray(mask) == expected).mean() > 0.999


def test_torch_backend(client, model_dir: Path) -> None:
    check_result(segment(client, EXAMPLES[2], SERVED_MODEL, backend="torch"), (512, 256))


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("gray.png", (64, 48)),
        ("rgba.png", (53, 37)),
        ("one.png", (1, 1)),
        ("sixteen.png", (40, 30)),
    ],
)
def test_odd_images(
    client, model_dir: Path, inputs: Path, name: str, size: tuple[int, int]
) -> None:
    check_result(segment(client, inputs / name, SERVED_MODEL), size)


def test_huge_image_is_resized_with_a_note(client, model_dir: Path, inputs: Path) -> None:
    result = segment(client, inputs / "huge.png", SERVED_MODEL)
    check_result(result, (2048, 1229))
    assert "Resized from 3000x1800 to 2048x1229" in result[2]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("fake.png", "fake.png is not a readable image"),
        ("notes.txt", "notes.txt is not a readable image"),
        ("bomb.png", "56 megapixels"),
    ],
)
def test_bad_files_give_clear_errors(
    client, model_dir: Path, inputs: Path, name: str, message: str
) -> None:
    with pytest.raises(gradio_client.exceptions.AppError, match=message) as error:
        segment(client, inputs / name, SERVED_MODEL)
    assert "Traceback" not in str(error.value) and "/tmp" not in str(error.value)


def test_upload_size_limit(client, server: str, model_dir: Path, inputs: Path) -> None:
    with pytest.raises(ValueError, match="maximum file size"):
        segment(client, inputs / "big.png", SERVED_MODEL)
    # The server enforces it too, whatever the client does.
    import httpx

    with (inputs / "big.png").open("rb") as file:
        response = httpx.post(f"{server}gradio_api/upload", files={"files": file}, timeout=60)
    assert response.status_code == 413


def test_unavailable_model_says_why(client, model_dir: Path) -> None:
    status = client.predict("deeplabv3_r50_cityscapes_cpg", "onnx", api_name="/load_model")
    assert status.startswith("**Model not available:**")
    assert "deeplabv3_r50_cityscapes_cpg" in status
    with pytest.raises(gradio_client.exceptions.AppError, match="deeplabv3_r50_cityscapes_cpg"):
        segment(client, EXAMPLES[0], "deeplabv3_r50_cityscapes_cpg")
    status = client.predict("hf-hub:nobody/nothing", "onnx", api_name="/load_model")
    assert "not available" in status
    check_result(segment(client, EXAMPLES[0], SERVED_MODEL), (512, 256))  # still serving


def test_server_paths_cannot_be_loaded(client) -> None:
    with pytest.raises(gradio_client.exceptions.AppError, match="Unknown model"):
        segment(client, EXAMPLES[0], "/etc")


def test_load_model_reports_the_device(client, model_dir: Path) -> None:
    status = client.predict(SERVED_MODEL, "onnx", api_name="/load_model")
    assert "ready" in status and "CPUExecutionProvider" in status
    assert "trained on **SynthCity** with the `ce` loss" in status  # the test model's config


@pytest.mark.parametrize(
    "name", ["no_such_model_h3", "hrnetv2_w48_ocr_ade20k_ce", "hf-hub:nobody/unreachable-h3"]
)
def test_unavailable_models_give_one_line_and_no_traceback(
    client, served: tuple[str, Path], name: str
) -> None:
    """Issue 15.6: an unknown, unpublished or unreachable model typed by a visitor is a
    one-line message for the visitor and one log line per request, without a traceback."""
    status = client.predict(name, "onnx", api_name="/load_model")
    assert status.startswith("**Model not available:**") and name in status
    with pytest.raises(gradio_client.exceptions.AppError, match="") as error:
        segment(client, EXAMPLES[0], name)
    assert name in str(error.value) and "\n" not in str(error.value)
    log = served[1].read_text()
    assert "Traceback" not in log
    assert len([line for line in log.splitlines() if name in line]) == 2, log[-2000:]


def test_startup_line_is_our_own(client, served: tuple[str, Path]) -> None:
    log = served[1].read_text()
    assert f"Running on {served[0]} (for a public link: python app.py --share)" in log
    assert "share=True" not in log


def test_shipped_default_model(tmp_path: Path) -> None:
    assert SHIPPED_MODEL.is_dir(), "build it with: bash scripts/build_default_model.sh"
    for name in ("config.json", "model.onnx", "model.safetensors", "eval.json", "README.md"):
        assert (SHIPPED_MODEL / name).is_file(), name
    process, url = start_app(tmp_path)  # no --model: the built-in default
    try:
        client = gradio_client.Client(url, verbose=False, download_files=str(tmp_path))
        result = segment(client, EXAMPLES[0], "lraspp_mbv3_synthcity_cpg")
        check_result(result, (512, 256))
        assert "lraspp_mbv3_synthcity_cpg" in result[2]
        # The page says what it was trained on, from its own files (not from app.py).
        status = client.predict("lraspp_mbv3_synthcity_cpg", "onnx", api_name="/load_model")
        description = json.loads((SHIPPED_MODEL / "eval.json").read_text())["build"]
        assert "street scenes" in description["description"]
        assert description["description"] in status and "trained on **SynthCity**" in status
    finally:
        stop_app(process)
