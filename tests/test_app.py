"""The Gradio demo (`app.py`) served as a subprocess and driven by `gradio_client`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "zoo" / "assets" / "examples").glob("*.png"))
SHIPPED_MODEL = ROOT / "zoo" / "assets" / "models" / "lraspp_mbv3_synthcity_cpg"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")


# ------------------------------------------------------------------ helpers (also for test_browser)
def build_test_model(base: Path) -> Path:
    """A 19-class SynthCity LRASPP model directory (BN-calibrated random weights), built once
    per pytest session under `base`."""
    directory = base / "app_model"
    if (directory / "config.json").is_file():
        return directory
    from helpers_modeldir import make_model_dir

    from zoo.config import ModelConfig

    work = base / "app_model.partial"
    make_model_dir(work, num_classes=19, dataset="synthcity", input_size=(256, 512))
    config = ModelConfig.for_dataset(
        "lraspp_mbv3", "synthcity", input_size=[256, 512], model_id="test_lraspp_synthcity"
    )
    config.save(work)  # real class names and palette
    work.rename(directory)
    return directory


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def app_env(temp: Path) -> dict[str, str]:
    """Offline, telemetry-free environment with Gradio's files under `temp`."""
    (temp / "gradio").mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "GRADIO_TEMP_DIR": str(temp / "gradio"),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HOME": str(temp / "hf"),
    }


def start_app(temp: Path, *args: str, timeout: float = 120.0) -> tuple[subprocess.Popen, str]:
    """Run `python app.py --host 127.0.0.1 --port FREE *args`; return it and its URL once it
    answers HTTP 200."""
    port = free_port()
    log = (temp / f"app_{port}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port), *args],
        cwd=temp,
        env=app_env(temp),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}: {read_log(log.name)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.3)
    stop_app(process)
    raise RuntimeError(f"app.py did not answer within {timeout} s: {read_log(log.name)}")


def read_log(path: str) -> str:
    return Path(path).read_text()[-3000:]


def stop_app(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_test_model(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, url = start_app(tmp_path_factory.mktemp("app"), "--model", str(model_dir))
    yield url
    stop_app(process)


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


# ------------------------------------------------------------------ tests
def test_import_builds_nothing_and_demo_builds() -> None:
    import app

    assert app.DEFAULT_MODEL == "lraspp_mbv3_synthcity_cpg"
    demo = app.build_demo()
    assert demo.__class__.__name__ == "Blocks"
    names = {dep.api_name for dep in demo.fns.values()}
    assert {"segment", "load_model"} <= names
    assert not (ROOT / "app.pyi").exists(), "a gr.Component subclass made Gradio write app.pyi"


def test_overlay_is_redrawn_from_the_shown_mask(model_dir: Path) -> None:
    import app
    import zoo

    app.build_demo(str(model_dir))  # lists the model
    segmenter = zoo.load(model_dir, backend="onnx")
    mask = segmenter.mask_image(segmenter.predict(EXAMPLES[0]))
    update = app.draw_overlay(str(EXAMPLES[0]), mask, (str(model_dir), "onnx"), 0.3)
    layers = update.value["annotations"]
    assert layers and len(layers) == len(np.unique(np.asarray(mask)))
    assert app.draw_overlay(None, None, None, 0.3).value is None


def test_main_reports_an_unavailable_model(tmp_path: Path, capsys) -> None:
    import app

    assert app.main(["--model", str(tmp_path / "missing"), "--port", str(free_port())]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_examples_ship() -> None:
    assert len(EXAMPLES) == 3
    for path in EXAMPLES:
        assert path.stat().st_size < 300_000
        with Image.open(path) as image:
            assert image.size == (512, 256) and image.mode == "RGB"


def test_segment_an_example(client, model_dir: Path) -> None:
    result = segment(client, EXAMPLES[0], str(model_dir))
    check_result(result, (512, 256))
    assert "Note" not in result[2]


def test_mask_matches_the_library(client, model_dir: Path) -> None:
    import zoo

    mask, _, _ = segment(client, EXAMPLES[1], str(model_dir))
    expected = zoo.load(model_dir, backend="onnx").predict(EXAMPLES[1])
    assert (np.asarray(mask) == expected).mean() > 0.999


def test_torch_backend(client, model_dir: Path) -> None:
    check_result(segment(client, EXAMPLES[2], str(model_dir), backend="torch"), (512, 256))


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
    check_result(segment(client, inputs / name, str(model_dir)), size)


def test_huge_image_is_resized_with_a_note(client, model_dir: Path, inputs: Path) -> None:
    result = segment(client, inputs / "huge.png", str(model_dir))
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
        segment(client, inputs / name, str(model_dir))
    assert "Traceback" not in str(error.value) and "/tmp" not in str(error.value)


def test_upload_size_limit(client, server: str, model_dir: Path, inputs: Path) -> None:
    with pytest.raises(ValueError, match="maximum file size"):
        segment(client, inputs / "big.png", str(model_dir))
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
    check_result(segment(client, EXAMPLES[0], str(model_dir)), (512, 256))  # still serving


def test_server_paths_cannot_be_loaded(client) -> None:
    with pytest.raises(gradio_client.exceptions.AppError, match="Unknown model"):
        segment(client, EXAMPLES[0], "/etc")


def test_load_model_reports_the_device(client, model_dir: Path) -> None:
    status = client.predict(str(model_dir), "onnx", api_name="/load_model")
    assert "ready" in status and "CPUExecutionProvider" in status


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
    finally:
        stop_app(process)
